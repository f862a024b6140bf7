import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { graphql } from '../src/generated/gql/index.ts';
import { gql } from './helpers/app.ts';
import { transitionInput, transitionInputs } from './helpers/fixtures.ts';
import { CreateTransitions } from './helpers/operations.ts';
import { startPipeline, type Pipeline } from './helpers/pipeline.ts';
import { sseClient, subscribe, wsClient, type Subscription } from './helpers/subscribe.ts';
import { until } from './helpers/wait.ts';

/**
 * What a subscriber receives is the truth: each event equals what a query of the same selection
 * returns for that version. Text is never transformed on its way through Redis, and nested values
 * (a transition's batch and its counts) are fresh on every event.
 */

const Live = graphql(`
  subscription LiveTruth($id: ID, $batchId: ID) {
    transitionUpdated(id: $id, batchId: $batchId) {
      ...TransitionFields
      posterUrl
      batch { id }
    }
  }
`);

const Now = graphql(`
  query NowTruth($id: ID!) {
    transition(id: $id) {
      ...TransitionFields
      posterUrl
      batch { id }
    }
  }
`);

const LiveCounts = graphql(`
  subscription LiveCounts($batchId: ID) {
    transitionUpdated(batchId: $batchId) { id status version batch { id completed total } }
  }
`);

let p: Pipeline;
beforeAll(async () => {
  // Workers are started by each test once its subscribers are in place.
  p = await startPipeline({ emulator: { latencyMs: 200 }, env: { FAL_RETRY_DELAY_MS: '50' } });
});
afterAll(() => p?.close());

const ISO = '2024-01-01T00:00:00.000Z';

type Event = { id: string; status: string; version: number };

/** The last event of each transition. */
const lastById = <T extends Event>(events: T[]) => new Map(events.map((e) => [e.id, e]));

describe('live events are the truth', () => {
  it('text shaped like a timestamp arrives unchanged, over WebSocket and SSE, from the first event to the last', { timeout: 60_000 }, async () => {
    const account = await p.account();
    const ws = wsClient(p.app.url + '/graphql', account.apiKey);
    const sse = sseClient(p.app.graphqlUrl, account.apiKey);
    // Subscribed to the whole account before the transition exists: its creation crosses Redis whole.
    const accountWide: Array<Subscription<{ prompt: string; subtitles: string | null; negativePrompt: string | null; status: string }>> = [
      subscribe(ws, Live, {}, (d) => d.transitionUpdated),
      subscribe(sse, Live, {}, (d) => d.transitionUpdated),
    ];
    await new Promise((r) => setTimeout(r, 300));
    const created = await gql(p.app.graphqlUrl, account.apiKey, CreateTransitions, {
      input: {
        generate: true,
        transitions: [transitionInput({ prompt: ISO, negativePrompt: '1704067200000', enableSubtitles: true, subtitles: ISO })],
      },
    });
    expect(created.errors).toBeUndefined();
    const id = created.data!.createTransitions.transitions[0]!.id;
    const one = [subscribe(ws, Live, { id }, (d) => d.transitionUpdated), subscribe(sse, Live, { id }, (d) => d.transitionUpdated)];
    await until(() => one.every((s) => s.events.length >= 1), { what: 'the snapshots' });
    await p.startInlineWorker();
    await until(() => [...accountWide, ...one].every((s) => s.events.some((e) => e.status === 'COMPLETED')), { what: 'COMPLETED on every stream' });
    for (const s of [...accountWide, ...one]) {
      expect(s.errors).toEqual([]);
      expect(s.events.length).toBeGreaterThanOrEqual(3);
      for (const event of s.events) {
        expect(event.prompt).toBe(ISO);
        expect(event.subtitles).toBe(ISO);
        expect(event.negativePrompt).toBe('1704067200000');
      }
    }
    for (const s of [...accountWide, ...one]) s.stop();
    ws.dispose();
  });

  it("a batch's counts are fresh on every event: the last COMPLETED event says completed == total", { timeout: 60_000 }, async () => {
    const account = await p.account();
    const created = await gql(p.app.graphqlUrl, account.apiKey, CreateTransitions, {
      input: { generate: true, transitions: transitionInputs(3) },
    });
    const batchId = created.data!.createTransitions.batch!.id;
    const ws = wsClient(p.app.url + '/graphql', account.apiKey);
    const sse = sseClient(p.app.graphqlUrl, account.apiKey);
    const streams = [
      subscribe(ws, LiveCounts, { batchId }, (d) => d.transitionUpdated),
      subscribe(sse, LiveCounts, { batchId }, (d) => d.transitionUpdated),
    ];
    await until(() => streams.every((s) => s.events.length >= 3), { what: 'the snapshots' });
    await p.startInlineWorker();
    await Promise.all(streams.map((s) => s.done));
    for (const s of streams) {
      expect(s.errors).toEqual([]);
      const completedEvents = s.events.filter((e) => e.status === 'COMPLETED');
      expect(completedEvents.at(-1)!.batch).toMatchObject({ completed: 3, total: 3 });
      // Never behind what the stream itself has shown completed so far.
      const done = new Set<string>();
      for (const event of s.events) {
        if (event.status === 'COMPLETED') done.add(event.id);
        expect(event.batch!.completed).toBeGreaterThanOrEqual(done.size);
      }
    }
    ws.dispose();
  });

  it('a batch of 20 through random faults: the last event of every transition deep-equals a query of the same selection', { timeout: 120_000 }, async () => {
    const account = await p.account();
    p.emulator.inject({ on: 'result', status: 500, rate: 0.2 });
    p.emulator.inject({ on: 'status', status: 503, rate: 0.1 });
    p.emulator.inject({ on: 'job', error: 'server', rate: 0.15 });
    try {
      const created = await gql(p.app.graphqlUrl, account.apiKey, CreateTransitions, {
        input: { generate: true, transitions: transitionInputs(20) },
      });
      const batchId = created.data!.createTransitions.batch!.id;
      const ws = wsClient(p.app.url + '/graphql', account.apiKey);
      const sse = sseClient(p.app.graphqlUrl, account.apiKey);
      const streams = [
        subscribe(ws, Live, { batchId }, (d) => d.transitionUpdated),
        subscribe(sse, Live, { batchId }, (d) => d.transitionUpdated),
      ];
      await until(() => streams.every((s) => s.events.length >= 20), { what: 'the snapshots' });
      await p.startInlineWorker();
      await Promise.all(streams.map((s) => s.done));
      for (const s of streams) {
        expect(s.errors).toEqual([]);
        const last = lastById(s.events);
        expect(last.size).toBe(20);
        for (const [id, event] of last) {
          const now = await gql(p.app.graphqlUrl, account.apiKey, Now, { id });
          expect(event).toEqual(now.data!.transition);
        }
      }
      ws.dispose();
    } finally {
      p.emulator.clearFaults();
    }
  });
});
