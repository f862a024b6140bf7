import type { Sql } from '../db.ts';
import type { Transition } from '../generated/prisma/client.ts';
import { announceCommitted, type StateDeps } from './state-machine.ts';

/**
 * Claims: QUEUED → SUBMITTED for one submit to fal, written together with the submission's ledger
 * row (SUBMITTING, see ledger.ts), which is at once its FAL_CONCURRENCY slot and its budget
 * reservation. Nothing is sent to fal without a committed claim.
 *
 * Every claim of every worker process counts the slots in flight under one lock, so claims are
 * serial by nature. To keep that lock from being the pipeline's ceiling, a process sends the
 * claims that arrive while its previous transaction runs together, in one transaction (ClaimBatcher):
 * one turn at the lock, and a handful of statements, for a whole burst.
 */

export type ClaimRefusal = 'previous-open' | 'cap' | 'budget' | 'price-unknown';

/** Why a claim sent nothing: the caller waits (previous-open, cap) or fails the run (budget). */
export class ClaimRefused extends Error {
  override name = 'ClaimRefused';
  constructor(
    readonly reason: ClaimRefusal,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

/** The rules every claim of a process follows (from its configuration). */
export interface ClaimPolicy {
  /** FAL_CONCURRENCY: requests in flight at fal across every worker. */
  cap: number;
  /** USD per second of video; null when unknown (then a budgeted account cannot be served). */
  pricePerSecondUsd: number | null;
  model: string;
  /** How long a SUBMITTING row can still get its answer (FAL_SUBMIT_TIMEOUT_MS and a margin). */
  submitAnswerMs: number;
}

/** How long a submit can still get its answer: the submit's own timeout, and a margin. */
export const submitAnswerMs = (fal: { submitTimeoutMs: number }) => fal.submitTimeoutMs + 5_000;

/** The policy of a process, from its configuration. */
export const claimPolicy = (config: {
  fal: { concurrency: number; model: string; submitTimeoutMs: number };
  pricePerSecondUsd: number | null;
}): ClaimPolicy => ({
  cap: config.fal.concurrency,
  pricePerSecondUsd: config.pricePerSecondUsd,
  model: config.fal.model,
  submitAnswerMs: submitAnswerMs(config.fal),
});

export interface ClaimRequest {
  ref: { id: string; run: number };
  /** The id the ledger row gets (chosen by the caller, so it can undo a claim whose answer it lost). */
  submissionId: string;
}

/** The claimed row; null when the row is not QUEUED in this run (someone else moved it); or why not. */
export type ClaimOutcome = Transition | null | ClaimRefused;

const UTC_NOW = `(now() AT TIME ZONE 'UTC')`;
/** The wall clock, not the transaction's start: a claim that waited on locks stamps when it got them. */
const CLOCK_NOW = `(clock_timestamp() AT TIME ZONE 'UTC')`;
/** A lock key all claims share: the slot count and the inserts that take slots happen one at a time. */
const SLOTS_LOCK = 7_365_686_575;
/** How long a claim, holding the slot lock, waits for its rows' locks. */
const ROW_LOCK_WAIT_MS = 1_000;
/**
 * Rows that hold a slot: in flight at fal, or being submitted (and not so long that no answer can
 * come: the parameter named holds that time in ms, ClaimPolicy.submitAnswerMs).
 */
const holdsSlot = (answerMsParam: string) =>
  `f."state" IN ('SUBMITTING', 'ACCEPTED') AND (f."state" = 'ACCEPTED' OR f."createdAt" > ${UTC_NOW} - ${answerMsParam}::int * interval '1 millisecond')`;
const HOLDS_SLOT = holdsSlot('$3');

/** The fal requests in flight across every worker, as claims count them (what queueStats shows). */
export async function requestsInFlight(sql: Pick<Sql, 'query'>, fal: { submitTimeoutMs: number }): Promise<number> {
  const [row] = await sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM "FalRequest" f WHERE ${holdsSlot('$1')}`, [submitAnswerMs(fal)]);
  return row?.n ?? 0;
}

const CLAIM_FIELDS = ['status', 'attempts', 'version', 'submittedAt', 'updatedAt', 'falRequestId', 'queuePosition', 'startedAt'] as const;

const costOf = (pricePerSecond: number | null, seconds: number) =>
  pricePerSecond === null ? 0 : Math.round(pricePerSecond * seconds * 10_000) / 10_000;

type Candidate = { id: string; durationSeconds: number; accountId: string; budget: string | null };

/**
 * Claims, in the order given, each request whose row is QUEUED in its run, if and only if: no
 * earlier request of that transition may still run at fal, a budgeted account can pay for it
 * (spent + in flight + uncertain + the claims taken before it here), and fewer than `cap`
 * submissions are in flight. One transaction: the slot lock first (every reservation, slot and
 * budget alike, is made under it, so budgets need no lock of their own), then one read of the
 * rows, the slots, earlier requests and budget commitments for the whole batch, then the claims
 * written. Only the rows claimed are locked (in id order, by the write): a claim refused for the
 * cap, as most of a round of staged jobs are, writes nothing and waits for no one's row lock.
 * Returns one outcome per request.
 */
export async function claimSubmits(deps: StateDeps, requests: readonly ClaimRequest[], policy: ClaimPolicy): Promise<ClaimOutcome[]> {
  const outcomes: ClaimOutcome[] = requests.map(() => null);
  // The same run asked twice (a job run twice at once): the first one claims, the other finds it moved.
  const firstOf = new Map<string, number>();
  requests.forEach((r, i) => firstOf.has(r.ref.id) || firstOf.set(r.ref.id, i));
  const asked = [...firstOf.values()];
  if (asked.length === 0) return outcomes;

  // The slot lock first, with BEGIN in one round trip: every claim of every process takes it, so
  // every reservation (slot and budget) is made under it, and the next statement's snapshot,
  // taken after it, sees every claim that committed before this one. Then one statement reads
  // what the rules need; one more locks the rows it claims and writes the claims.
  const claimed = await deps.sql.transaction(async (tx) => {
    const { claimed, dropped } = await decideAndWrite(tx, requests, asked, policy, outcomes);
    // A row taken in the decision moved before the write (a cancel, or a cancel and a retry): the
    // requests decided after it counted a reservation that was never written. A budget refusal
    // may be one of those, so it is not final: it waits as a refusal for the cap does, and is
    // decided again with the next claims (deciding it again here would lock rows out of id order).
    if (dropped) {
      for (const i of asked) {
        const outcome = outcomes[i];
        if (outcome instanceof ClaimRefused && outcome.reason === 'budget') {
          outcomes[i] = new ClaimRefused('cap', 'A claim decided before this one did not land (its row moved): decided again with the next claims.', {
            ...outcome.details,
            redecide: true,
          });
        }
      }
    }
    return claimed;
  }, {
    // READ COMMITTED (PostgreSQL's default) is what makes the next statement's snapshot later than
    // the lock, and has the write check a row it waited for against the row's newest version. Row
    // locks are waited for under the slot lock, briefly: a row another transaction holds longer
    // fails the claim (55P03), and the job tries again soon, rather than every claim of every
    // worker waiting behind it.
    opening: `SELECT pg_advisory_xact_lock(${SLOTS_LOCK}); SET LOCAL lock_timeout = '${ROW_LOCK_WAIT_MS}ms'`,
  });
  const byId = new Map(claimed.map((row) => [row.id, row]));
  for (const i of asked) outcomes[i] = byId.get(requests[i]!.ref.id) ?? outcomes[i]!;
  // The claimed rows' events go out without holding up their submits: under a round of requests
  // ending together, Redis's answer took 11 ms (p50) to 40 ms (p90) in bench/makespan.ts. The
  // PUBLISH is issued before this returns, so on one Redis server this process's later changes
  // of these rows follow it on the same connection; on a Cluster (a keyless PUBLISH goes to any
  // node), and between processes, order rests on versions, as it always has: subscribers keep
  // the newest. The listener logs what it could not publish.
  if (claimed.length > 0) void announceCommitted(deps, claimed, CLAIM_FIELDS).catch(() => undefined);
  return outcomes;
}

/**
 * The decision and its write, inside the claim transaction: reads the rows of `indices` (no row
 * lock), decides each in order (refusals go into `outcomes`), then locks the rows taken, in id
 * order, and claims each that is still QUEUED in its run (a cancel, or a cancel and a retry, may
 * have moved one since the read: it is left as it is, nothing of its claim is written, and
 * `dropped` says so).
 * The ledger rows are written from the rows claimed, so a slot and a reservation exist exactly
 * when a claim does.
 */
async function decideAndWrite(
  tx: Pick<Sql, 'query'>,
  requests: readonly ClaimRequest[],
  indices: readonly number[],
  policy: ClaimPolicy,
  outcomes: ClaimOutcome[],
): Promise<{ claimed: Transition[]; dropped: boolean }> {
  const queued = await tx.query<Candidate & { inFlight: number; previousOpen: boolean; committed: string | null }>(
    `WITH queued AS MATERIALIZED (
       SELECT t."id", t."durationSeconds", t."accountId", a."budgetUsd" AS budget
       FROM "Transition" t
       JOIN unnest($1::uuid[], $2::int[]) AS r("id", "run") ON r."id" = t."id" AND r."run" = t."run"
       JOIN "Account" a ON a."id" = t."accountId"
       WHERE t."status" = 'QUEUED'
     ), committed AS (
       SELECT f."accountId", sum(f."costUsd") AS committed FROM "FalRequest" f
       WHERE f."accountId" IN (SELECT "accountId" FROM queued WHERE budget IS NOT NULL) AND f."state" <> 'REFUSED'
       GROUP BY f."accountId"
     )
     SELECT q.*, (SELECT count(*)::int FROM "FalRequest" f WHERE ${HOLDS_SLOT}) AS "inFlight",
            EXISTS (SELECT 1 FROM "FalRequest" f WHERE f."transitionId" = q."id" AND ${HOLDS_SLOT}) AS "previousOpen",
            coalesce(c.committed, 0) AS committed
     FROM queued q LEFT JOIN committed c ON c."accountId" = q."accountId"`,
    [indices.map((i) => requests[i]!.ref.id), indices.map((i) => requests[i]!.ref.run), policy.submitAnswerMs],
  );
  const rows = new Map(queued.map((r) => [r.id, r]));
  const candidates = indices.filter((i) => rows.has(requests[i]!.ref.id));
  if (candidates.length === 0) return { claimed: [], dropped: false };
  const committed = new Map(queued.filter((r) => r.budget !== null).map((r) => [r.accountId, Number(r.committed)]));
  const previousOpen = new Set(queued.filter((r) => r.previousOpen).map((r) => r.id));
  let inFlight = queued[0]!.inFlight;
  const take: Array<{ index: number; cost: number }> = [];
  for (const i of candidates) {
    const row = rows.get(requests[i]!.ref.id)!;
    const refusal = decide(row, policy, previousOpen, committed, inFlight);
    if (refusal) {
      outcomes[i] = refusal;
      continue;
    }
    const cost = costOf(policy.pricePerSecondUsd, row.durationSeconds);
    if (row.budget !== null) committed.set(row.accountId, (committed.get(row.accountId) ?? 0) + cost);
    inFlight += 1;
    take.push({ index: i, cost });
  }
  if (take.length === 0) return { claimed: [], dropped: false };
  // The status and run are checked again on each row once it is locked (READ COMMITTED checks a
  // row that changed while we waited for it against its newest version).
  const claimed = await tx.query<Transition>(
    `WITH r AS (
       SELECT * FROM unnest($1::uuid[], $2::int[], $3::uuid[], $4::numeric[]) AS r("transitionId", "run", "submissionId", "cost")
     ), locked AS MATERIALIZED (
       SELECT t."id" FROM "Transition" t JOIN r ON r."transitionId" = t."id" AND r."run" = t."run"
       WHERE t."status" = 'QUEUED'
       ORDER BY t."id" FOR UPDATE OF t
     ), claimed AS (
       UPDATE "Transition" t SET "status" = 'SUBMITTED', "attempts" = t."attempts" + 1, "version" = t."version" + 1,
         "submittedAt" = ${CLOCK_NOW}, "updatedAt" = ${CLOCK_NOW}, "falRequestId" = NULL, "queuePosition" = NULL, "startedAt" = NULL
       FROM locked l WHERE t."id" = l."id" AND t."status" = 'QUEUED'
       RETURNING t.*
     ), ledger AS (
       INSERT INTO "FalRequest" ("id", "accountId", "transitionId", "run", "attempt", "model", "costUsd", "state", "createdAt")
       SELECT r."submissionId", c."accountId", c."id", c."run", c."attempts", $5, r."cost", 'SUBMITTING', ${CLOCK_NOW}
       FROM claimed c JOIN r ON r."transitionId" = c."id"
     )
     SELECT * FROM claimed`,
    [
      take.map((t) => requests[t.index]!.ref.id),
      take.map((t) => requests[t.index]!.ref.run),
      take.map((t) => requests[t.index]!.submissionId),
      take.map((t) => t.cost),
      policy.model,
    ],
  );
  return { claimed, dropped: claimed.length < take.length };
}

/** Why this row cannot be claimed now, in the order the rules apply; null when it can. */
function decide(
  row: Candidate,
  policy: ClaimPolicy,
  previousOpen: ReadonlySet<string>,
  committed: ReadonlyMap<string, number>,
  inFlight: number,
): ClaimRefused | null {
  const budget = row.budget === null ? null : Number(row.budget);
  if (budget !== null && policy.pricePerSecondUsd === null) {
    return new ClaimRefused('price-unknown', `The account has a budget, but the price of ${policy.model} is unknown: set FAL_PRICE_PER_SECOND.`, {
      model: policy.model,
    });
  }
  if (previousOpen.has(row.id)) return new ClaimRefused('previous-open', 'An earlier request of this transition may still run at fal.');
  if (budget !== null) {
    const cost = costOf(policy.pricePerSecondUsd, row.durationSeconds);
    const already = committed.get(row.accountId) ?? 0;
    if (already + cost > budget + 1e-9) {
      return new ClaimRefused(
        'budget',
        `This would exceed the account's budget of $${budget.toFixed(2)} (committed $${already.toFixed(2)}, this $${cost.toFixed(2)}).`,
        { budgetUsd: budget, committedUsd: already, requestedUsd: cost },
      );
    }
  }
  if (inFlight >= policy.cap) {
    return new ClaimRefused('cap', `${inFlight} requests are in flight at fal (FAL_CONCURRENCY ${policy.cap}).`, { inFlight });
  }
  return null;
}

