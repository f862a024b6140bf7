import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { HEAP_GROWING_PERCENT, NEW_SPACE_CAP_BYTES, capsNewSpace, heapGrowthFlags } from '../src/heap-growth.ts';
import { ROOT } from './helpers/process.ts';

/** Runs `script` (an ES module) in a child node process and returns what its last line printed. */
function child<T>(script: string, { nodeOptions = '', flags = [] as string[] } = {}): T {
  const out = execFileSync(process.execPath, [...flags, '--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: ROOT,
    env: { ...process.env, NODE_OPTIONS: nodeOptions },
    encoding: 'utf8',
    // A child that hangs fails the test rather than block it (its timeout is checked only after).
    timeout: 40_000,
  });
  return JSON.parse(out.trim().split('\n').pop()!) as T;
}

/**
 * A child process that keeps about 40 MB live and churns garbage that lives long enough to be
 * promoted (as a worker's per-request state does), and prints the largest heap V8 kept. With
 * `load`, it imports heap-growth.ts first, as main.ts does.
 */
function churn(load: boolean, { nodeOptions = '', flags = [] as string[], rounds = 3_000_000 } = {}) {
  return child<{ appliedHeapFlags: string[] | null; maxMb: number }>(
    `
    import v8 from 'node:v8';
    ${load ? `const { appliedHeapFlags } = await import('./src/heap-growth.ts');` : 'const appliedHeapFlags = null;'}
    const live = Array.from({ length: 300_000 }, (_, i) => ({ i, s: 'live' + i }));
    const ring = new Array(50_000);
    let max = 0;
    for (let r = 0; r < ${rounds}; r++) {
      ring[r % 50_000] = { r, s: 'g' + r };
      if (r % 10_000 === 0) max = Math.max(max, v8.getHeapStatistics().total_heap_size);
    }
    console.log(JSON.stringify({ appliedHeapFlags, maxMb: max / 2 ** 20, live: live.length }));`,
    { nodeOptions, flags },
  );
}

/**
 * A child process whose allocations survive several scavenges, with turns of the event loop
 * between them (as a burst of in-flight requests does), and prints the largest young generation
 * V8 gave it. With `load`, it imports heap-growth.ts first, as main.ts does.
 */
function youngGeneration(load: boolean, { nodeOptions = '', flags = [] as string[] } = {}) {
  return child<{ cappedNewSpace: boolean | null; maxMb: number }>(
    `
    import v8 from 'node:v8';
    ${load ? `const { cappedNewSpace } = await import('./src/heap-growth.ts');` : 'const cappedNewSpace = null;'}
    const newSpace = () => v8.getHeapSpaceStatistics().find((space) => space.space_name === 'new_space').space_size;
    const kept = [];
    let max = 0;
    for (let round = 0; round < 300; round++) {
      kept.push(Array.from({ length: 20_000 }, (_, i) => ({ i, s: 'x' + i })));
      if (kept.length > 20) kept.shift();
      max = Math.max(max, newSpace());
      await new Promise((resolve) => setImmediate(resolve));
    }
    console.log(JSON.stringify({ cappedNewSpace, maxMb: max / 2 ** 20 }));`,
    { nodeOptions, flags },
  );
}

