/**
 * Image uploads under load: 20 concurrent 8 MB uploads (GraphQL multipart requests, as a browser's
 * FormData sends them) to an API running in its own process, which checks, normalises and stores
 * each one. Prints the latency (p50/p99) and the API's peak RSS growth over its idle RSS (goal:
 * under 100 MB: files stream to disk and storage, never held whole in memory twice).
 * `npx tsx bench/uploads.ts [uploads=20] [megabytes=8]`
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { print } from 'graphql';
import sharp from 'sharp';
import { createAccount } from '../src/domain/accounts.ts';
import { createDatabase } from '../src/db.ts';
import { graphql } from '../src/generated/gql/index.ts';
import { benchConfig, ms, percentiles } from './lib.ts';

const UPLOADS = Number(process.argv[2] ?? 20);
const MEGABYTES = Number(process.argv[3] ?? 8);

const BenchUpload = graphql(`
  mutation BenchUpload($file: File!) { uploadImage(file: $file) { id bytes width height } }
`);

const freePort = () =>
  new Promise<number>((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });

const rssOf = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

// A photo-like PNG of about MEGABYTES: random pixels do not compress.
const side = Math.round(Math.sqrt((MEGABYTES * 1024 * 1024) / 3));
const pixels = Buffer.alloc(side * side * 3);
for (let i = 0; i < pixels.length; i++) pixels[i] = (Math.random() * 256) | 0;
const image = await sharp(pixels, { raw: { width: side, height: side, channels: 3 } }).png({ compressionLevel: 1 }).toBuffer();

const config = benchConfig();
const port = await freePort();
const mediaDir = mkdtempSync(join(tmpdir(), 'segue-bench-uploads-'));
const api = spawn('npx', ['tsx', 'src/main.ts', 'api'], {
  env: {
    ...process.env,
    DATABASE_URL: config.databaseUrl,
    PORT: String(port),
    HOST: '127.0.0.1',
    MEDIA_DIR: mediaDir,
    LOG_LEVEL: 'warn',
    LOG_PRETTY: 'false',
    NODE_ENV: 'production',
    RATE_LIMIT_MUTATIONS_PER_MINUTE: '0',
  },
  stdio: ['ignore', 'pipe', 'inherit'],
  detached: true,
});
const url = `http://127.0.0.1:${port}/graphql`;
const database = createDatabase(config.databaseUrl, { max: 2 });

try {
  for (let i = 0; ; i++) {
    if ((await fetch(`http://127.0.0.1:${port}/health`).then((r) => r.ok).catch(() => false))) break;
    if (i > 300) throw new Error('The API did not start.');
    await new Promise((r) => setTimeout(r, 100));
  }
  // The node process behind npx and tsx's launcher: the one serving.
  const apiPid = findNode(api.pid!);
  const { apiKey } = await createAccount(database.prisma, 'bench-uploads');

  const upload = async () => {
    const form = new FormData();
    form.set('operations', JSON.stringify({ query: print(BenchUpload), variables: { file: null } }));
    form.set('map', JSON.stringify({ 0: ['variables.file'] }));
    form.set('0', new Blob([new Uint8Array(image)], { type: 'image/png' }), 'photo.png');
    const started = performance.now();
    const response = await fetch(url, { method: 'POST', headers: { authorization: `Bearer ${apiKey}` }, body: form });
    const body = (await response.json()) as { errors?: unknown };
    if (body.errors) throw new Error(JSON.stringify(body.errors));
    return performance.now() - started;
  };

  // Warm up (code paths, sharp's threads, the database pool), then let the heap settle.
  for (let i = 0; i < 3; i++) await upload();
  await new Promise((r) => setTimeout(r, 1000));
  const idle = rssOf(apiPid);
  let peak = idle;
  const sampler = setInterval(() => (peak = Math.max(peak, rssOf(apiPid))), 10);

  const started = performance.now();
  const latencies = await Promise.all(Array.from({ length: UPLOADS }, upload));
  const wall = performance.now() - started;
  clearInterval(sampler);
  const p = percentiles(latencies);

  console.log(`${UPLOADS} concurrent uploads of ${mb(image.length)} (${side}×${side} PNG), API in its own process`);
  console.log(`  latency: p50 ${ms(p.p50)}, p99 ${ms(p.p99)}, max ${ms(p.max)}; all done in ${ms(wall)} (${((UPLOADS * image.length) / 1024 / 1024 / (wall / 1000)).toFixed(1)} MB/s)`);
  console.log(`  API RSS: idle ${mb(idle)}, peak ${mb(peak)}, growth ${mb(peak - idle)} (goal: under 100 MB)`);
} finally {
  await database.close();
  try {
    process.kill(-api.pid!, 'SIGTERM');
  } catch {
    /* already gone */
  }
  rmSync(mediaDir, { recursive: true, force: true });
}

/** The deepest descendant of `pid` that is node running src/main.ts (npx → sh → node). */
function findNode(pid: number): number {
  const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
  if (cmd.includes('src/main.ts') && cmd.startsWith('node') && !children) return pid;
  for (const child of children.split(/\s+/).filter(Boolean)) {
    const found = findNode(Number(child));
    if (found) return found;
  }
  return cmd.includes('src/main.ts') ? pid : 0;
}