/** One claim: the claimed row, or null when the row is not QUEUED in this run; throws ClaimRefused. */
export async function claimSubmit(deps: StateDeps, ref: { id: string; run: number }, options: ClaimPolicy & { submissionId: string }) {
  const [outcome] = await claimSubmits(deps, [{ ref, submissionId: options.submissionId }], options);
  if (outcome instanceof ClaimRefused) throw outcome;
  return outcome ?? null;
}

/** PostgreSQL's integrity violations (class 23) and rolled-back transactions (class 40: deadlocks, serialization). */
const isRowConflict = (error: unknown) => /^(23|40)/.test(String((error as { code?: unknown } | null)?.code ?? ''));

/**
 * The claims of one process, sent together: a claim asked while the previous transaction runs
 * waits for it, then goes with every other claim that came meanwhile (up to `maxBatch`) in the
 * next one. A burst of N jobs costs about log-many transactions instead of N turns at the slot
 * lock, and holds one database connection instead of one per waiting claim.
 */
export class ClaimBatcher {
  private pending: PendingClaim[] = [];
  /** Claims refused for want of a slot, waiting here for one to free (see `slotWaitMs`). */
  private waiting: PendingClaim[] = [];
  private recheck: NodeJS.Timeout | null = null;
  private running = false;
  private arrivals = 0;
  private scheduled: NodeJS.Immediate | null = null;
  /** A slot freed since the last transaction began. */
  private freed = false;
  /** A claim arrived since the waiting ones last went: they go with the next transaction. */
  private arrived = false;
  private readonly maxBatch: number;
  private readonly slotWaitMs: number;