describe('heap growth of a process started without heap flags', () => {
  it('is capped at 1.3x unless the operator gave heap flags of their own', () => {
    expect(heapGrowthFlags([], undefined)).toEqual([`--heap-growing-percent=${HEAP_GROWING_PERCENT}`]);
    expect(heapGrowthFlags(['--import', 'tsx'], '--enable-source-maps')).toEqual([`--heap-growing-percent=${HEAP_GROWING_PERCENT}`]);
    expect(heapGrowthFlags([], '--max-semi-space-size=2 --max-old-space-size=256')).toEqual([]);
    expect(heapGrowthFlags(['--max_old_space_size=512'], undefined)).toEqual([]);
    expect(heapGrowthFlags(['--max-heap-size=300'], undefined)).toEqual([]);
    expect(heapGrowthFlags(['--heap-growing-percent=50'], undefined)).toEqual([]);
  });

  it('is a flag this node accepts', () => {
    // V8 ignores an unknown flag set at runtime; on the command line node refuses it.
    expect(() => execFileSync(process.execPath, [`--heap-growing-percent=${HEAP_GROWING_PERCENT}`, '-e', '0'])).not.toThrow();
  });

  it('keeps the heap of a churning process well below what V8 sizes for this machine, and leaves an operator’s flags alone', { timeout: 180_000 }, () => {
    // V8's own factor depends on the heap limit it picks for the host: fixed at a large host's
    // (4 GB, a factor of up to 4), so the comparison does not depend on this machine's memory.
    const operator = churn(true, { nodeOptions: '--max-old-space-size=2048', rounds: 0 });
    expect(operator.appliedHeapFlags).toEqual([]);
    // Measured here: 163-170 MB without, 107-114 MB with the cap, for about 40 MB live. V8 sizes
    // the heap from how fast it collects, so on a machine busy with other work one pair can come
    // out the other way round (62 MB without, 93 with, once in a CI run, and in two pairs in a row
    // of a local full run while the other test files loaded both cores): the cap must hold in two
    // pairs of up to five.
    const pairs: string[] = [];
    let held = 0;
    // Stops as soon as two have held, or two can no longer hold in the pairs left.
    // Both with the same young generation: the old generation's growth is what is compared.
    const young = '--max-semi-space-size=16';
    for (let pair = 0; pair < 5 && held < 2 && held + (5 - pair) >= 2; pair++) {
      const bare = churn(false, { flags: ['--max-old-space-size=4096', young] });
      const capped = churn(true, { flags: [young] });
      expect(capped.appliedHeapFlags).toEqual([`--heap-growing-percent=${HEAP_GROWING_PERCENT}`]);
      pairs.push(`${bare.maxMb.toFixed(0)} MB without, ${capped.maxMb.toFixed(0)} MB with`);
      if (capped.maxMb < bare.maxMb * 0.8) held += 1;
    }
    expect(held, pairs.join('; ')).toBe(2);
  });
});

describe('young generation of a process started without semi-space flags', () => {
  const capMb = NEW_SPACE_CAP_BYTES / 2 ** 20;

  it('is capped unless the operator sized it', () => {
    expect(capsNewSpace([], undefined)).toBe(true);
    expect(capsNewSpace(['--import', 'tsx'], '--max-old-space-size=256')).toBe(true);
    expect(capsNewSpace([], '--max-semi-space-size=2 --max-old-space-size=256')).toBe(false);
    expect(capsNewSpace(['--max_semi_space_size=8'], undefined)).toBe(false);
    expect(capsNewSpace(['--min-semi-space-size=4'], undefined)).toBe(false);
    expect(capsNewSpace(['--semi-space-growth-factor=4'], undefined)).toBe(false);
    expect(capsNewSpace(['--max-heap-size=300'], undefined)).toBe(false);
  });

  it('grows to the cap and no further (V8 alone doubles it to its maximum), and an operator’s size stands', { timeout: 120_000 }, () => {
    // Measured here: 32 MB without (16 MB semi-spaces, V8's maximum on a host this size: pinned,
    // since V8 sizes it from the host's memory), 8 with.
    const bare = youngGeneration(false, { flags: ['--max-semi-space-size=16'] });
    const capped = youngGeneration(true);
    expect(capped.cappedNewSpace).toBe(true);
    expect(bare.maxMb).toBeGreaterThan(2 * capMb);
    // Not past the cap by more than one doubling (this child yields between its allocations, as a
    // worker between requests does), and not held at the size start-up left it: the growth stopped
    // while modules load is allowed again after.
    expect(capped.maxMb).toBeLessThanOrEqual(2 * capMb);
    expect(capped.maxMb).toBeGreaterThanOrEqual(capMb);
    const operator = youngGeneration(true, { flags: ['--max-semi-space-size=16'] });
    expect(operator.cappedNewSpace).toBe(false);
    expect(operator.maxMb).toBeGreaterThan(2 * capMb);
  });
});
