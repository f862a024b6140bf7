/**
 * What GraphiQL costs the API process: the first page (loads the bundle and gzips it once),
 * the memory that stays, the bytes a browser downloads (first visit, then cached), and pages/s.
 * `npx tsx bench/graphiql.ts [pages=200]`
 */
import { performance } from 'node:perf_hooks';
import { graphiqlAssets } from '../src/http/graphiql/assets.ts';
import { renderGraphiQLPage } from '../src/http/graphiql/page.ts';

const pages = Number(process.argv[2] ?? 200);
const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;
const memory = () => {
  globalThis.gc?.();
  const { rss, heapUsed, external, arrayBuffers } = process.memoryUsage();
  return { rss, heap: heapUsed, buffers: external + arrayBuffers };
};

const before = memory();
let start = performance.now();
const assets = await graphiqlAssets();
const firstMs = performance.now() - start;
const after = memory();

console.log(`first GraphiQL page: ${firstMs.toFixed(0)} ms to load @graphql-yoga/render-graphiql and gzip its files`);
console.log(
  `memory held: rss +${mb(after.rss - before.rss)}, heap +${mb(after.heap - before.heap)}, buffers +${mb(after.buffers - before.buffers)}` +
    (globalThis.gc ? '' : ' (run with --expose-gc for steadier figures)'),
);
let plain = 0;
let zipped = 0;
for (const [path, file] of assets.files) {
  plain += file.body.length;
  zipped += file.gzipped.length;
  console.log(`  ${path.split('/').pop()!.padEnd(32)} ${mb(file.body.length).padStart(8)}  gzip ${mb(file.gzipped.length).padStart(7)}`);
}
console.log(`a first visit downloads ${mb(zipped)} gzipped (${mb(plain)} plain); later visits only the page (immutable files)`);

start = performance.now();
let html = '';
for (let i = 0; i < pages; i++) html = await renderGraphiQLPage({ title: 'Segue GraphQL', nonce: String(i) } as never);
const perPage = (performance.now() - start) / pages;
console.log(`page: ${html.length} bytes, rendered in ${(perPage * 1000).toFixed(0)} µs (${Math.round(1000 / perPage)} pages/s)`);
