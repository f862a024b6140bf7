import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAndGenerate } from '../src/domain/generation.ts';
import { applyProviderCallback } from '../src/domain/provider-callbacks.ts';
import { transitionInput, transitionInputs } from './helpers/fixtures.ts';
import { startPipeline, type Pipeline } from './helpers/pipeline.ts';
import { until } from './helpers/wait.ts';

const WEBHOOK_WAIT_MS = 5_000;

let p: Pipeline;
beforeAll(async () => {
  p = await startPipeline({
    emulator: { latencyMs: 300 },
    webhooks: true,
    // Polling so slow that only a webhook can finish a transition within these tests. A wait for
    // the webhook long enough that no test's webhook misses it on a busy machine, and a retry
    // that goes out at once, so that what waited shows.
    env: { FAL_POLL_INTERVAL_MS: '60000', FAL_POLL_MAX_INTERVAL_MS: '60000', FAL_WEBHOOK_WAIT_MS: String(WEBHOOK_WAIT_MS), FAL_RETRY_DELAY_MS: '100' },
    inlineWorkers: 1,
  });
});
afterAll(() => p?.close());

const row = (id: string) => p.app.segue.db.transition.findUniqueOrThrow({ where: { id } });

/**
 * One transition whose first request fal fails (a server error), then retried: how long after
 * fal's failure its retry went out. `arrange` sets up how fal tells of the failure.
 */
async function failedThenRetried(arrange: () => void) {
  const account = await p.account();
  p.emulator.reset();
  const [input] = transitionInputs(1);
  p.emulator.inject({ on: 'job', error: 'server', times: 1, promptIncludes: input!.prompt });
  arrange();
  const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: [input!] });
  const [row] = await p.settled(batch!.id, 30_000);
  expect(row).toMatchObject({ status: 'COMPLETED', attempts: 2 });
  const [failed, retried] = p.emulator.requests().sort((a, b) => a.submittedAt - b.submittedAt);
  expect(failed).toMatchObject({ outcome: 'error' });
  // The failed request and its retry (the same input again, after fal's failure): no more.
  expect(p.emulator.counters()).toMatchObject({ submitted: 2 });
  return retried!.submittedAt - failed!.completedAt!;
}

/** The worker's segue_fal_webhook_waits_total, by outcome. */
async function webhookWaits() {
  const { values } = await p.inline[0]!.segue.metrics.webhookWaits.get();
  const of = (outcome: string) => values.find((v) => v.labels.outcome === outcome)?.value ?? 0;
  return { webhook: of('webhook'), read: of('read') };
}