  /**
   * `slotWaitMs`: how long a claim refused for the cap (FAL_CONCURRENCY in flight) waits here for
   * a slot before it is refused. Workers run more jobs than the cap (GenerationQueue's staged
   * jobs, half of FAL_CONCURRENCY): they ready their row and images, then wait here, and are
   * claimed the moment this process sees a request end (slotFreed), or at the next recheck for
   * slots freed elsewhere.
   * The cap itself is only ever the ledger's: a waiting claim holds no slot and sends nothing.
   */
  constructor(
    private readonly deps: StateDeps,
    private readonly policy: ClaimPolicy,
    options: { maxBatch?: number; slotWaitMs?: number } = {},
  ) {
    this.maxBatch = options.maxBatch ?? 200;
    this.slotWaitMs = options.slotWaitMs ?? 0;
  }

  /**
   * Same as claimSubmit; a claim refused for the cap may first wait for a slot (until `signal`).
   * Waiting claims go in the order of their jobs' `priority` (the fair share's: lower first), so
   * a staged job never lets another account's turn pass.
   */
  async claim(
    ref: { id: string; run: number },
    submissionId: string,
    options: { signal?: AbortSignal | undefined; priority?: number | undefined } = {},
  ): Promise<Transition | null> {
    const outcome = await new Promise<ClaimOutcome>((resolve, reject) => {
      const entry: PendingClaim = {
        request: { ref, submissionId },
        resolve,
        reject,
        until: Date.now() + this.slotWaitMs,
        signal: options.signal,
        priority: options.priority ?? 0,
        order: this.arrivals++,
      };
      this.pending.push(entry);
      this.arrived = true;
      // The claims of jobs readied together (one image check let a whole round go) arrive in one
      // turn of the event loop: the transaction starts after it, with all of them.
      this.scheduled ??= setImmediate(() => {
        this.scheduled = null;
        void this.drain();
      });
    });
    if (outcome instanceof ClaimRefused) throw outcome;
    return outcome;
  }

