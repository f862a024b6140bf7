import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = new URL('../../', import.meta.url).pathname;
const DIST_INDEX = join(ROOT, 'web/dist/index.html');
const GENERATED = join(ROOT, 'src/generated/gql/gql.ts');
const SOURCES = ['web', 'src/generated/gql'].map((p) => join(ROOT, p));
const OUTPUT = join(ROOT, 'web/dist');

function newestMtime(path: string): number {
  if (!existsSync(path) || path === OUTPUT) return 0;
  const info = statSync(path);
  if (!info.isDirectory()) return info.mtimeMs;
  return Math.max(0, ...readdirSync(path).map((entry) => newestMtime(join(path, entry))));
}

/**
 * Builds the console (npm run build:web) when web/dist is missing or older than anything else in
 * web/ or the generated typed documents.
 */
export function ensureConsoleBuilt(): void {
  if (!existsSync(GENERATED) || !readFileSync(GENERATED, 'utf8').includes('ConsoleViewer')) {
    throw new Error('src/generated/gql lacks the console operations: run `npm run codegen`.');
  }
  const built = existsSync(DIST_INDEX) ? statSync(DIST_INDEX).mtimeMs : 0;
  if (built > Math.max(...SOURCES.map(newestMtime))) return;
  // The suite runs with NODE_ENV=test; the console is built as for production.
  execFileSync('npm', ['run', 'build:web', '--loglevel=warn'], {
    cwd: ROOT,
    stdio: 'pipe',
    env: { ...process.env, NODE_ENV: 'production' },
    timeout: 120_000,
  });
}
