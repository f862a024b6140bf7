import { randomBytes } from 'node:crypto';
import { getEventListeners } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cancelTransition, retryTransition } from '../src/domain/generation.ts';
import { recordResult } from '../src/domain/ledger.ts';
import { transitionChange } from '../src/events/messages.ts';
import { changeTransition, loadTransition } from '../src/domain/state-machine.ts';
import { createTransitions } from '../src/domain/transitions.ts';
import type { Transition } from '../src/generated/prisma/client.ts';
import { closeRedis, createRedis, type RedisClient } from '../src/redis.ts';
import { createSegue, type Segue } from '../src/runtime.ts';
import { Wakeups, type Watch } from '../src/worker/wakeups.ts';
import { createTestAccount, testConfig, withoutJobs } from './helpers/app.ts';
import { transitionInputs } from './helpers/fixtures.ts';
import { dropQueueKeys } from './helpers/pipeline.ts';
import { until } from './helpers/wait.ts';

/**
 * A tracker woken by a change made elsewhere (a webhook's result, a cancel) learns the new row
 * from the change's own message, which carries the columns it wrote, instead of reading it again.
 */
let segue: Segue;
let subscriber: RedisClient;
let wakeups: Wakeups;
const prefix = `wake${randomBytes(3).toString('hex')}`;
beforeAll(async () => {
  segue = createSegue(testConfig({ QUEUE_PREFIX: prefix }));
  subscriber = createRedis(segue.config.redis, 'subscriber');
  wakeups = new Wakeups(subscriber, segue.topics);
  await wakeups.start();
});
afterAll(async () => {
  await wakeups.stop();
  await closeRedis(subscriber);
  await segue.close();
  await dropQueueKeys(segue.config.redis, prefix);
});

// Generated, but no queue: the tests move the rows themselves, as a worker and a webhook would.
const noQueue = () => withoutJobs(segue);

/** A QUEUED transition whose changes this test makes itself. */
async function queuedRow(): Promise<Transition> {
  const account = await createTestAccount(segue);
  const { transitions } = await createTransitions(noQueue(), account.id, { transitions: transitionInputs(1), generate: true });
  return (await loadTransition(segue, transitions[0]!.id))!;
}

/** `test` with a new QUEUED row and a watch of it, closed afterwards. */
async function onNewRow(test: (row: Transition, watch: Watch) => Promise<void>) {
  const row = await queuedRow();
  const watch = wakeups.watch(row.id);
  try {
    await test(row, watch);
  } finally {
    watch.close();
  }
}

/** Whatever rowAfter gives must be the row PostgreSQL holds. */
async function expectExact(watch: Watch, from: Transition, version: number) {
  await heard(watch, from, version);
  const rebuilt = watch.rowAfter(from);
  expect(rebuilt).toEqual(await loadTransition(segue, from.id));
  return rebuilt!;
}

/** Until the watch has heard the change that made `version`, asking as a tracker holding `known` would. */
const heard = (watch: Watch, known: Transition, version: number) =>
  until(
    async () => {
      const woke = await watch.sleep(20, known.version);
      return typeof woke === 'object' && 'changed' in woke && (woke.changed?.version ?? 0) >= version;
    },
    { what: `the change to version ${version}` },
  );

