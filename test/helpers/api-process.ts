import { freePort, tsx, type Child } from './process.ts';

export interface ApiProcess {
  child: Child;
  url: string;
  graphqlUrl: string;
  stop(): Promise<unknown>;
}

/** A second API instance as its own process (`tsx src/main.ts api`), on a free port. */
export async function startApiProcess(env: Record<string, string | undefined> = {}): Promise<ApiProcess> {
  const port = await freePort();
  const child = tsx('src/main.ts', ['api'], { LOG_LEVEL: 'info', LOG_PRETTY: 'false', ...env, PORT: String(port), HOST: '127.0.0.1' });
  await child.waitFor(/GraphiQL at|API listening/, 30_000);
  const url = `http://127.0.0.1:${port}`;
  return { child, url, graphqlUrl: `${url}/graphql`, stop: () => child.stop('SIGKILL') };
}
