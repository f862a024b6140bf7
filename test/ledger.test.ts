import { randomBytes } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { v7 as uuidv7 } from 'uuid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setBudget } from '../src/domain/accounts.ts';
import { createAndGenerate } from '../src/domain/generation.ts';
import { ClaimBatcher, claimSubmit, claimSubmits, ClaimRefused, type ClaimPolicy } from '../src/domain/claims.ts';
import { recordAccepted, recordResult, unclaimSubmit } from '../src/domain/ledger.ts';
import { createSegue, type Segue } from '../src/runtime.ts';
import { createTestAccount, testConfig } from './helpers/app.ts';
import { until } from './helpers/wait.ts';
import { transitionInputs } from './helpers/fixtures.ts';
import { holdTransaction } from './helpers/held-transaction.ts';
import { dropQueueKeys } from './helpers/pipeline.ts';

/**
 * The ledger's claim against the real PostgreSQL, many at once as many workers make them: the
 * FAL_CONCURRENCY cap and the budget hold under any concurrency, with no help from Redis.
 */
let segue: Segue;
const prefix = `ledger${randomBytes(3).toString('hex')}`;
beforeAll(() => {
  segue = createSegue(testConfig({ QUEUE_PREFIX: prefix, DATABASE_POOL_SIZE: '30', FAL_KEY: 'test', FAL_PROXY_URL: 'http://127.0.0.1:9' }));
});
afterAll(async () => {
  await segue.close();
  await dropQueueKeys(segue.config.redis, prefix);
});

const options = (cap: number): ClaimPolicy => ({
  cap,
  pricePerSecondUsd: 0.098,
  model: 'fal-ai/kling-video/v2.1/pro/image-to-video',
  submitAnswerMs: 60_000,
});

/** Claims every transition at once; the outcome of each. */
async function claimAll(rows: Array<{ id: string; run: number }>, cap: number) {
  return Promise.all(
    rows.map((row) =>
      claimSubmit(segue, row, { ...options(cap), submissionId: uuidv7() }).then(
        (claimed) => (claimed ? 'claimed' : 'moved'),
        (error: unknown) => (error instanceof ClaimRefused ? error.reason : 'error'),
      ),
    ),
  );
}

/** Ends every open ledger row (as fal saying they ended would). */
/** `n` queued transitions, a batcher of cap 1 whose claims wait for a slot, and the first claimed. */
async function capTakenByFirst(n: number) {
  await endAll();
  const account = await createTestAccount(segue);
  const { transitions } = await createAndGenerate(segue, account.id, { transitions: transitionInputs(n) });
  const batcher = new ClaimBatcher(segue, options(1), { slotWaitMs: 30_000 });
  const first = await batcher.claim(transitions[0]!, uuidv7());
  return { account, transitions, batcher, first };
}

/** fal ended the transition's request, and this process says so. */
async function endRequestOf(batcher: ClaimBatcher, transitionId: string) {
  await segue.sql.query(`UPDATE "FalRequest" SET "state" = 'ENDED' WHERE "transitionId" = $1::uuid`, [transitionId]);
  batcher.slotFreed();
}

/** The app's dependencies, counting the transactions run through them. */
function countingTransactions() {
  const counting = {
    transactions: 0,
    deps: {
      ...segue,
      sql: {
        ...segue.sql,
        transaction: <T>(...args: Parameters<typeof segue.sql.transaction<T>>) => ((counting.transactions += 1), segue.sql.transaction(...args)),
      },
    },
  };
  return counting;
}

const endAll = () => segue.sql.query(`UPDATE "FalRequest" SET "state" = 'ENDED' WHERE "state" IN ('SUBMITTING', 'ACCEPTED')`, []);