  /** A request of this process has ended: its slot is free, so the waiting claims try again now. */
  slotFreed() {
    // Claims refused by a transaction already under way were counted before this slot freed:
    // they go again after it, rather than waiting for the recheck.
    this.freed = true;
    void this.drain();
  }

  private async drain() {
    if (this.running) return;
    this.running = true;
    try {
      for (;;) {
        // Claims waiting for a slot go again when one freed, and with the transaction of claims
        // that arrived meanwhile (a slot may have freed elsewhere): at no extra cost, and never
        // passed over. Not with the rest of a batch larger than maxBatch: claims just refused
        // would go round again at once, ahead of the ones not yet tried.
        if (this.freed || (this.arrived && this.waiting.length > 0)) {
          this.pending.push(...this.waiting.splice(0));
        }
        this.freed = false;
        this.arrived = false;
        if (this.pending.length === 0) break;
        // A batch claims in its order until the cap: the fair share's next turn first.
        this.pending.sort((a, b) => a.priority - b.priority || a.order - b.order);
        const batch = this.pending.splice(0, this.maxBatch);
        try {
          const outcomes = await claimSubmits(this.deps, batch.map((b) => b.request), this.policy);
          batch.forEach((b, i) => this.settle(b, outcomes[i]!));
        } catch (error) {
          if (batch.length > 1 && isRowConflict(error)) {
            // One row's conflict or a deadlock rolls back every claim of the batch: each is tried
            // again alone, so only the one at fault fails.
            for (const b of batch) {
              await claimSubmits(this.deps, [b.request], this.policy).then(([outcome]) => this.settle(b, outcome!), (error: unknown) => this.fail(b, error));
            }
            continue;
          }
          // The transaction failed as a whole: each caller makes sure its claim did not land.
          for (const b of batch) this.fail(b, error);
        }
      }
    } finally {
      this.running = false;
    }
  }

