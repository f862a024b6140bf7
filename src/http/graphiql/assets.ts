import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';

/** GraphiQL's files live under the GraphQL endpoint, so a proxy that forwards /graphql serves them too. */
export const GRAPHIQL_ASSETS_PATH = '/graphql/graphiql/';

/** Segue's start script for the page (configures the editor's workers, then renders GraphiQL). */
const START_SCRIPT = fileURLToPath(new URL('../../../assets/graphiql/start.js', import.meta.url));

interface Asset {
  type: string;
  body: Buffer;
  gzipped: Buffer;
}

export interface GraphiQLAssets {
  /** The URL of a file, e.g. url('graphiql.js'): versioned by content, so browsers cache it for good. */
  url(name: AssetName): string;
  files: Map<string, Asset>;
}

export type AssetName = 'graphiql.js' | 'graphiql.css' | 'start.js' | `${WorkerLabel}.worker.js`;
/** The labels the Monaco editor asks workers for (MonacoEnvironment.getWorkerUrl). */
export type WorkerLabel = 'editorWorkerService' | 'json' | 'graphql';

const JS = 'text/javascript; charset=utf-8';

/**
 * GraphiQL as @graphql-yoga/render-graphiql bundles it (GraphiQL, its Monaco editor and the
 * editor's web workers, all in one module of strings), split into files served from Segue's own
 * origin. The package inlines them into one 9 MB page; as files they are cached by the browser,
 * and the page can run under a Content-Security-Policy without inline scripts or blob: workers.
 * Loaded on first use, so a process with GraphiQL off never holds the bundle.
 */
async function loadAssets(): Promise<GraphiQLAssets> {
  const [bundle, start] = await Promise.all([import('@graphql-yoga/render-graphiql/graphiql'), readFile(START_SCRIPT)]);
  const sources: Array<[AssetName, string, Buffer]> = [
    ['graphiql.js', JS, Buffer.from(bundle.js)],
    ['graphiql.css', 'text/css; charset=utf-8', Buffer.from(bundle.css)],
    ['start.js', JS, start],
    ['editorWorkerService.worker.js', JS, Buffer.from(bundle.editorWorkerService)],
    ['json.worker.js', JS, Buffer.from(bundle.jsonWorker)],
    ['graphql.worker.js', JS, Buffer.from(bundle.graphqlWorker)],
  ];
  const hash = createHash('sha256');
  for (const [, , body] of sources) hash.update(body);
  const version = hash.digest('hex').slice(0, 16);
  const files = new Map<string, Asset>();
  await Promise.all(
    sources.map(async ([name, type, body]) => {
      files.set(`${GRAPHIQL_ASSETS_PATH}${version}/${name}`, { type, body, gzipped: await promisify(gzip)(body) });
    }),
  );
  return { url: (name) => `${GRAPHIQL_ASSETS_PATH}${version}/${name}`, files };
}

let loading: Promise<GraphiQLAssets> | null = null;
export function graphiqlAssets(): Promise<GraphiQLAssets> {
  loading ??= loadAssets().catch((error: unknown) => {
    loading = null;
    throw error;
  });
  return loading;
}

/** Serves GraphiQL's files (GET/HEAD), gzipped when the browser accepts it. False when `path` names none. */
export async function serveGraphiQLAsset(req: IncomingMessage, res: ServerResponse, path: string): Promise<boolean> {
  if (req.method !== 'GET' && req.method !== 'HEAD') return false;
  const asset = (await graphiqlAssets()).files.get(path);
  if (!asset) return false;
  const gzipped = /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
  const body = gzipped ? asset.gzipped : asset.body;
  res.writeHead(200, {
    'content-type': asset.type,
    'content-length': body.length,
    'cache-control': 'public, max-age=31536000, immutable',
    'x-content-type-options': 'nosniff',
    vary: 'accept-encoding',
    ...(gzipped ? { 'content-encoding': 'gzip' } : {}),
  });
  res.end(req.method === 'HEAD' ? undefined : body);
  return true;
}
