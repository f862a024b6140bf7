import { Writable } from 'node:stream';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { createAndGenerate } from '../src/domain/generation.ts';
import { createLogger } from '../src/logger.ts';
import { createSegue } from '../src/runtime.ts';
import { startWorker } from '../src/worker/worker.ts';
import { testConfig, type Overrides } from './helpers/app.ts';
import { transitionInputs } from './helpers/fixtures.ts';
import { startPgProxy, type PgProxy } from './helpers/pg-proxy.ts';
import { startPipeline, type Pipeline } from './helpers/pipeline.ts';
import { until } from './helpers/wait.ts';

/**
 * PostgreSQL failing around a submit: a claim whose commit's answer is lost is undone before
 * anything is sent (no FAL_SUBMIT_UNCERTAIN for a submit that never left), and a request id fal
 * returned is written until it is stored (no accepted request missing from the ledger). Nothing
 * is ever submitted twice.
 */
let p: Pipeline | undefined;
let proxy: PgProxy | undefined;
afterEach(async () => {
  await p?.close();
  await proxy?.close();
  p = proxy = undefined;
});

/** A worker in this process, with its own settings and a log the test can read. */
async function worker(pipeline: Pipeline, extra: Overrides) {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  const config = testConfig({ ...pipeline.env, ...extra, LOG_LEVEL: 'info' });
  const segue = createSegue(config, { logger: createLogger(config, {}, sink) });
  pipeline.inline.push({ segue, worker: await startWorker(segue) });
  return { log: () => lines.join('') };
}

const promptsSent = (pipeline: Pipeline) => pipeline.emulator.requests().map((r) => (r.input as { prompt: string }).prompt);

describe('PostgreSQL failing around a submit', () => {
  it('the answer to the claim’s commit is lost: the claim is undone, the submit goes out once, later; no FAL_SUBMIT_UNCERTAIN', { timeout: 60_000 }, async () => {
    p = await startPipeline({ emulator: { latencyMs: 200 } });
    proxy = await startPgProxy(new URL(process.env.DATABASE_URL!));
    await worker(p, { DATABASE_URL: proxy.url });
    const cut = proxy.loseNextCommitAnswer();
    const account = await p.account();
    const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: transitionInputs(1) });
    // The transaction whose answer was lost is the claim (it takes the slot lock).
    expect((await cut).join('\n')).toMatch(/pg_advisory_xact_lock/);
    const [row] = await p.settled(batch!.id, 30_000);
    expect(row).toMatchObject({ status: 'COMPLETED', attempts: 1 });
    expect(p.emulator.counters()).toMatchObject({ submitted: 1, duplicateInputs: 0 });
    const ledger = await p.app.segue.db.falRequest.findMany({ where: { transitionId: row!.id } });
    expect(ledger.map((f) => [f.attempt, f.requestId, f.state])).toEqual([[1, row!.falRequestId, 'ENDED']]);
  });

  it('PostgreSQL refuses to record the request id fal returned: it is written again until stored; nothing is lost or paid twice', { timeout: 60_000 }, async () => {
    p = await startPipeline({ emulator: { latencyMs: 200 } });
    const { log } = await worker(p, { DATABASE_STATEMENT_TIMEOUT_MS: '300' });
    const account = await p.account();
    // fal takes the job at once but answers 1.5 s later: meanwhile the ledger is locked.
    p.emulator.inject({ on: 'submit', delayMs: 1_500 });
    const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: transitionInputs(1) });
    await until(() => p!.emulator.requests().length === 1, { what: 'the submit at fal' });
    const blocker = new pg.Client({ connectionString: process.env.DATABASE_URL });
    await blocker.connect();
    try {
      await blocker.query('BEGIN');
      await blocker.query('LOCK TABLE "FalRequest" IN ACCESS EXCLUSIVE MODE');
      await until(() => /could not record the request id fal returned yet/.test(log()), { timeoutMs: 10_000, what: 'a failed write of the id' });
      await new Promise((r) => setTimeout(r, 1_000));
      await blocker.query('COMMIT');
    } finally {
      await blocker.end();
    }
    const [row] = await p.settled(batch!.id, 30_000);
    expect(row).toMatchObject({ status: 'COMPLETED', attempts: 1, falRequestId: p.emulator.requests()[0]!.requestId });
    expect(p.emulator.counters()).toMatchObject({ submitted: 1, duplicateInputs: 0 });
    expect(await p.app.segue.db.falRequest.count({ where: { requestId: row!.falRequestId } })).toBe(1);
  });

  it("PostgreSQL connections killed over and over mid-batch: every submit fal saw is in the ledger, none is uncertain, none twice", { timeout: 90_000 }, async () => {
    p = await startPipeline({ emulator: { latencyMs: 300, latencyJitterMs: 200 }, env: { FAL_CONCURRENCY: '8' } });
    await worker(p, {});
    const account = await p.account();
    const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: transitionInputs(20) });
    const admin = new pg.Client({ connectionString: process.env.DATABASE_URL });
    await admin.connect();
    let killed = 0;
    try {
      // What a PostgreSQL restart or failover does to every open connection (the claims' own
      // included), every 150 ms for 4 s.
      for (const until = Date.now() + 4_000; Date.now() < until; ) {
        const { rowCount } = await admin.query(
          `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
           WHERE datname = current_database() AND application_name LIKE 'segue%' AND pid <> pg_backend_pid()`,
        );
        killed += rowCount ?? 0;
        await new Promise((r) => setTimeout(r, 150));
      }
    } finally {
      await admin.end();
    }
    expect(killed).toBeGreaterThan(10);
    const rows = await p.settled(batch!.id, 60_000);
    expect(rows.filter((r) => r.status === 'COMPLETED')).toHaveLength(20);
    expect(rows.some((r) => r.errorCode === 'FAL_SUBMIT_UNCERTAIN')).toBe(false);
    expect(p.emulator.counters()).toMatchObject({ submitted: 20, duplicateInputs: 0 });
    const ledgered = await p.app.segue.db.falRequest.findMany({ where: { accountId: account.id } });
    expect(new Set(ledgered.map((f) => f.requestId))).toEqual(new Set(p.emulator.requests().map((r) => r.requestId)));
    expect(new Set(promptsSent(p))).toEqual(new Set(rows.map((r) => r.prompt)));
  });
});
