import type { Sql } from '../db.ts';
import type { TransitionStatus } from '../generated/prisma/enums.ts';
import { isOpen, isRunning, OPEN } from './statuses.ts';

/**
 * When each open transition should be done, from what Segue has seen: how long a generation of
 * that video length took lately (medians of the last completions: from IN_PROGRESS at fal to the
 * video stored, and from the submit to the video stored), and the work ahead of it, played out on
 * FAL_CONCURRENCY slots. Before any completion, a documented default: Kling's published "about 5
 * minutes" (7 for a 10 s video).
 */
export const DEFAULT_RUN_MS: Readonly<Record<number, number>> = { 5: 5 * 60_000, 10: 7 * 60_000 };

/** How long a generation of one video length takes (ms). */
export interface RunTimes {
  /** From IN_PROGRESS at fal to the video stored: what is left of a run fal has started. */
  run: number;
  /** From the submit to the video stored: what a transition still in Segue's queue needs once it has a slot. */
  turnaround: number;
}
/** Completions per video length the median is taken over. */
const RECENT = 20;

export interface OpenRow {
  id: string;
  batchId: string | null;
  status: TransitionStatus;
  durationSeconds: number;
  queuedAt: Date | null;
  submittedAt: Date | null;
  startedAt: Date | null;
  queuePosition: number | null;
}

export interface Estimates {
  at: number;
  transitions: Map<string, Date>;
  batches: Map<string, Date>;
}

/** A binary min-heap of slot-free times. */
class Slots {
  private readonly heap: number[] = [];
  push(t: number) {
    const h = this.heap;
    h.push(t);
    for (let i = h.length - 1; i > 0; ) {
      const parent = (i - 1) >> 1;
      if (h[parent]! <= h[i]!) break;
      [h[parent], h[i]] = [h[i]!, h[parent]!];
      i = parent;
    }
  }
  pop(): number {
    const h = this.heap;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && h[l]! < h[m]!) m = l;
        if (r < h.length && h[r]! < h[m]!) m = r;
        if (m === i) break;
        [h[m], h[i]] = [h[i]!, h[m]!];
        i = m;
      }
    }
    return top;
  }
  get size() {
    return this.heap.length;
  }
}

/**
 * Plays the open work out on `slots` fal slots: what runs at fal ends at its start plus the run
 * time (not before now); what waits in fal's queue starts as the positions ahead of it drain;
 * what waits in Segue's queue (in queue order) takes the earliest slot that frees. A batch ends
 * with its last transition.
 */
