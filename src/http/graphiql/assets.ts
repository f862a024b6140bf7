import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Worker } from 'node:worker_threads';
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

/** Where each file comes from in the package's module of strings. */
const SOURCES: Array<[AssetName, string, string]> = [
  ['graphiql.js', JS, 'js'],
  ['graphiql.css', 'text/css; charset=utf-8', 'css'],
  ['editorWorkerService.worker.js', JS, 'editorWorkerService'],
  ['json.worker.js', JS, 'jsonWorker'],
  ['graphql.worker.js', JS, 'graphqlWorker'],
];

/** Runs in a worker thread: the package's strings as bytes, and gzipped once. */
const BUILD = `
const { parentPort, workerData } = require('node:worker_threads');
const { gzipSync } = require('node:zlib');
const bundle = require(workerData.module);
// Each file in an ArrayBuffer of its own, handed over rather than copied.
const own = (bytes) => new Uint8Array(bytes).buffer;
const files = workerData.keys.map((key) => {
  const body = Buffer.from(bundle[key]);
  return { body: own(body), gzipped: own(gzipSync(body, { level: 9 })) };
});
parentPort.postMessage(files, files.flatMap((file) => [file.body, file.gzipped]));
`;

function buildInWorker(): Promise<Array<{ body: ArrayBuffer; gzipped: ArrayBuffer }>> {
  const module = createRequire(import.meta.url).resolve('@graphql-yoga/render-graphiql/graphiql');
  return new Promise((resolve, reject) => {
    const worker = new Worker(BUILD, { eval: true, workerData: { module, keys: SOURCES.map(([, , key]) => key) } });
    worker.once('message', resolve);
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`GraphiQL's bundle could not be read (worker exit ${code})`)));
  });
}

/**
 * GraphiQL as @graphql-yoga/render-graphiql bundles it (GraphiQL, its Monaco editor and the
 * editor's web workers, all in one module of strings), split into files served from Segue's own
 * origin. The package inlines them into one 9 MB page; as files they are cached by the browser,
 * and the page can run under a Content-Security-Policy without inline scripts or blob: workers.
 * Built on first use, in a worker thread: importing the module here would hold ~35 MB of strings
 * in this process's heap for good and block its event loop while 9 MB of JavaScript compiles.
 * What stays is the bytes (about 11 MB, outside the heap); with GraphiQL off, nothing.
 */
async function loadAssets(): Promise<GraphiQLAssets> {
  const [built, start] = await Promise.all([buildInWorker(), readFile(START_SCRIPT)]);
  const entries: Array<[AssetName, Asset]> = [
    ...SOURCES.map(([name, type], i): [AssetName, Asset] => [
      name,
      { type, body: Buffer.from(built[i]!.body), gzipped: Buffer.from(built[i]!.gzipped) }, // no copy
    ]),
    ['start.js', { type: JS, body: start, gzipped: await promisify(gzip)(start) }],
  ];
  const hash = createHash('sha256');
  for (const [, { body }] of entries) hash.update(body);
  const version = hash.digest('hex').slice(0, 16);
  const url = (name: AssetName) => `${GRAPHIQL_ASSETS_PATH}${version}/${name}`;
  return { url, files: new Map(entries.map(([name, asset]) => [url(name), asset])) };
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