describe('the submit claim', () => {
  it('30 claims at once with a cap of 5: exactly 5 take a slot, the others are refused, none is sent twice', async () => {
    await endAll();
    const account = await createTestAccount(segue);
    const { transitions } = await createAndGenerate(segue, account.id, { transitions: transitionInputs(30) });
    const outcomes = await claimAll(transitions, 5);
    expect(outcomes.filter((o) => o === 'claimed')).toHaveLength(5);
    expect(outcomes.filter((o) => o === 'cap')).toHaveLength(25);
    const open = await segue.db.falRequest.count({ where: { accountId: account.id, state: 'SUBMITTING' } });
    expect(open).toBe(5);
    // A second round of claims, again at once: the slots are still held.
    const queued = await segue.db.transition.findMany({ where: { accountId: account.id, status: 'QUEUED' } });
    expect(await claimAll(queued, 5)).toEqual(queued.map(() => 'cap'));
  });

  it('claims of a budget for two videos, all at once: exactly two are reserved', async () => {
    await endAll();
    const account = await createTestAccount(segue);
    const { transitions } = await createAndGenerate(segue, account.id, { transitions: transitionInputs(12) });
    await setBudget(segue.db, account.id, 0.98);
    const outcomes = await claimAll(transitions, 100);
    expect(outcomes.filter((o) => o === 'claimed')).toHaveLength(2);
    expect(outcomes.filter((o) => o === 'budget')).toHaveLength(10);
  });

  it('a transition whose earlier request may still run at fal is not claimed; an undone claim leaves it as it was', async () => {
    await endAll();
    const account = await createTestAccount(segue);
    const { transitions } = await createAndGenerate(segue, account.id, { transitions: transitionInputs(1) });
    const [t] = transitions;
    const submissionId = uuidv7();
    const claimed = (await claimSubmit(segue, t!, { ...options(10), submissionId }))!;
    expect(claimed).toMatchObject({ status: 'SUBMITTED', attempts: 1 });
    // Undone: as if it never happened (nothing was sent).
    expect(await unclaimSubmit(segue, submissionId)).toMatchObject({ status: 'QUEUED', attempts: 0 });
    expect(await segue.db.falRequest.count({ where: { transitionId: t!.id } })).toBe(0);
    expect(await unclaimSubmit(segue, submissionId)).toBeNull();

    // Claimed again and accepted by fal; then the run is canceled and retried while fal runs it.
    const again = (await claimSubmit(segue, t!, { ...options(10), submissionId: uuidv7() }))!;
    await segue.sql.query(`UPDATE "FalRequest" SET "state" = 'ACCEPTED', "requestId" = $2 WHERE "transitionId" = $1::uuid`, [t!.id, `req-${t!.id}`]);
    await segue.sql.query(`UPDATE "Transition" SET "status" = 'QUEUED', "run" = "run" + 1 WHERE "id" = $1::uuid`, [t!.id]);
    await expect(claimSubmit(segue, { id: t!.id, run: again.run + 1 }, { ...options(10), submissionId: uuidv7() })).rejects.toMatchObject({
      reason: 'previous-open',
    });
  });

  it('the request id fal returns is recorded even when its transition was deleted meanwhile', async () => {
    await endAll();
    const account = await createTestAccount(segue);
    const { transitions } = await createAndGenerate(segue, account.id, { transitions: transitionInputs(1) });
    const submissionId = uuidv7();
    const claimed = (await claimSubmit(segue, transitions[0]!, { ...options(10), submissionId }))!;
    await segue.db.transition.delete({ where: { id: claimed.id } });
    const submission = {
      id: submissionId,
      transitionId: claimed.id,
      accountId: account.id,
      run: claimed.run,
      attempt: claimed.attempts,
      model: options(10).model,
      costUsd: 0.49,
    };
    expect(await recordAccepted(segue, submission, 'req-after-delete', 0)).toBeNull();
    const row = await segue.db.falRequest.findUniqueOrThrow({ where: { id: submissionId } });
    expect(row).toMatchObject({ requestId: 'req-after-delete', state: 'ACCEPTED', transitionId: null });
  });

  it('claims sent together: one transaction decides each in order (cap, budget within the batch, an earlier request, a row that moved, the same run twice)', async () => {
    await endAll();
    const paying = await createTestAccount(segue);
    const budgeted = await createTestAccount(segue);
    const free = (await createAndGenerate(segue, paying.id, { transitions: transitionInputs(4) })).transitions;
    const capped = (await createAndGenerate(segue, budgeted.id, { transitions: transitionInputs(3) })).transitions;
    await setBudget(segue.db, budgeted.id, 0.98); // two 5 s videos
    // One of the free ones has an earlier request still open at fal; another was canceled.
    await segue.sql.query(
      `INSERT INTO "FalRequest" ("accountId", "transitionId", "run", "attempt", "model", "costUsd", "state", "requestId")
       VALUES ($1::uuid, $2::uuid, 0, 1, 'm', 0, 'ACCEPTED', $3)`,
      [paying.id, free[1]!.id, `req-${free[1]!.id}`],
    );
    await segue.sql.query(`UPDATE "Transition" SET "status" = 'CANCELED' WHERE "id" = $1::uuid`, [free[2]!.id]);
    const request = (t: { id: string; run: number }) => ({ ref: { id: t.id, run: t.run }, submissionId: uuidv7() });
    const requests = [request(free[0]!), request(free[0]!), request(free[1]!), request(free[2]!), ...capped.map(request), request(free[3]!)];
    // Three slots are taken already (free[1]'s open request and two others'), two are left of 5.
    await segue.sql.query(
      `INSERT INTO "FalRequest" ("accountId", "model", "run", "attempt", "costUsd", "state", "requestId")
       SELECT $1::uuid, 'm', 0, 1, 0, 'ACCEPTED', 'req-other-' || g FROM generate_series(1, 2) g`,
      [paying.id],
    );
    const outcomes = await claimSubmits(segue, requests, { ...options(5) });
    const said = outcomes.map((o) => (o instanceof ClaimRefused ? o.reason : o ? 'claimed' : 'moved'));
    // free[0] claims (slot 4), its twin finds it moved, free[1] waits for its earlier request,
    // free[2] was canceled; the budgeted three: the first takes the last slot, the other two fit
    // the budget (two videos) but find no slot; free[3]: no slot.
    expect(said).toEqual(['claimed', 'moved', 'previous-open', 'moved', 'claimed', 'cap', 'cap', 'cap']);
    expect(await segue.db.falRequest.count({ where: { transitionId: { in: [free[0]!.id, capped[0]!.id] }, state: 'SUBMITTING' } })).toBe(2);

    // With room, the budget decides within the batch: two of three fit.
    await endAll();
    const again = await segue.db.transition.findMany({ where: { accountId: budgeted.id, status: 'QUEUED' } });
    const second = await claimSubmits(segue, again.map(request), options(100));
    // One video is paid already (0.49 committed): one more fits the budget of two.
    expect(second.map((o) => (o instanceof ClaimRefused ? o.reason : o ? 'claimed' : 'moved'))).toEqual(['claimed', 'budget']);
  });

  it("a claim does not wait for its event's publish: a listener that never answers, or fails, holds up no submit", async () => {
    await endAll();
    const account = await createTestAccount(segue);
    const { transitions } = await createAndGenerate(segue, account.id, { transitions: transitionInputs(2) });
    const told: string[][] = [];
    const never = {
      transitionsChanged(rows: readonly { id: string }[]) {
        told.push(rows.map((r) => r.id));
        return new Promise<void>(() => undefined);
      },
    };
    const failing = {
      transitionsChanged(rows: readonly { id: string }[]) {
        told.push(rows.map((r) => r.id));
        return Promise.reject(new Error('Redis away'));
      },
    };
    for (const [k, [t, events]] of ([[transitions[0]!, never], [transitions[1]!, failing]] as const).entries()) {
      const claim = claimSubmit({ db: segue.db, sql: segue.sql, events }, t, { ...options(10), submissionId: uuidv7() });
      const outcome = await Promise.race([claim, new Promise((resolve) => setTimeout(() => resolve('waited'), 2_000))]);
      expect(outcome).toMatchObject({ id: t.id, status: 'SUBMITTED' });
      // Told (its PUBLISH issued) before the claim came back: a later change of the row, which
      // this process publishes after the submit, follows it on the same connection.
      expect(told[k]).toEqual([t.id]);
    }
    // Each listener was told of its claim (SUBMITTED), once.
    expect(told).toEqual([[transitions[0]!.id], [transitions[1]!.id]]);
  });

  it('a process sends the claims of a burst together: 60 claims, a cap of 10, exactly 10 slots taken, in fewer transactions than claims', async () => {
    await endAll();
    const account = await createTestAccount(segue);
    const { transitions } = await createAndGenerate(segue, account.id, { transitions: transitionInputs(60) });
    const counting = countingTransactions();
    const batcher = new ClaimBatcher(counting.deps, options(10));
    const outcomes = await Promise.all(
      transitions.map((t) =>
        batcher.claim(t, uuidv7()).then(
          (row) => (row ? 'claimed' : 'moved'),
          (error: unknown) => (error instanceof ClaimRefused ? error.reason : 'error'),
        ),
      ),
    );
    expect(outcomes.filter((o) => o === 'claimed')).toHaveLength(10);
    expect(outcomes.filter((o) => o === 'cap')).toHaveLength(50);
    expect(await segue.db.falRequest.count({ where: { accountId: account.id, state: 'SUBMITTING' } })).toBe(10);
    expect(counting.transactions).toBeLessThan(10);
  });

  it('claims waiting for a slot, more than one transaction holds, are not tried again and again: once per freed slot or new claim', async () => {
    await endAll();
    const account = await createTestAccount(segue);
    const { transitions } = await createAndGenerate(segue, account.id, { transitions: transitionInputs(13) });
    const counting = countingTransactions();
    // A cap of 1, taken; 12 claims that wait for a slot, 5 per transaction.
    const batcher = new ClaimBatcher(counting.deps, options(1), { maxBatch: 5, slotWaitMs: 30_000 });
    expect(await batcher.claim(transitions[0]!, uuidv7())).not.toBeNull();
    const stop = new AbortController();
    // One signal stands for the 12 jobs' own here (a job's signal carries its one claim): no leak
    // for Node to warn of.
    setMaxListeners(12, stop.signal);
    const waiting = transitions.slice(1).map((t) => batcher.claim(t, uuidv7(), { signal: stop.signal }).catch((error: unknown) => error));
    await until(() => counting.transactions >= 3, { what: 'the first tries', intervalMs: 10 });
    await new Promise((r) => setTimeout(r, 100));
    // Each was tried once (3 transactions of 5, 5 and 2), and not again while nothing changed
    // (the 1 s recheck for slots freed elsewhere has not come yet).
    const afterBurst = counting.transactions;
    expect(afterBurst).toBeLessThanOrEqual(4);
    await new Promise((r) => setTimeout(r, 300));
    expect(counting.transactions).toBe(afterBurst);
    // A slot frees: the first waiting claim takes it.
    await endRequestOf(batcher, transitions[0]!.id);
    await until(async () => (await segue.db.falRequest.count({ where: { accountId: account.id, state: 'SUBMITTING' } })) === 1, { what: 'the freed slot claimed' });
    // The rest give up (as a stopping worker's would), leaving the cap to the next test.
    stop.abort();
    const outcomes = await Promise.all(waiting);
    expect(outcomes.filter((o) => o instanceof ClaimRefused)).toHaveLength(11);
    await endAll();
  });

  it('a claim refused for the cap waits for a slot: claimed once this process frees one, refused after its wait, let go on abort', async () => {
    const { account, transitions, batcher, first } = await capTakenByFirst(4);
    expect(first?.status).toBe('SUBMITTED');
    // The cap (1) is taken: the next claim waits rather than being refused.
    let staged: string | null = null;
    const waiting = batcher.claim(transitions[1]!, uuidv7()).then((row) => (staged = row?.status ?? 'moved'));
    await new Promise((r) => setTimeout(r, 100));
    expect(staged).toBeNull();
    expect((await segue.db.transition.findUniqueOrThrow({ where: { id: transitions[1]!.id } })).status).toBe('QUEUED');
    // The first request ends (fal finished it) and this process says so: the waiting claim goes now.
    const freedAt = Date.now();
    await endRequestOf(batcher, first!.id);
    await waiting;
    expect(staged).toBe('SUBMITTED');
    // Not the 1 s recheck for slots freed elsewhere (about 900 ms after the slot was freed here).
    expect(Date.now() - freedAt).toBeLessThan(800);

    // With the cap taken again: a short wait ends in the refusal, and an abort lets the claim go at once.
    const short = new ClaimBatcher(segue, options(1), { slotWaitMs: 200 });
    await expect(short.claim(transitions[2]!, uuidv7())).rejects.toMatchObject({ reason: 'cap' });
    const controller = new AbortController();
    const aborted = batcher.claim(transitions[3]!, uuidv7(), { signal: controller.signal }).catch((e: unknown) => e);
    setTimeout(() => controller.abort(), 100);
    const startedAt = Date.now();
    expect(await aborted).toMatchObject({ reason: 'cap' });
    expect(Date.now() - startedAt).toBeLessThan(1_000);
    expect(await segue.db.falRequest.count({ where: { accountId: account.id, state: { in: ['SUBMITTING', 'ACCEPTED'] } } })).toBe(1);
  });

  it('claims waiting for a slot take it in their jobs\' priority order (the fair share), not in the order they came', async () => {
    const { transitions, batcher, first } = await capTakenByFirst(3);
    const order: string[] = [];
    const later = batcher.claim(transitions[1]!, uuidv7(), { priority: 9 }).then(() => order.push('priority 9'));
    await new Promise((r) => setTimeout(r, 100));
    const sooner = batcher.claim(transitions[2]!, uuidv7(), { priority: 2 }).then(() => order.push('priority 2'));
    await new Promise((r) => setTimeout(r, 300));
    expect(order).toEqual([]);
    await endRequestOf(batcher, first!.id);
    await sooner;
    expect(order).toEqual(['priority 2']);
    expect((await segue.db.transition.findUniqueOrThrow({ where: { id: transitions[1]!.id } })).status).toBe('QUEUED');
    await endRequestOf(batcher, transitions[2]!.id);
    await later;
    expect(order).toEqual(['priority 2', 'priority 9']);
  });

  it('a claim refused for the cap locks no row: it does not wait for a row lock held elsewhere', async () => {
    await endAll();
    const account = await createTestAccount(segue);
    const { transitions } = await createAndGenerate(segue, account.id, { transitions: transitionInputs(2) });
    const [first, second] = transitions;
    expect(await claimSubmit(segue, first!, { ...options(1), submissionId: uuidv7() })).not.toBeNull();
    // Someone else holds the second row (a cancel or an edit in progress) while every slot is
    // taken: the claim is refused for the cap at once, not after the row-lock wait (or a 55P03).
    const other = await holdTransaction(segue.config.databaseUrl);
    try {
      await other.query(`SELECT 1 FROM "Transition" WHERE "id" = $1::uuid FOR UPDATE`, [second!.id]);
      // A claim that waited for the row would fail after the row-lock wait (55P03): the row is held until the end.
      const [outcome] = await claimSubmits(segue, [{ ref: second!, submissionId: uuidv7() }], options(1));
      expect(outcome).toMatchObject({ reason: 'cap' });
    } finally {
      await other.end();
    }
    expect(await segue.db.falRequest.count({ where: { transitionId: second!.id } })).toBe(0);
  });

  it('rows moved while their claims are written (canceled; canceled and run again) are not claimed, leave no ledger row, and do not cost the next request its budget', { retry: 2 }, async () => {
    await endAll();
    const account = await createTestAccount(segue);
    const { transitions } = await createAndGenerate(segue, account.id, { transitions: transitionInputs(3) });
    await setBudget(segue.db, account.id, 0.98); // two 5 s videos
    const [canceled, rerun, kept] = transitions;
    // Another transaction cancels one row and starts another's next run (a cancel and a retry,
    // here in one step), not yet committed: the claim reads all three QUEUED, takes the first
    // two (the budget's two videos), refuses the third for the budget, then waits for the rows.
    const other = await holdTransaction(segue.config.databaseUrl);
    let claiming: Promise<unknown[]> | undefined;
    try {
      await other.query(`UPDATE "Transition" SET "status" = 'CANCELED', "version" = "version" + 1 WHERE "id" = $1::uuid`, [canceled!.id]);
      await other.query(`UPDATE "Transition" SET "run" = "run" + 1, "version" = "version" + 1 WHERE "id" = $1::uuid`, [rerun!.id]);
      claiming = claimSubmits(segue, [canceled!, rerun!, kept!].map((ref) => ({ ref, submissionId: uuidv7() })), options(10));
      await other.blocks(claiming, 'the claim to wait for the other transaction');
      await other.commit();
      // Neither is claimed. The third's refusal counted reservations that were never written: it
      // is not final (it waits, as for a slot), and the next claim of it finds its budget.
      const [first, second, third] = await claiming;
      expect([first, second]).toEqual([null, null]);
      expect(third).toMatchObject({ reason: 'cap', details: { redecide: true } });
    } finally {
      await other.end();
      await claiming?.catch(() => undefined);
    }
    expect(await segue.db.transition.findUniqueOrThrow({ where: { id: canceled!.id } })).toMatchObject({ status: 'CANCELED', attempts: 0 });
    expect(await segue.db.transition.findUniqueOrThrow({ where: { id: rerun!.id } })).toMatchObject({ status: 'QUEUED', run: rerun!.run + 1, attempts: 0 });
    expect(await segue.db.falRequest.count({ where: { accountId: account.id } })).toBe(0);
    expect(await claimSubmit(segue, kept!, { ...options(10), submissionId: uuidv7() })).toMatchObject({ status: 'SUBMITTED', attempts: 1 });
  });

  it('one claim that breaks its batch (a ledger row that already exists) fails alone: the others of the batch are claimed', async () => {
    await endAll();
    const account = await createTestAccount(segue);
    const { transitions } = await createAndGenerate(segue, account.id, { transitions: transitionInputs(4) });
    const taken = uuidv7();
    expect(await claimSubmit(segue, transitions[0]!, { ...options(10), submissionId: taken })).not.toBeNull();
    const batcher = new ClaimBatcher(segue, options(10));
    // The three go together (one event-loop turn), one of them reusing a submission id the
    // ledger already holds (a primary key violation inside the batch).
    const outcomes = await Promise.all(
      [
        batcher.claim(transitions[1]!, uuidv7()),
        batcher.claim(transitions[2]!, taken),
        batcher.claim(transitions[3]!, uuidv7()),
      ].map((claim) => claim.then((row) => (row ? 'claimed' : 'moved'), (error: { code?: string }) => `error ${error.code}`)),
    );
    expect(outcomes).toEqual(['claimed', 'error 23505', 'claimed']);
    expect((await segue.db.transition.findUniqueOrThrow({ where: { id: transitions[2]!.id } })).status).toBe('QUEUED');
  });
});