export function estimate(open: readonly OpenRow[], options: { now: number; slots: number; times: (durationSeconds: number) => RunTimes }): Estimates {
  const { now, slots, times } = options;
  const transitions = new Map<string, Date>();
  const free = new Slots();
  const inFlight = open.filter((r) => isRunning(r.status));
  for (const row of inFlight) {
    const { run } = times(row.durationSeconds);
    let end: number;
    if (row.status === 'IN_PROGRESS') end = Math.max(now, (row.startedAt ?? row.submittedAt ?? new Date(now)).getTime() + run);
    else end = now + ((row.queuePosition ?? 0) / Math.max(1, slots)) * run + run;
    transitions.set(row.id, new Date(end));
    free.push(end);
  }
  while (free.size < slots) free.push(now);
  const queued = open
    .filter((r) => r.status === 'QUEUED')
    .sort((a, b) => (a.queuedAt?.getTime() ?? 0) - (b.queuedAt?.getTime() ?? 0) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  for (const row of queued) {
    const end = Math.max(now, free.pop()) + times(row.durationSeconds).turnaround;
    transitions.set(row.id, new Date(end));
    free.push(end);
  }
  const batches = new Map<string, Date>();
  for (const row of open) {
    if (!row.batchId) continue;
    const end = transitions.get(row.id)!;
    const known = batches.get(row.batchId);
    if (!known || known < end) batches.set(row.batchId, end);
  }
  return { at: now, transitions, batches };
}

/** The median run times of the latest completions, per video length. */
export async function observedRunTimes(sql: Pick<Sql, 'query'>): Promise<Map<number, RunTimes>> {
  const rows = await sql.query<{ durationSeconds: number; run: number; turnaround: number }>(
    `SELECT "durationSeconds",
            percentile_cont(0.5) WITHIN GROUP (ORDER BY run)::float8 AS run,
            percentile_cont(0.5) WITHIN GROUP (ORDER BY turnaround)::float8 AS turnaround FROM (
       SELECT "durationSeconds", extract(epoch FROM "completedAt" - "startedAt") * 1000 AS run,
              extract(epoch FROM "completedAt" - coalesce("submittedAt", "startedAt")) * 1000 AS turnaround,
              row_number() OVER (PARTITION BY "durationSeconds" ORDER BY "completedAt" DESC) AS n
       FROM (SELECT "durationSeconds", "completedAt", "startedAt", "submittedAt" FROM "Transition"
             WHERE "status" = 'COMPLETED' AND "startedAt" IS NOT NULL
             ORDER BY "completedAt" DESC LIMIT ${RECENT * 10}) latest
     ) ranked WHERE n <= ${RECENT} GROUP BY "durationSeconds"`,
    [],
  );
  return new Map(rows.map((r) => [r.durationSeconds, { run: r.run, turnaround: r.turnaround }]));
}

/** The open transitions, in queue order, at most `limit` of them. */
export function openRows(sql: Pick<Sql, 'query'>, limit: number): Promise<OpenRow[]> {
  return sql.query<OpenRow>(
    `SELECT "id", "batchId", "status", "durationSeconds", "queuedAt", "submittedAt", "startedAt", "queuePosition"
     FROM "Transition" WHERE "status" = ANY($2::"TransitionStatus"[])
     ORDER BY "queuedAt" NULLS LAST, "id" LIMIT $1`,
    [limit, OPEN],
  );
}

/**
 * This process's current estimates, computed at most once per `maxAgeMs` however many fields ask
 * (every transitionUpdated event and query resolves its estimate from here).
 */
export class CompletionEstimates {
  private current: Estimates | null = null;
  private computing: Promise<Estimates> | null = null;

  constructor(
    private readonly deps: { sql: Pick<Sql, 'query'>; slots: number },
    private readonly maxAgeMs = 1_000,
    private readonly maxRows = 20_000,
  ) {}

  async forTransition(id: string, status: TransitionStatus): Promise<Date | null> {
    if (!isOpen(status)) return null;
    let estimates = await this.fresh();
    // Queued since the last estimate: estimate again, once.
    if (!estimates.transitions.has(id) && Date.now() - estimates.at > 100) estimates = await this.fresh(true);
    return estimates.transitions.get(id) ?? null;
  }

  async forBatch(id: string, ended: boolean): Promise<Date | null> {
    if (ended) return null;
    return (await this.fresh()).batches.get(id) ?? null;
  }

  private fresh(force = false): Promise<Estimates> {
    if (!force && this.current && Date.now() - this.current.at < this.maxAgeMs) return Promise.resolve(this.current);
    this.computing ??= this.compute().finally(() => {
      this.computing = null;
    });
    return this.computing;
  }

  private async compute(): Promise<Estimates> {
    const [open, observed] = await Promise.all([openRows(this.deps.sql, this.maxRows), observedRunTimes(this.deps.sql)]);
    const times = (seconds: number): RunTimes => {
      const seen = observed.get(seconds);
      if (seen) return seen;
      const ms = DEFAULT_RUN_MS[seconds] ?? DEFAULT_RUN_MS[5]! * (seconds / 5);
      return { run: ms, turnaround: ms };
    };
    this.current = estimate(open, { now: Date.now(), slots: this.deps.slots, times });
    return this.current;
  }
}