async function postWebhook(body: unknown, headers: Record<string, string> = {}) {
  const response = await fetch(`${p.app.url}/webhooks/fal`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  return response.status;
}

describe('fal webhooks', () => {
  it('a valid webhook completes the transition at once; the same one again changes nothing', async () => {
    const account = await p.account();
    const { transitions } = await createAndGenerate(p.app.segue, account.id, { transitions: [transitionInput()] });
    const id = transitions[0]!.id;
    const completed = await until(async () => {
      const r = await row(id);
      return r.status === 'COMPLETED' ? r : null;
    }, { timeoutMs: 10_000, what: 'completion by webhook' });
    expect(completed.falVideoUrl).toMatch(/\/files\/.+\/output\.mp4$/);
    expect(completed.videoUrl).toMatch(/\/media\/transitions\//);
    // The poster comes a moment later; after it, nothing more changes this row.
    const done = await until(async () => {
      const r = await row(id);
      return r.posterUrl ? r : null;
    }, { what: 'the poster' });
    await until(() => p.emulator.counters().webhooksDelivered >= 1, { what: 'the delivery to be acknowledged' });
    const submitted = p.emulator.requests().find((r) => r.requestId === done.falRequestId)!;
    expect(submitted.webhookUrl).toMatch(new RegExp(`^${p.app.url}/webhooks/fal\\?transition=${id}&run=1&attempt=1&token=`));

    expect(await p.emulator.redeliverWebhook(done.falRequestId!)).toBe(200);
    const after = await row(id);
    expect(after.version).toBe(done.version);
    expect(after.updatedAt).toEqual(done.updatedAt);
  });

  it('forged, unsigned, tampered or stale webhooks get 401 and change nothing', async () => {
    const account = await p.account();
    p.emulator.configure({ latencyMs: 5_000 });
    const { transitions } = await createAndGenerate(p.app.segue, account.id, { transitions: [transitionInput()] });
    const id = transitions[0]!.id;
    // IN_PROGRESS (fal's status stream moves it there): nothing else changes the row until fal is done.
    const running = await until(async () => {
      const r = await row(id);
      return r.falRequestId && r.status === 'IN_PROGRESS' ? r : null;
    }, { what: 'a fal request id, IN_PROGRESS' });
    const forgedBody = {
      request_id: running.falRequestId,
      gateway_request_id: running.falRequestId,
      status: 'OK',
      payload: { video: { url: 'https://evil.example/video.mp4' } },
    };
    const now = String(Math.floor(Date.now() / 1000));
    expect(await postWebhook(forgedBody)).toBe(401);
    expect(
      await postWebhook(forgedBody, {
        'x-fal-webhook-request-id': running.falRequestId!,
        'x-fal-webhook-user-id': 'attacker',
        'x-fal-webhook-timestamp': now,
        'x-fal-webhook-signature': 'ab'.repeat(64),
      }),
    ).toBe(401);
    const untouched = await row(id);
    expect(untouched.version).toBe(running.version);
    expect(untouched.videoUrl).toBeNull();

    p.emulator.configure({ latencyMs: 300 });
    const done = await until(async () => {
      const r = await row(id);
      return r.status === 'COMPLETED' && r.posterUrl ? r : null;
    }, { timeoutMs: 15_000, what: 'completion by webhook, and its poster' });
    for (const variant of [{ unsigned: true }, { badSignature: true }, { tamperBody: true }, { timestampOffsetSec: -600 }, { timestampOffsetSec: 600 }]) {
      expect(await p.emulator.redeliverWebhook(done.falRequestId!, variant), JSON.stringify(variant)).toBe(401);
    }
    expect((await row(id)).version).toBe(done.version);
  });
});

describe('the result of a request fal finished', () => {
  it('comes with its webhook: the worker, told by the status stream that fal finished, reads none itself', { timeout: 60_000 }, async () => {
    const account = await p.account();
    p.emulator.reset();
    const waits = await webhookWaits();
    const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: transitionInputs(6) });
    const rows = await p.settled(batch!.id, 30_000);
    expect(rows.every((r) => r.status === 'COMPLETED' && r.attempts === 1)).toBe(true);
    const c = p.emulator.counters();
    // Every request was followed on its stream to COMPLETED; reading each result as well was the
    // same work twice (about every one of them, as the stream is usually first).
    expect(c).toMatchObject({ submitted: 6, duplicateInputs: 0, resultCalls: 0 });
    expect(c.streamsOpened).toBeGreaterThanOrEqual(6);
    const ledger = await p.app.segue.db.falRequest.findMany({ where: { accountId: account.id } });
    expect(ledger.map((l) => [l.state, l.outcome])).toEqual(Array(6).fill(['ENDED', 'OK']));
    expect(await webhookWaits()).toEqual({ webhook: waits.webhook + 6, read: waits.read });
  });

  it('is read from fal when the webhook is late, FAL_WEBHOOK_WAIT_MS after the stream said fal finished, the slot freed at once; the late webhook changes nothing', { timeout: 60_000 }, async () => {
    const account = await p.account();
    p.emulator.reset();
    p.emulator.inject({ on: 'webhook', delayMs: WEBHOOK_WAIT_MS + 6_000, times: 3 });
    const waits = await webhookWaits();
    const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: transitionInputs(3) });
    const rows = await p.settled(batch!.id, 30_000);
    expect(rows.every((r) => r.status === 'COMPLETED' && r.attempts === 1)).toBe(true);
    // Stored before any webhook came, from reads of fal's.
    expect(p.emulator.counters()).toMatchObject({ submitted: 3, duplicateInputs: 0, resultCalls: 3, webhooksDelivered: 0 });
    // What an operator sees when webhooks do not reach the API.
    expect(await webhookWaits()).toEqual({ webhook: waits.webhook, read: waits.read + 3 });
    const finished = new Map(p.emulator.requests().map((r) => [r.requestId, r.completedAt!]));
    const ledger = new Map((await p.app.segue.db.falRequest.findMany({ where: { accountId: account.id } })).map((l) => [l.requestId, l]));
    for (const row of rows) {
      const falDone = finished.get(row.falRequestId!)!;
      const stored = row.completedAt!.getTime() - falDone;
      expect(stored, 'the wait for the webhook').toBeGreaterThanOrEqual(WEBHOOK_WAIT_MS - 50);
      expect(stored, 'not the webhook itself').toBeLessThan(WEBHOOK_WAIT_MS + 5_000);
      // The slot was free while the webhook was awaited: the ledger ended as the stream said so.
      const { endedAt, outcome } = ledger.get(row.falRequestId!)!;
      expect(outcome).toBe('OK');
      expect(endedAt!.getTime() - falDone, 'the ledger ended at the start of the wait').toBeLessThan(WEBHOOK_WAIT_MS / 2);
    }
    const done = await until(async () => {
      const now = await p.app.segue.db.transition.findMany({ where: { batchId: batch!.id } });
      return now.every((r) => r.posterUrl) ? now : null;
    }, { what: 'the posters' });
    await until(() => p.emulator.counters().webhooksDelivered === 3, { timeoutMs: 15_000, what: 'the late webhooks' });
    const after = await p.app.segue.db.transition.findMany({ where: { batchId: batch!.id } });
    expect(after.map((r) => [r.id, r.version]).sort()).toEqual(done.map((r) => [r.id, r.version]).sort());
    expect(p.emulator.counters()).toMatchObject({ submitted: 3, resultCalls: 3 });
  });

  it('comes with a webhook later than the wait, while reading it from fal fails: the webhook\'s video is stored, not read again', { timeout: 60_000 }, async () => {
    const account = await p.account();
    p.emulator.reset();
    const late = WEBHOOK_WAIT_MS + 2_000;
    // fal's result endpoint is in trouble (a 500 without the request's id: a passing fault, read
    // again only after FAL_POLL_INTERVAL_MS, 60 s here); the webhook comes a while after the wait.
    p.emulator.inject({ on: 'result', status: 500, times: 20 });
    p.emulator.inject({ on: 'webhook', delayMs: late, times: 1 });
    const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: [transitionInput()] });
    const [done] = await p.settled(batch!.id, 30_000);
    expect(done).toMatchObject({ status: 'COMPLETED', attempts: 1 });
    expect(p.emulator.counters()).toMatchObject({ submitted: 1, resultCalls: 1 });
    const falDone = p.emulator.requests()[0]!.completedAt!;
    const stored = done!.completedAt!.getTime() - falDone;
    expect(stored, 'stored from the webhook').toBeGreaterThanOrEqual(late - 50);
    // Long before the next read would have been (60 s after the first).
    expect(stored, 'as the webhook came').toBeLessThan(late + 10_000);
    await until(() => p.emulator.counters().webhooksDelivered === 1, { what: 'the webhook to be acknowledged' });
  });

  it('of a request fal failed is read at once, not after FAL_WEBHOOK_WAIT_MS: its retry goes out before the wait would have ended', { timeout: 60_000 }, async () => {
    // Its webhook comes late: only the stream tells the worker fal is done.
    const wait = await failedThenRetried(() => p.emulator.inject({ on: 'webhook', delayMs: WEBHOOK_WAIT_MS + 4_000, times: 1 }));
    expect(wait, `retry ${wait} ms after the failure`).toBeLessThan(WEBHOOK_WAIT_MS - 1_000);
  });
});

