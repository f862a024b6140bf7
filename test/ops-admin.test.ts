import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAndGenerate } from '../src/domain/generation.ts';
import { startTestApp } from './helpers/app.ts';
import { transitionInput } from './helpers/fixtures.ts';
import { startPipeline, type Pipeline } from './helpers/pipeline.ts';
import { until } from './helpers/wait.ts';

const TOKEN = 'admin-token-for-tests-0123456789';
let p: Pipeline;
beforeAll(async () => {
  p = await startPipeline({ emulator: { latencyMs: 100 }, env: { ADMIN_TOKEN: TOKEN, FAL_MAX_RETRIES: '0' }, inlineWorkers: 1 });
});
afterAll(() => p?.close());

const basic = (password: string) => `Basic ${Buffer.from(`admin:${password}`).toString('base64')}`;

describe('queue dashboard (Bull Board) at /admin/queues', () => {
  it('does not exist without ADMIN_TOKEN', async () => {
    const app = await startTestApp();
    try {
      expect((await fetch(`${app.url}/admin/queues`)).status).toBe(404);
    } finally {
      await app.close();
    }
  });

  it('asks for the token (Basic, so a browser can log in), and refuses a wrong one', async () => {
    const none = await fetch(`${p.app.url}/admin/queues`);
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toMatch(/^Basic realm="Segue admin"/);
    expect((await fetch(`${p.app.url}/admin/queues`, { headers: { authorization: 'Bearer wrong-token-0123456789' } })).status).toBe(401);
    expect((await fetch(`${p.app.url}/admin/queues/api/queues`, { headers: { authorization: basic('nope') } })).status).toBe(401);
  });

  it('serves the board with a Bearer token or Basic auth, listing the generation, copy and media queues', async () => {
    const page = await fetch(`${p.app.url}/admin/queues`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(page.status).toBe(200);
    expect(await page.text()).toMatch(/<div id="root">|bull/i);
    const api = await fetch(`${p.app.url}/admin/queues/api/queues`, { headers: { authorization: basic(TOKEN) } });
    expect(api.status).toBe(200);
    const body = (await api.json()) as { queues: Array<{ name: string }> };
    expect(body.queues.map((q) => q.name)).toEqual(expect.arrayContaining(['generation', 'copy', 'media']));
  });

  it('retrying a failed job there generates its transition again; clean removes failed jobs', { timeout: 60_000 }, async () => {
    const account = await p.account();
    const input = transitionInput({ prompt: `dashboard ${Date.now()}` });
    p.emulator.inject({ on: 'job', error: 'server', times: 1, promptIncludes: input.prompt });
    const { batch, transitions } = await createAndGenerate(p.app.segue, account.id, { transitions: [input] });
    const [failed] = await p.settled(batch!.id);
    expect(failed).toMatchObject({ status: 'FAILED', errorCode: 'FAL_JOB_ERROR', run: 1 });
    await until(async () => (await p.app.segue.generationJobs.queue.getFailedCount()) > 0, { what: 'the failed job' });

    const auth = { authorization: `Bearer ${TOKEN}` };
    const retry = await fetch(`${p.app.url}/admin/queues/api/queues/generation/retry/failed`, { method: 'PUT', headers: auth });
    expect(retry.status).toBe(200);
    const done = await until(async () => {
      const row = await p.app.segue.db.transition.findUniqueOrThrow({ where: { id: transitions[0]!.id } });
      return row.status === 'COMPLETED' ? row : null;
    }, { what: 'the retried transition to complete' });
    expect(done.run).toBe(2);

    // Another failure, cleaned this time.
    const other = transitionInput({ prompt: `clean ${Date.now()}` });
    p.emulator.inject({ on: 'job', error: 'server', times: 1, promptIncludes: other.prompt });
    const second = await createAndGenerate(p.app.segue, account.id, { transitions: [other] });
    await p.settled(second.batch!.id);
    await until(async () => (await p.app.segue.generationJobs.queue.getFailedCount()) > 0, { what: 'a failed job' });
    // Bull Board cleans jobs that failed more than 5 s ago.
    await until(
      async () => {
        const clean = await fetch(`${p.app.url}/admin/queues/api/queues/generation/clean/failed`, { method: 'PUT', headers: auth });
        expect(clean.status).toBe(200);
        return (await p.app.segue.generationJobs.queue.getFailedCount()) === 0;
      },
      { what: 'no failed jobs', intervalMs: 1000, timeoutMs: 15_000 },
    );
  });
});