/**
 * fal's video for a request arrives at the moment its run gives up on it (FAL_TIMEOUT): the
 * video is paid for and must be the run's, whichever commits first. The give-up that commits
 * after the result was recorded finds a video and does not fail (worker/track.ts); the result
 * recorded while the give-up is in flight is taken once it has committed (recordResult).
 */
describe('a late video racing its run’s give-up', () => {
  it('is taken when it is recorded while the give-up is still in flight', { timeout: 30_000 }, async () => {
    const account = await createTestAccount(segue);
    const noQueue = { ...segue, generationJobs: { enqueue: async () => undefined, removeWaiting: async () => undefined } as never };
    const { transitions } = await createAndGenerate(noQueue, account.id, { transitions: transitionInputs(1) });
    const id = transitions[0]!.id;
    const requestId = `race-${id}`;
    const videoUrl = 'https://v3.fal.media/files/race/output.mp4';
    // Running at fal, canceled there after FAL_TIMEOUT, followed in the ledger.
    await segue.sql.query(
      `UPDATE "Transition" SET "status" = 'IN_PROGRESS', "falRequestId" = $2, "attempts" = 1, "version" = "version" + 1 WHERE "id" = $1::uuid`,
      [id, requestId],
    );
    await segue.sql.query(
      `INSERT INTO "FalRequest" ("requestId", "accountId", "transitionId", "run", "attempt", "model", "costUsd", "state", "cancelReason", "cancelRequestedAt")
       VALUES ($1, $2::uuid, $3::uuid, 1, 1, 'fal-ai/kling-video/v2.1/pro/image-to-video', 0.49, 'ACCEPTED', 'FAL_TIMEOUT', now())`,
      [requestId, account.id, id],
    );
    // The run gives up, in a transaction not yet committed (as attemptFailed's write is in flight).
    const giveUp = await holdTransaction(segue.config.databaseUrl);
    let recording: ReturnType<typeof recordResult> | undefined;
    try {
      await giveUp.query(
        `UPDATE "Transition" SET "status" = 'FAILED', "errorCode" = 'FAL_TIMEOUT', "errorMessage" = 'gave up', "completedAt" = now(), "version" = "version" + 1
         WHERE "id" = $1::uuid AND "falVideoUrl" IS NULL`,
        [id],
      );
      // fal's webhook brings the video now: its statement waits for the give-up's row.
      recording = recordResult(segue, requestId, videoUrl);
      await giveUp.blocks(recording, 'the result to wait for the give-up');
      await giveUp.commit();
      expect(await recording).toMatchObject({ late: true, row: { id, status: 'IN_PROGRESS', falVideoUrl: videoUrl, errorCode: null } });
    } finally {
      await giveUp.end();
      await recording?.catch(() => undefined);
    }
    expect(await segue.db.transition.findUniqueOrThrow({ where: { id } })).toMatchObject({ status: 'IN_PROGRESS', falVideoUrl: videoUrl });
    expect(await segue.db.falRequest.findUniqueOrThrow({ where: { requestId } })).toMatchObject({ state: 'ENDED', outcome: 'OK' });
  });
});
