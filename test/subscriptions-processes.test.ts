import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAndGenerate } from '../src/domain/generation.ts';
import { encodeId } from '../src/graphql/ids.ts';
import { transitionInputs } from './helpers/fixtures.ts';
import { BatchProgress, TransitionUpdated } from './helpers/operations.ts';
import { startPipeline, type Pipeline } from './helpers/pipeline.ts';
import { freePort, tsx, type Child } from './helpers/process.ts';
import { sseClient, subscribe, wsClient } from './helpers/subscribe.ts';
import { until } from './helpers/wait.ts';

let p: Pipeline;
const apis: Array<{ child: Child; url: string }> = [];

async function startApiProcess() {
  const port = await freePort();
  const child = tsx('src/main.ts', ['api'], { ...p.env, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'info', LOG_PRETTY: 'false' });
  await child.waitFor(/GraphiQL at/, 30_000);
  const api = { child, url: `http://127.0.0.1:${port}` };
  apis.push(api);
  return api;
}

beforeAll(async () => {
  p = await startPipeline({ emulator: { latencyMs: 200 }, env: { FAL_CONCURRENCY: '5' } });
});
afterAll(async () => {
  await Promise.all(apis.map((a) => a.child.stop('SIGKILL')));
  await p?.close();
});

describe('events cross processes through Redis', () => {
  it('two API processes and one worker process: a client on either API sees the worker’s events', { timeout: 90_000 }, async () => {
    const [one, two] = [await startApiProcess(), await startApiProcess()];
    const account = await p.account();
    const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: transitionInputs(6) });
    const batchId = encodeId('Batch', batch!.id);
    const ws = wsClient(`${one.url}/graphql`, account.apiKey);
    const onOne = subscribe(ws, TransitionUpdated, { batchId }, (d) => d.transitionUpdated);
    const onTwo = subscribe(sseClient(`${two.url}/graphql`, account.apiKey), BatchProgress, { id: batchId }, (d) => d.batchProgress);
    await until(() => onOne.events.length >= 6 && onTwo.events.length >= 1, { what: 'snapshots from both APIs' });

    await p.startChildWorker();
    await Promise.all([onOne.done, onTwo.done]);
    expect(onOne.errors).toEqual([]);
    const completed = new Set(onOne.events.filter((e) => e.status === 'COMPLETED').map((e) => e.id));
    expect(completed.size).toBe(6);
    expect(onOne.events.some((e) => e.status === 'SUBMITTED')).toBe(true);
    expect(onTwo.events.at(-1)).toMatchObject({ status: 'COMPLETED', completed: 6 });
    expect(onTwo.events.length).toBeGreaterThan(2);
    await ws.dispose();
  });

  it('SIGTERM closes WebSocket clients cleanly (1001) and the process exits', { timeout: 60_000 }, async () => {
    const api = await startApiProcess();
    const account = await p.account();
    let closedWith = 0;
    const ws = wsClient(`${api.url}/graphql`, account.apiKey, { onClose: (code) => (closedWith = code) });
    const sub = subscribe(ws, TransitionUpdated, {}, (d) => d.transitionUpdated);
    await new Promise((r) => setTimeout(r, 500));
    api.child.process.kill('SIGTERM');
    const exit = await api.child.exited;
    expect(exit.code).toBe(0);
    await sub.done.catch(() => undefined);
    expect(closedWith).toBe(1001);
  });
});
