import v8 from 'node:v8';

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

// Read here, not in config.ts: this runs before the configuration loads, and NODE_OPTIONS is
// node's own setting, not Segue's.
export const appliedHeapFlags = heapGrowthFlags(process.execArgv, process.env.NODE_OPTIONS);
for (const flag of appliedHeapFlags) v8.setFlagsFromString(flag);