describe('Wakeups.rowAfter', () => {
  it('follows every kind of writer exactly: a webhook result on a SUBMITTED row, a cancel, a retry (a new run), the next claim', async () => {
    await onNewRow(async (row, watch) => {
      let known = row;
      // A claim as a worker writes it; a user cancels, then retries: a new run, whose start
      // rewrites the run's columns.
      const first = await changeTransition(segue, row, 'SUBMITTED', { attempts: 'increment', submittedAt: new Date(), falRequestId: 'req-first' }, { from: ['QUEUED'] });
      known = await expectExact(watch, known, first!.version);
      const canceled = await cancelTransition(noQueue(), row.accountId, row.id);
      known = await expectExact(watch, known, canceled.version);
      const retried = await retryTransition(noQueue(), row.accountId, row.id);
      known = await expectExact(watch, known, retried.version);
      expect(known).toMatchObject({ status: 'QUEUED', run: row.run + 1, falRequestId: null, attempts: 0 });
      // The next run's claim, then fal's result recorded by a webhook while it is still SUBMITTED.
      const requestId = `req-${randomBytes(4).toString('hex')}`;
      const claimed = await changeTransition(segue, retried, 'SUBMITTED', { attempts: 'increment', submittedAt: new Date(), falRequestId: requestId, queuePosition: 3 }, { from: ['QUEUED'] });
      known = await expectExact(watch, known, claimed!.version);
      const recorded = await recordResult(segue, requestId, 'https://v3.fal.media/files/early.mp4');
      known = await expectExact(watch, known, recorded.row!.version);
      expect(known).toMatchObject({ status: 'IN_PROGRESS', queuePosition: null, falVideoUrl: 'https://v3.fal.media/files/early.mp4' });
      expect(known.startedAt).toBeInstanceOf(Date);
    });
  });

  it('is null with a version missing in the middle', async () => {
    await onNewRow(async (row, watch) => {
      const submitted = await changeTransition(segue, row, 'SUBMITTED', { attempts: 'increment', submittedAt: new Date() }, { from: ['QUEUED'] });
      // Version +3 heard (as published), +2 never: a message lost on the way.
      const later = { ...submitted!, version: submitted!.version + 2, queuePosition: 7 };
      await segue.pubsub.publish(segue.topics.transition(row.accountId, row.batchId, row.id), transitionChange(later, ['queuePosition', 'version']));
      await heard(watch, row, later.version);
      expect(watch.rowAfter(row)).toBeNull();
    });
  });

  it('is null after a change it could not read', async () => {
    await onNewRow(async (row, watch) => {
      const submitted = await changeTransition(segue, row, 'SUBMITTED', { attempts: 'increment', submittedAt: new Date() }, { from: ['QUEUED'] });
      await heard(watch, row, submitted!.version);
      // Another watch of the same row tells when the message has been heard (every watch hears
      // each message at once), without this one being asked.
      const witness = wakeups.watch(row.id);
      await segue.pubsub.getPublisher().publish(segue.topics.transition(row.accountId, row.batchId, row.id), 'not a change');
      await until(async () => (await witness.sleep(20, Number.MAX_SAFE_INTEGER)) !== 'timeout', { what: 'the unreadable message' });
      witness.close();
      // Heard, but nothing can say what it wrote.
      expect(watch.rowAfter(row)).toBeNull();
    });
  });

  it('keeps the last 16 changes: a row older than those is read again, a newer one is brought up to date', async () => {
    await onNewRow(async (row, watch) => {
      const claimed = await changeTransition(segue, row, 'SUBMITTED', { attempts: 'increment', submittedAt: new Date() }, { from: ['QUEUED'] });
      const rows = [claimed!];
      for (let position = 20; position > 0; position--) {
        rows.push((await changeTransition(segue, row, 'SUBMITTED', { queuePosition: position }, { from: ['SUBMITTED'] }))!);
      }
      const last = rows.at(-1)!;
      await heard(watch, row, last.version);
      expect(watch.rowAfter(row)).toBeNull();
      const oldestKept = rows.find((r) => r.version === last.version - 16)!;
      expect(watch.rowAfter(oldestKept)).toEqual(await loadTransition(segue, row.id));
    });
  });

  it('gives exactly the row PostgreSQL holds after the changes heard: claim, progress and a result recorded elsewhere', async () => {
    await onNewRow(async (row, watch) => {
      const requestId = `req-${randomBytes(4).toString('hex')}`;
      await changeTransition(segue, row, 'SUBMITTED', { attempts: 'increment', submittedAt: new Date(), falRequestId: requestId }, { from: ['QUEUED'] });
      await changeTransition(segue, row, 'IN_PROGRESS', { startedAt: 'now-if-null', queuePosition: null }, { falRequestId: requestId });
      const recorded = await recordResult(segue, requestId, 'https://v3.fal.media/files/result.mp4');
      expect(recorded.row!.version).toBe(row.version + 3);
      // The row it returns is the row as stored, nothing more (the ledger's columns kept apart).
      expect(recorded.row).toEqual(await loadTransition(segue, row.id));
      expect(recorded).toMatchObject({ submission: null, known: true });
      await heard(watch, row, recorded.row!.version);

      const rebuilt = watch.rowAfter(row);
      expect(rebuilt).toEqual(await loadTransition(segue, row.id));
      expect(rebuilt).toMatchObject({ status: 'IN_PROGRESS', falVideoUrl: 'https://v3.fal.media/files/result.mp4', falRequestId: requestId, attempts: 1 });
      expect(rebuilt!.startedAt).toBeInstanceOf(Date);
      // Nothing newer since: the caller keeps what it has.
      expect(watch.rowAfter(rebuilt!)).toBeNull();
    });
  });

  it('is null when a change in between was not heard: the caller reads the row', async () => {
    const row = await queuedRow();
    const requestId = `req-${randomBytes(4).toString('hex')}`;
    // Made, and delivered to this process, before the watch began: never heard by it.
    const earlier = wakeups.watch(row.id);
    const submitted = await changeTransition(segue, row, 'SUBMITTED', { attempts: 'increment', submittedAt: new Date(), falRequestId: requestId }, { from: ['QUEUED'] });
    await heard(earlier, row, submitted!.version);
    earlier.close();
    const watch = wakeups.watch(row.id);
    try {
      const canceled = await changeTransition(segue, row, 'CANCELED', { completedAt: new Date() });
      await heard(watch, row, canceled!.version);
      expect(watch.rowAfter(row)).toBeNull();
      // From the row one version older (as a tracker that had read it), the change heard is enough.
      expect(watch.rowAfter(submitted!)).toEqual(await loadTransition(segue, row.id));
    } finally {
      watch.close();
    }
  });
});

