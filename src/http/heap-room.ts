import v8 from 'node:v8';
import { constants, PerformanceObserver } from 'node:perf_hooks';

/**
 * Share of V8's heap limit that live objects may take before no new stream is set up: room for
 * the open ones to go on, and for the requests still in line until each is answered. The limit
 * counts the young generation's reserve too (304 MB with `--max-old-space-size=256`, where the
 * old generation runs out at about 255 MB): 0.65 of it is about 198 MB.
 */
const HEAP_FULL_SHARE = 0.65;

/**
 * Whether this process's heap is near its limit (`--max-old-space-size`), by what the last full
 * collection left: live objects, not the garbage a collection would clear (which would refuse
 * streams a healthy process can serve).
 */
export function heapNearLimit(): boolean {
  watchFullCollections();
  return liveAfterLastFullGc > HEAP_FULL_SHARE * heapLimit;
}

const heapLimit = v8.getHeapStatistics().heap_size_limit;
let liveAfterLastFullGc = 0;
let watching = false;

function watchFullCollections() {
  if (watching) return;
  watching = true;
  new PerformanceObserver((list) => {
    const full = list.getEntries().some((entry) => (entry as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR);
    if (full) liveAfterLastFullGc = v8.getHeapStatistics().used_heap_size;
  }).observe({ entryTypes: ['gc'] });
}
