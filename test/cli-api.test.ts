import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAndGenerate } from '../src/domain/generation.ts';
import { encodeId } from '../src/graphql/ids.ts';
import { transitionInput, transitionInputs } from './helpers/fixtures.ts';
import { startPipeline, type Pipeline } from './helpers/pipeline.ts';
import { run } from './helpers/process.ts';
import { gql, type TestAccount } from './helpers/app.ts';
import { DeleteTransitions } from './helpers/credential-operations.ts';
import { CancelTransition } from './helpers/operations.ts';
import { until } from './helpers/wait.ts';

let p: Pipeline;
let account: TestAccount;
const dir = mkdtempSync(join(tmpdir(), 'segue-cli-'));
beforeAll(async () => {
  p = await startPipeline({ emulator: { latencyMs: 300 }, env: { FAL_CONCURRENCY: '4', WORKER_CONCURRENCY: '9', FAL_MAX_RETRIES: '0' }, inlineWorkers: 1 });
  account = await p.account();
});
afterAll(() => p?.close());

/** `npm run cli -- ...` as a user would run it, against the running API. */
async function cli(args: string[], env: Record<string, string> = {}) {
  const child = run('npm', ['run', 'cli', '--', ...args], { SEGUE_API_URL: p.app.url, SEGUE_API_KEY: account.apiKey, ...env });
  const exit = await child.exited;
  return { code: exit.code, stdout: child.stdout(), output: child.output() };
}

