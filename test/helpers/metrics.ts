/** The value of one Prometheus sample in `text`, or 0 when it has not appeared yet (unless `required`). */
export function sample(text: string, name: string, labels = '', required = false): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `));
  if (!line && required) throw new Error(`no sample ${name}{${labels}} in /metrics`);
  return line ? Number(line.split(' ').at(-1)) : 0;
}

/** The text of a server's /metrics (`baseUrl` without a trailing slash). */
export const metricsOf = async (baseUrl: string) => (await fetch(`${baseUrl}/metrics`)).text();

/** One sample, read from a server's /metrics now. */
export const metric = async (baseUrl: string, name: string, labels = '', required = false) => sample(await metricsOf(baseUrl), name, labels, required);
