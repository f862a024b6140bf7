import v8 from 'node:v8';
import { PerformanceObserver } from 'node:perf_hooks';

/**
 * How far V8 lets the old generation grow past what is live before it collects, for a process
 * started without heap flags (a bare `node dist/main.js worker`).
 *
 * V8 sizes that growth for the machine: with the 4 GB heap limit it picks on a large host, it
 * lets the heap reach up to 4× what is live, and a worker polling fal for 1,000 requests grew
 * from 160 to 350 MB of RSS with 60 MB live. With `--max-old-space-size=256` (the image's
 * NODE_OPTIONS), V8's factor is at most 1.3; this fixes it at that 1.3 for a process started
 * without it, keeping the machine-sized limit (so no heap is refused that would fit). Measured
 * (bench/status-streams.ts, bare `node dist/main.js worker`, 1,000 requests in flight, before
 * Prisma's small compiler build, prisma/schema.prisma): peak RSS
 * 262 → 215 MB streaming, 362 → 211 MB polling; throughput at fal latency 0 92–97 → 88–97
 * transitions/s, worker CPU within the runs' noise.
 *
 * An operator's own heap flags win: given any of them, V8's sizing is theirs and nothing is set.
 * Set before anything allocates much; the factor is read at every full collection.
 */
export const HEAP_GROWING_PERCENT = 30;

const OPERATOR_FLAGS = /--(max[-_]old[-_]space[-_]size|max[-_]heap[-_]size|heap[-_]growing[-_]percent)\b/;

/** The V8 flags this process needs, given the node flags it was started with. */
export function heapGrowthFlags(execArgv: readonly string[], nodeOptions: string | undefined): string[] {
  const given = [...execArgv, nodeOptions ?? ''].join(' ');
  return OPERATOR_FLAGS.test(given) ? [] : [`--heap-growing-percent=${HEAP_GROWING_PERCENT}`];
}

/**
 * The young generation's largest size, for a process started without semi-space flags: 4 MB
 * semi-spaces (8 MB for the pair), against V8's 16. A worker taking 1,000 requests at once keeps
 * most of what it allocates alive through a few scavenges, so V8 doubles its semi-spaces up to
 * its maximum and holds that memory at the burst's peak. `--max-semi-space-size` is read only at
 * start-up; V8 reads its growth factor each time it grows, so that is what this process sets.
 * Measured (bench/status-streams.ts 1000 20 stream, bare `node dist/main.js worker`): peak RSS
 * 197-202 -> 177-182 MB. What it costs: worker CPU in a burst of 1,000 submits
 * (bench/makespan.ts 1000 20000 1000) 5.8-5.9 -> 6.3-6.7 s, in bench/makespan.ts 3.8-3.9 ->
 * 4.0-4.1 s. The image's 2 MB (`--max-semi-space-size=2`) cost more: 7.3-7.4 against 6.1-6.4 s.
 */
export const NEW_SPACE_CAP_BYTES = 8 * 2 ** 20;

// --max-heap-size sizes the young generation too. Of these, NODE_OPTIONS accepts only --max-semi-space-size.
const SEMI_SPACE_FLAGS = /--((max|min)[-_]semi[-_]space[-_]size|semi[-_]space[-_]growth[-_]factor|max[-_]heap[-_]size)\b/;

/** Whether this process caps its young generation itself: not when the operator sized it. */
export function capsNewSpace(execArgv: readonly string[], nodeOptions: string | undefined): boolean {
  return !SEMI_SPACE_FLAGS.test([...execArgv, nodeOptions ?? ''].join(' '));
}

const newSpaceBytes = () => v8.getHeapSpaceStatistics().find((space) => space.space_name === 'new_space')?.space_size ?? 0;

/**
 * Keeps the young generation at or about `capBytes`, as `--max-semi-space-size` would. Its growth
 * is stopped at once, through the synchronous stretch that evaluates the process's static imports
 * (V8 would double it there unwatched). From the next turn of the event loop it is checked after
 * each collection (V8 grows it only in one): allowed to grow while under the cap, stopped at it,
 * and allowed again after V8 shrank it in a quiet time, so the next burst has its room. The checks
 * come on a later turn than their collection, so a long synchronous stretch (a role's modules,
 * imported after that first turn) can grow it past the cap until V8 shrinks it again.
 */
export function capNewSpace(capBytes = NEW_SPACE_CAP_BYTES): void {
  let growing = false;
  const allowGrowth = (grow: boolean) => {
    if (grow === growing) return;
    growing = grow;
    v8.setFlagsFromString(`--semi-space-growth-factor=${grow ? 2 : 1}`);
  };
  v8.setFlagsFromString('--semi-space-growth-factor=1');
  setImmediate(() => {
    const check = () => allowGrowth(newSpaceBytes() < capBytes);
    new PerformanceObserver(check).observe({ entryTypes: ['gc'] });
    check();
  }).unref();
}

// Read here, not in config.ts: this runs before the configuration loads, and NODE_OPTIONS is
// node's own setting, not Segue's.
export const appliedHeapFlags = heapGrowthFlags(process.execArgv, process.env.NODE_OPTIONS);
for (const flag of appliedHeapFlags) v8.setFlagsFromString(flag);
export const cappedNewSpace = capsNewSpace(process.execArgv, process.env.NODE_OPTIONS);
if (cappedNewSpace) capNewSpace();