describe('Wakeups: a request fal ended (a failure its webhook told)', () => {
  it('wakes the watches of that transition only, naming the request, whether it came during the sleep or before it; once', async () => {
    const [row, other] = [await queuedRow(), await queuedRow()];
    const watch = wakeups.watch(row.id);
    const otherWatch = wakeups.watch(other.id);
    try {
      // During the sleep: it ends at once, with the request's id; the other transition's watch sleeps on.
      const started = Date.now();
      const sleeping = watch.sleep(10_000, row.version);
      const otherSleeping = otherWatch.sleep(1_000, other.version);
      await segue.events.requestEnded({ transitionId: row.id, requestId: 'req-during' });
      expect(await sleeping).toEqual({ requestEnded: 'req-during' });
      expect(Date.now() - started).toBeLessThan(2_000);
      expect(await otherSleeping).toBe('timeout');

      // Before the sleep (the tracker was busy): a second watch of the row, asleep, tells when the
      // notice has come; every watch hears it in the same turn. The first watch's next sleep then
      // ends at once, and only that one.
      const witness = wakeups.watch(row.id);
      try {
        const witnessed = witness.sleep(10_000, row.version);
        await segue.events.requestEnded({ transitionId: row.id, requestId: 'req-before' });
        expect(await witnessed).toEqual({ requestEnded: 'req-before' });
      } finally {
        witness.close();
      }
      const asleep = Date.now();
      expect(await watch.sleep(10_000, row.version)).toEqual({ requestEnded: 'req-before' });
      expect(Date.now() - asleep).toBeLessThan(100);
      expect(await watch.sleep(200, row.version)).toBe('timeout');
    } finally {
      watch.close();
      otherWatch.close();
    }
  });
});

describe('Wakeups: the signals a sleep listens to', () => {
  it('ends the sleep when any of them aborts, at once when one already has, and leaves no listener on any', async () => {
    await onNewRow(async (row, watch) => {
      // As the tracker sleeps: on the job's signal (minutes long) and on its status feed's news.
      const job = new AbortController();
      for (let i = 0; i < 50; i++) {
        const news = new AbortController();
        const sleeping = watch.sleep(10_000, row.version, [job.signal, null, news.signal]);
        news.abort('news');
        expect(await sleeping).toBe('aborted');
      }
      // None of the 50 sleeps left anything on the job's signal.
      expect(getEventListeners(job.signal, 'abort')).toHaveLength(0);

      // Nor does one woken by a change of its row, or by fal ending its request.
      const woken = watch.sleep(10_000, row.version, [job.signal, new AbortController().signal]);
      const submitted = await changeTransition(segue, row, 'SUBMITTED', { attempts: 'increment', submittedAt: new Date() }, { from: ['QUEUED'] });
      expect(await woken).toMatchObject({ changed: { version: submitted!.version } });
      expect(getEventListeners(job.signal, 'abort')).toHaveLength(0);
      const told = watch.sleep(10_000, submitted!.version, [job.signal]);
      await segue.events.requestEnded({ transitionId: row.id, requestId: 'req-ended' });
      expect(await told).toEqual({ requestEnded: 'req-ended' });
      expect(getEventListeners(job.signal, 'abort')).toHaveLength(0);

      const timedOut = await watch.sleep(20, submitted!.version, [job.signal, new AbortController().signal]);
      expect(timedOut).toBe('timeout');
      expect(getEventListeners(job.signal, 'abort')).toHaveLength(0);

      const started = Date.now();
      const sleeping = watch.sleep(10_000, submitted!.version, [job.signal, new AbortController().signal]);
      job.abort('shutdown');
      expect(await sleeping).toBe('aborted');
      expect(Date.now() - started).toBeLessThan(1_000);
      // Already aborted: at once.
      expect(await watch.sleep(10_000, submitted!.version, [new AbortController().signal, job.signal])).toBe('aborted');
    });
  });
});