const itemsFile = (items: unknown) => {
  const file = join(dir, `items-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(file, JSON.stringify(items));
  return file;
};

describe('CLI against a running API', () => {
  it('transitions create --file --generate --json prints the created transitions and batch', { timeout: 60_000 }, async () => {
    const { code, stdout } = await cli(['transitions', 'create', '--file', itemsFile(transitionInputs(2)), '--generate', '--json']);
    expect(code).toBe(0);
    const lines = stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    const created = JSON.parse(lines[0]!) as { event: string; transitions: Array<{ status: string }>; batch: { id: string; total: number; estimatedCost: number } };
    expect(created).toMatchObject({ event: 'created', batch: { total: 2, estimatedCost: 0.98 } });
    expect(created.transitions.map((t) => t.status)).toEqual(['QUEUED', 'QUEUED']);
  });

  it('transitions create --generate --watch follows the batch to the end and prints the video URLs', { timeout: 60_000 }, async () => {
    const { code, stdout } = await cli(['transitions', 'create', '--file', itemsFile({ transitions: transitionInputs(3) }), '--generate', '--watch']);
    expect(code).toBe(0);
    expect(stdout).toMatch(/Created 3 transition\(s\) in batch \S+ \(estimated \$1\.47\)/);
    expect(stdout).toMatch(/\d\/3 ended: \d completed/); // progress lines (no bar: not a terminal)
    expect(stdout).toMatch(/Batch \S+ COMPLETED: 3 completed, 0 failed, 0 canceled of 3\./);
    expect(stdout.match(/COMPLETED\s+http:\/\/127\.0\.0\.1:\d+\/media\/transitions\/\S+\.mp4/g)).toHaveLength(3);
  });

  it('batches watch <id> --json streams progress events and ends with a summary; exit 2 when some failed', { timeout: 60_000 }, async () => {
    const doomed = transitionInput({ prompt: `cli doomed ${Date.now()}` });
    p.emulator.inject({ on: 'job', error: 'server', times: 1, promptIncludes: doomed.prompt });
    const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: [doomed, transitionInput()] });
    const { code, stdout } = await cli(['batches', 'watch', encodeId('Batch', batch!.id), '--json']);
    expect(code).toBe(2);
    const events = stdout.trim().split('\n').map((l) => JSON.parse(l) as { event: string; batch: { status: string; transitions?: Array<{ status: string; error: { code: string } | null }> } });
    expect(events[0]!.event).toBe('progress');
    const summary = events.at(-1)!;
    expect(summary.event).toBe('summary');
    expect(summary.batch.status).toBe('PARTIAL');
    expect(summary.batch.transitions!.map((t) => t.status).sort()).toEqual(['COMPLETED', 'FAILED']);
    expect(summary.batch.transitions!.find((t) => t.status === 'FAILED')!.error!.code).toBe('FAL_JOB_ERROR');
  });

  it('batches watch <id> counts against the total of each event: transitions deleted meanwhile leave it smaller', { timeout: 60_000 }, async () => {
    p.emulator.configure({ latencyMs: 30_000 }); // the batch stays open until the test cancels it
    try {
      const { batch, transitions } = await createAndGenerate(p.app.segue, account.id, { transitions: transitionInputs(3) });
      const [gone, ...rest] = transitions.map((t) => encodeId('Transition', t.id));
      await gql(p.app.graphqlUrl, account.apiKey, CancelTransition, { id: gone! });
      const watch = run('npm', ['run', 'cli', '--', 'batches', 'watch', encodeId('Batch', batch!.id)], { SEGUE_API_URL: p.app.url, SEGUE_API_KEY: account.apiKey });
      await watch.waitFor(/1\/3 ended: 0 completed, 0 failed, 1 canceled/);
      await gql(p.app.graphqlUrl, account.apiKey, DeleteTransitions, { input: { ids: [gone!] } });
      await watch.waitFor(/0\/2 ended: 0 completed, 0 failed, 0 canceled/);
      for (const id of rest) await gql(p.app.graphqlUrl, account.apiKey, CancelTransition, { id });
      expect((await watch.exited).code).toBe(2);
      expect(watch.stdout()).toMatch(/2\/2 ended: 0 completed, 0 failed, 2 canceled/);
      expect(watch.stdout()).toMatch(/Batch \S+ CANCELED: 0 completed, 0 failed, 2 canceled of 2\./);
    } finally {
      p.emulator.configure({ latencyMs: 300 });
    }
  });

  it('transitions retry <id> and transitions cancel <id>; a wrong state is a CONFLICT with exit 1', { timeout: 60_000 }, async () => {
    const doomed = transitionInput({ prompt: `cli retry ${Date.now()}` });
    p.emulator.inject({ on: 'job', error: 'server', times: 1, promptIncludes: doomed.prompt });
    const { batch, transitions } = await createAndGenerate(p.app.segue, account.id, { transitions: [doomed] });
    await p.settled(batch!.id);
    const id = encodeId('Transition', transitions[0]!.id);
    p.emulator.configure({ latencyMs: 5_000 }); // the retried run stays in progress long enough to cancel
    const retried = await cli(['transitions', 'retry', id, '--json']);
    expect(retried.code).toBe(0);
    expect(JSON.parse(retried.stdout)).toMatchObject({ id, status: 'QUEUED' });

    await until(async () => (await p.app.segue.db.transition.findUniqueOrThrow({ where: { id: transitions[0]!.id } })).status === 'IN_PROGRESS', { what: 'running' });
    const canceled = await cli(['transitions', 'cancel', id]);
    expect(canceled.code).toBe(0);
    expect(canceled.stdout).toMatch(new RegExp(`${id}\\s+CANCELED`));
    p.emulator.configure({ latencyMs: 300 });

    const again = await cli(['transitions', 'cancel', id]);
    expect(again.code).toBe(1);
    expect(again.output).toMatch(/CONFLICT: Only a queued or running transition can be canceled/);
  });

  it('queue stats and workers, as text and --json', { timeout: 60_000 }, async () => {
    const stats = await cli(['queue', 'stats', '--json']);
    expect(stats.code).toBe(0);
    const parsed = JSON.parse(stats.stdout) as { falConcurrency: number; workersOnline: number; byStatus: unknown[] };
    expect(parsed.falConcurrency).toBe(4);
    expect(parsed.workersOnline).toBeGreaterThanOrEqual(1);
    expect(parsed.byStatus.length).toBeGreaterThan(0);
    const text = await cli(['queue', 'stats']);
    expect(text.stdout).toMatch(/fal requests in flight: \d+ of 4/);
    // The workers' hosts and processes are for operators: read from Redis, no API key.
    const operator = { SEGUE_API_KEY: '', QUEUE_PREFIX: p.env.QUEUE_PREFIX! };
    const workers = await cli(['workers', '--json'], operator);
    const online = JSON.parse(workers.stdout) as Array<{ pid: number; concurrency: number; startedAt: string }>;
    expect(online).toEqual(expect.arrayContaining([expect.objectContaining({ concurrency: 9, pid: process.pid })]));
    // Redis tells a connection's age in whole seconds: the start is given to the second, not a
    // millisecond figure made up anew at each call.
    for (const worker of online) expect(worker.startedAt, worker.startedAt).toMatch(/:\d\d\.000Z$/);
    expect((await cli(['workers'], operator)).stdout).toMatch(/pid \d+\s+concurrency 9/);
  });

  it('accounts budget sets a spending limit the API then enforces', { timeout: 60_000 }, async () => {
    const other = await p.account();
    const set = await cli(['accounts', 'budget', encodeId('Account', other.id), '0.5', '--json'], { DATABASE_URL: process.env.DATABASE_URL! });
    expect(set.code).toBe(0);
    const refused = await cli(['transitions', 'create', '--file', itemsFile(transitionInputs(2)), '--generate'], { SEGUE_API_KEY: other.apiKey });
    expect(refused.code).toBe(1);
    expect(refused.output).toMatch(/BUDGET_EXCEEDED/);
  });

  it('without an API key it says how to give one', async () => {
    const none = await cli(['queue', 'stats'], { SEGUE_API_KEY: '' });
    expect(none.code).toBe(1);
    expect(none.output).toMatch(/--api-key or set SEGUE_API_KEY/);
  });
});
