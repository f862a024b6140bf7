import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { HEAP_GROWING_PERCENT, heapGrowthFlags } from '../src/heap-growth.ts';
import { ROOT } from './helpers/process.ts';

/**
 * A child process that keeps about 40 MB live and churns garbage that lives long enough to be
 * promoted (as a worker's per-request state does), and prints the largest heap V8 kept. With
 * `load`, it imports heap-growth.ts first, as main.ts does.
 */
function churn(load: boolean, { nodeOptions = '', flags = [] as string[], rounds = 3_000_000 } = {}) {
  const script = `
    import v8 from 'node:v8';
    ${load ? `const { appliedHeapFlags } = await import('./src/heap-growth.ts');` : 'const appliedHeapFlags = null;'}
    const live = Array.from({ length: 300_000 }, (_, i) => ({ i, s: 'live' + i }));
    const ring = new Array(50_000);
    let max = 0;
    for (let r = 0; r < ${rounds}; r++) {
      ring[r % 50_000] = { r, s: 'g' + r };
      if (r % 10_000 === 0) max = Math.max(max, v8.getHeapStatistics().total_heap_size);
    }
    console.log(JSON.stringify({ appliedHeapFlags, maxMb: max / 2 ** 20, live: live.length }));`;
  const out = execFileSync(process.execPath, [...flags, '--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: ROOT,
    env: { ...process.env, NODE_OPTIONS: nodeOptions },
    encoding: 'utf8',
    // A child that hangs fails the test rather than block it (its timeout is checked only after).
    timeout: 40_000,
  });
  return JSON.parse(out.trim().split('\n').pop()!) as { appliedHeapFlags: string[] | null; maxMb: number };
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
    for (let pair = 0; pair < 5 && held < 2 && held + (5 - pair) >= 2; pair++) {
      const bare = churn(false, { flags: ['--max-old-space-size=4096'] });
      const capped = churn(true);
      expect(capped.appliedHeapFlags).toEqual([`--heap-growing-percent=${HEAP_GROWING_PERCENT}`]);
      pairs.push(`${bare.maxMb.toFixed(0)} MB without, ${capped.maxMb.toFixed(0)} MB with`);
      if (capped.maxMb < bare.maxMb * 0.8) held += 1;
    }
    expect(held, pairs.join('; ')).toBe(2);
  });
});
