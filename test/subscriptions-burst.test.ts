import { afterEach, describe, expect, it } from 'vitest';
import { createAndGenerate } from '../src/domain/generation.ts';
import { encodeId } from '../src/graphql/ids.ts';
import { SetupTurns } from '../src/http/setup-turns.ts';
import { transitionInputs } from './helpers/fixtures.ts';
import { TransitionUpdated } from './helpers/operations.ts';
import { startPipeline, type Pipeline } from './helpers/pipeline.ts';
import { subscribe, wsClient } from './helpers/subscribe.ts';
import { until } from './helpers/wait.ts';

/**
 * After an API restart every browser reconnects at once. Connections and subscriptions are set
 * up in turns (SUBSCRIPTION_SETUP_CONCURRENCY at once): the burst waits, none is refused.
 */
let p: Pipeline | undefined;
afterEach(async () => {
  await p?.close();
  p = undefined;
});

describe('a burst of subscribers', () => {
  it('setup turns: at most `limit` at once, the rest in arrival order, each turn passed on when it ends', async () => {
    const turns = new SetupTurns(2);
    let running = 0;
    let most = 0;
    const order: number[] = [];
    await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        turns.run(async () => {
          running++;
          most = Math.max(most, running);
          order.push(i);
          await new Promise((r) => setTimeout(r, 5));
          running--;
        }),
      ),
    );
    expect(most).toBe(2);
    expect(order).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(turns.queued).toBe(0);
    // Ending a turn twice gives back one turn only.
    const end = await turns.take();
    end();
    end();
    const [a, b] = await Promise.all([turns.take(), turns.take()]);
    let third = false;
    void turns.take().then(() => (third = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(third).toBe(false);
    a();
    await until(() => third, { what: 'the third turn' });
    b();
  });

  it('150 WebSocket subscribers connecting at once, 2 set up at a time: every one gets its snapshot and every change', { timeout: 120_000 }, async () => {
    p = await startPipeline({
      emulator: { latencyMs: 300 },
      env: { SUBSCRIPTION_SETUP_CONCURRENCY: '2', SUBSCRIPTIONS_PER_ACCOUNT: '1000' },
    });
    const account = await p.account();
    const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: transitionInputs(3) });
    const batchId = encodeId('Batch', batch!.id);
    const clients = Array.from({ length: 150 }, () => wsClient(p!.app.url + '/graphql', account.apiKey));
    const subs = clients.map((ws) => subscribe(ws, TransitionUpdated, { batchId }, (d) => d.transitionUpdated));
    await until(() => subs.every((s) => s.events.length >= 3), { what: 'every snapshot', timeoutMs: 60_000 });
    expect(subs.every((s) => s.events.slice(0, 3).every((e) => e.status === 'QUEUED'))).toBe(true);

    await p.startInlineWorker();
    await Promise.all(subs.map((s) => s.done));
    for (const s of subs) {
      expect(s.errors).toEqual([]);
      const last = new Map(s.events.map((e) => [e.id, e.status]));
      expect([...last.values()]).toEqual(['COMPLETED', 'COMPLETED', 'COMPLETED']);
    }
    await Promise.all(clients.map((c) => c.dispose()));
  });
});