  private settle(claim: PendingClaim, outcome: ClaimOutcome) {
    const wait = outcome instanceof ClaimRefused && outcome.reason === 'cap' && Date.now() < claim.until && !claim.signal?.aborted;
    if (!wait) {
      if (claim.onAbort) claim.signal?.removeEventListener('abort', claim.onAbort);
      return claim.resolve(outcome);
    }
    claim.refusal = outcome;
    if (!claim.onAbort && claim.signal) {
      claim.onAbort = () => this.giveUp(claim);
      claim.signal.addEventListener('abort', claim.onAbort, { once: true });
    }
    this.waiting.push(claim);
    this.recheck ??= setTimeout(() => this.recheckNow(), SLOT_RECHECK_MS);
    this.recheck.unref();
  }

  /** Slots freed by other processes are seen here: the waiting claims try again, or give up. */
  private recheckNow() {
    this.recheck = null;
    const now = Date.now();
    for (const claim of this.waiting.filter((c) => now >= c.until)) this.giveUp(claim);
    this.slotFreed();
  }

  private fail(claim: PendingClaim, error: unknown) {
    if (claim.onAbort) claim.signal?.removeEventListener('abort', claim.onAbort);
    claim.reject(error);
  }

  private giveUp(claim: PendingClaim) {
    const at = this.waiting.indexOf(claim);
    if (at < 0) return;
    this.waiting.splice(at, 1);
    claim.signal?.removeEventListener('abort', claim.onAbort!);
    claim.resolve(claim.refusal!);
  }
}

/** How often claims waiting for a slot look again (slots freed by other processes). */
const SLOT_RECHECK_MS = 1_000;

interface PendingClaim {
  request: ClaimRequest;
  resolve: (o: ClaimOutcome) => void;
  reject: (e: unknown) => void;
  /** Until when a refusal for the cap waits for a slot. */
  until: number;
  signal: AbortSignal | undefined;
  /** The job's BullMQ priority (fair share): lower goes first. */
  priority: number;
  order: number;
  refusal?: ClaimRefused;
  onAbort?: () => void;
}
