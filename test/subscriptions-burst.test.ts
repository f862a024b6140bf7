import { afterEach, describe, expect, it } from 'vitest';
import { createAndGenerate } from '../src/domain/generation.ts';
import { encodeId } from '../src/graphql/ids.ts';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serveInTurn, SetupTurns } from '../src/http/setup-turns.ts';
import { transitionInputs } from './helpers/fixtures.ts';
import { TransitionUpdated } from './helpers/operations.ts';
import { startPipeline, type Pipeline } from './helpers/pipeline.ts';
import { sseClient, subscribe, wsClient } from './helpers/subscribe.ts';
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

  it('a request for an event stream waits for a setup turn before anything of it is read; one whose client left meanwhile is never served', async () => {
    const turns = new SetupTurns(1);
    const served: string[] = [];
    const server = createServer((req, res) => {
      void serveInTurn(turns, req, res, (setUp) => {
        served.push(req.url!);
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        // Its stream's first event is out: the next request's turn.
        res.write(':\n\n', () => setUp());
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const open = (path: string) => {
      const req = request(`${url}${path}`, { headers: { accept: 'text/event-stream' } });
      const answered = new Promise<boolean>((resolve) => {
        req.once('response', () => resolve(true));
        req.once('error', () => resolve(false));
      });
      req.end();
      return { req, answered };
    };
    try {
      const held = await turns.take();
      const first = open('/first');
      const leaving = open('/leaving');
      await until(() => turns.queued === 2, { what: 'both requests waiting for a turn' });
      expect(served).toEqual([]);
      leaving.req.destroy();
      await new Promise((r) => setTimeout(r, 50));
      held();
      expect(await first.answered).toBe(true);
      // The one left is skipped and the turn comes back free once the first is set up.
      const next = await turns.take();
      next();
      expect(served).toEqual(['/first']);
      expect(turns.queued).toBe(0);
      first.req.destroy();
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  it('150 WebSocket and 50 SSE subscribers connecting at once, 2 set up at a time: every one gets its snapshot and every change', { timeout: 120_000 }, async () => {
    p = await startPipeline({
      emulator: { latencyMs: 300 },
      env: { SUBSCRIPTION_SETUP_CONCURRENCY: '2', SUBSCRIPTIONS_PER_ACCOUNT: '1000' },
    });
    const account = await p.account();
    const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: transitionInputs(3) });
    const batchId = encodeId('Batch', batch!.id);
    const clients = [
      ...Array.from({ length: 150 }, () => wsClient(p!.app.url + '/graphql', account.apiKey)),
      ...Array.from({ length: 50 }, () => sseClient(p!.app.graphqlUrl, account.apiKey)),
    ];
    const subs = clients.map((client) => subscribe(client, TransitionUpdated, { batchId }, (d) => d.transitionUpdated));
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
