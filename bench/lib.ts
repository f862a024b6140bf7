import { execFileSync } from 'node:child_process';
import { loadConfig, type Config } from '../src/config.ts';

let prepared = false;

// Benchmarks run against the local emulator and files on localhost, as development does (an
// unset NODE_ENV means production, which refuses private-network fetches). Child processes inherit it.
process.env.NODE_ENV ??= 'development';

/**
 * Benchmarks use a database of their own (default segue_bench), dropped and migrated afresh at the
 * start of each run: workers treat every unfinished row as work, so leftovers would skew figures.
 */
export function benchConfig(overrides: Record<string, string> = {}): Config {
  const databaseUrl = process.env.BENCH_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/segue_bench';
  if (!prepared) {
    const admin = new URL(databaseUrl);
    const name = admin.pathname.slice(1);
    admin.pathname = '/postgres';
    execFileSync('psql', [admin.toString(), '-q', '-c', `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`], { stdio: 'ignore' });
    execFileSync('npx', ['prisma', 'migrate', 'deploy'], { env: { ...process.env, DATABASE_URL: databaseUrl }, stdio: 'ignore' });
    prepared = true;
  }
  return loadConfig({
    ...process.env,
    DATABASE_URL: databaseUrl,
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
    LOG_PRETTY: 'false',
    ...overrides,
  });
}

/**
 * The next benchConfig() drops and migrates the database again: for a benchmark that measures
 * twice in one run (bench/status-streams.ts), the second measure must not find the first's rows.
 */
export function freshBenchDatabase() {
  prepared = false;
}

export function percentiles(samples: number[]) {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
  return { n: sorted.length, p50: at(50), p90: at(90), p99: at(99), max: sorted[sorted.length - 1]! };
}

export const ms = (n: number) => `${n.toFixed(1)} ms`;

/**
 * CPU seconds used so far by this bench, its worker processes, the fal emulator, PostgreSQL and Redis (Linux /proc),
 * to show where the machine's two cores go during a run.
 */
export async function cpuSnapshot(): Promise<Record<string, number>> {
  const { readdirSync, readFileSync } = await import('node:fs');
  const ticks = 100;
  const totals: Record<string, number> = {};
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // Own time plus that of children it has waited for (ffmpeg, run from a worker's helper process).
      const seconds = (Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) / ticks;
      const name = Number(pid) === process.pid ? (process.env.BENCH_EMULATOR === 'inline' ? 'bench (API + emulator)' : 'bench (API)')
        : /fal-emulator\/main\.ts/.test(cmd) ? 'fal emulator'
        : /main\.[jt]s worker/.test(cmd) ? 'workers'
        : /tool-process-child/.test(cmd) ? "workers' ffmpeg (posters)"
        : /postgres/.test(cmd) ? 'postgres'
        : /redis-server/.test(cmd) ? 'redis'
        : null;
      if (name) totals[name] = (totals[name] ?? 0) + seconds;
    } catch {
      /* the process ended */
    }
  }
  return totals;
}

export const cpuDelta = (before: Record<string, number>, after: Record<string, number>) =>
  Object.entries(after)
    .map(([k, v]) => `${k} ${(v - (before[k] ?? 0)).toFixed(1)} s`)
    .join(', ');

/** A process's Prometheus metrics (Segue's, `segue_` prefixed): a reader of one value by name, NaN if absent. */
export async function segueMetrics(url: string): Promise<(name: string) => number> {
  const text = await fetch(url).then((r) => r.text());
  return (name) => Number(new RegExp(`^segue_${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
}