describe('a failure fal reports by webhook while its status says only COMPLETED (fal\'s older status bodies)', () => {
  it('ends the attempt with fal\'s error at once: the retry goes out within seconds, not after FAL_RESULT_TIMEOUT_MS', { timeout: 60_000 }, async () => {
    try {
      // Only the webhook says it failed (at once); the stream and the status say COMPLETED.
      const wait = await failedThenRetried(() => p.emulator.configure({ statusErrors: false }));
      expect(wait, `retry ${wait} ms after the failure`).toBeLessThan(WEBHOOK_WAIT_MS - 1_000);
    } finally {
      p.emulator.configure({ statusErrors: true });
    }
  });

  it('heard after the wait, while the result read keeps failing: the read stops waiting and the attempt ends at once', { timeout: 60_000 }, async () => {
    const late = WEBHOOK_WAIT_MS + 3_000;
    try {
      // The wait ends first: the failure's 5xx reads as a passing fault, tried again only after
      // FAL_POLL_INTERVAL_MS (60 s here) unless the webhook's word comes meanwhile.
      const wait = await failedThenRetried(() => {
        p.emulator.configure({ statusErrors: false });
        p.emulator.inject({ on: 'webhook', delayMs: late, times: 1 });
      });
      expect(wait, `retry ${wait} ms after the failure`).toBeGreaterThanOrEqual(late);
      // Long before the next read would have been (60 s after the first).
      expect(wait, `retry ${wait} ms after the failure`).toBeLessThan(late + 10_000);
    } finally {
      p.emulator.configure({ statusErrors: true });
    }
  });
});

describe('a webhook that comes after the result was recorded', () => {
  it('is answered in one statement and changes nothing (the tracker read the result first, or fal delivers it again); one naming another submission or an unknown request goes the long way', async () => {
    const account = await p.account();
    p.emulator.reset();
    const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: [transitionInput()] });
    const [completed] = await p.settled(batch!.id);
    expect(completed).toMatchObject({ status: 'COMPLETED', attempts: 1 });
    // The poster comes a moment later; after it, nothing more changes this row.
    const done = await until(async () => {
      const r = await row(completed!.id);
      return r.posterUrl ? r : null;
    }, { what: 'the poster' });
    const requestId = done.falRequestId!;
    // The real dependencies, each statement counted.
    const statements: string[] = [];
    const segue = p.app.segue;
    // And every notice to a worker that fal ended a request without a result: none is due here.
    const notices: unknown[] = [];
    const deps = {
      ...segue,
      sql: { ...segue.sql, query: ((text: string, params: readonly unknown[]) => (statements.push(text), segue.sql.query(text, params))) as typeof segue.sql.query },
      requestEnded: async (ended: unknown) => void notices.push(ended),
    };
    const callback = (overrides: Partial<Parameters<typeof applyProviderCallback>[1]> = {}) =>
      applyProviderCallback(deps, {
        requestId,
        ok: true,
        videoUrl: done.falVideoUrl,
        submission: { transitionId: done.id, run: done.run, attempt: done.attempts },
        ...overrides,
      });

    expect(await callback()).toBe('duplicate');
    expect(statements).toHaveLength(1);
    expect(await callback({ submission: null })).toBe('duplicate');
    expect(statements).toHaveLength(2);
    // Another attempt of the run names this request: not the ledger's, so adoption is looked at.
    statements.length = 0;
    expect(await callback({ submission: { transitionId: done.id, run: done.run, attempt: done.attempts + 1 } })).toBe('duplicate');
    expect(statements.length).toBeGreaterThan(1);
    statements.length = 0;
    expect(await callback({ requestId: 'req-nobody-knows', submission: null })).toBe('unknown');
    expect(statements.length).toBeGreaterThan(1);
    // A failure for a request the ledger has already ended (a late or forged status) wakes nobody.
    await callback({ ok: false, videoUrl: null });
    expect(notices).toEqual([]);

    const after = await row(done.id);
    expect(after.version).toBe(done.version);
    expect(after.updatedAt).toEqual(done.updatedAt);
    const [ledger] = await segue.sql.query<{ state: string; outcome: string; count: string }>(
      `SELECT "state", "outcome", (SELECT count(*) FROM "FalRequest" WHERE "transitionId" = $2::uuid) AS count FROM "FalRequest" WHERE "requestId" = $1`,
      [requestId, done.id],
    );
    expect(ledger).toMatchObject({ state: 'ENDED', outcome: 'OK', count: '1' });
  });
});

describe('a submit whose answer is lost', () => {
  it('with webhooks, fal’s callback brings the request id and the transition completes', { timeout: 60_000 }, async () => {
    const account = await p.account();
    p.emulator.reset();
    p.emulator.inject({ on: 'submit', dropResponse: true, times: 1 });
    const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: [transitionInput()] });
    const [r] = await p.settled(batch!.id, 30_000);
    expect(r).toMatchObject({ status: 'COMPLETED', attempts: 1 });
    expect(r!.falRequestId).toBe(p.emulator.requests()[0]!.requestId);
    expect(p.emulator.counters()).toMatchObject({ submitted: 1, duplicateInputs: 0 });
  });
});
