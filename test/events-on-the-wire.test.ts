import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { changeTransition } from '../src/domain/state-machine.ts';
import { createTransitions } from '../src/domain/transitions.ts';
import { closeRedis, createRedis, type RedisClient } from '../src/redis.ts';
import { createSegue, type Segue } from '../src/runtime.ts';
import { createTestAccount, testConfig } from './helpers/app.ts';
import { transitionInputs } from './helpers/fixtures.ts';
import { dropQueueKeys } from './helpers/pipeline.ts';
import { until } from './helpers/wait.ts';

/**
 * What a change costs on Redis: one PUBLISH carrying ids, status, version and the columns the
 * change wrote, never the whole row.
 */
let segue: Segue;
let listener: RedisClient;
const prefix = `wire${randomBytes(3).toString('hex')}`;
beforeAll(() => {
  segue = createSegue(testConfig({ QUEUE_PREFIX: prefix }));
  listener = createRedis(segue.config.redis, 'subscriber');
});
afterAll(async () => {
  await closeRedis(listener);
  await segue.close();
  await dropQueueKeys(segue.config.redis, prefix);
});

describe('events on the wire', () => {
  it('a status change publishes ids, status, version and the columns it wrote: no prompt, no image URLs', async () => {
    const account = await createTestAccount(segue);
    const messages: string[] = [];
    listener.on('pmessage', (_pattern: string, _channel: string, message: string) => messages.push(message));
    await listener.psubscribe(segue.topics.accountTransitions(account.id));
    // Generated, but no queue: this test moves the row itself, as a worker would.
    const noQueue = { ...segue, generationJobs: { enqueue: async () => undefined } as never };
    const { transitions } = await createTransitions(noQueue, account.id, { transitions: transitionInputs(1), generate: true });
    const row = transitions[0]!;
    await changeTransition(segue, row, 'SUBMITTED', { attempts: 'increment', submittedAt: new Date() }, { from: ['QUEUED'] });
    await until(() => messages.some((m) => m.includes('"SUBMITTED"')), { what: 'the change' });

    const raw = messages.find((m) => m.includes('"SUBMITTED"'))!;
    const change = JSON.parse(raw) as { id: string; status: string; version: number; full: boolean; changed: Record<string, unknown> };
    expect(change).toMatchObject({ id: row.id, status: 'SUBMITTED', version: row.version + 1, full: false });
    expect(Object.keys(change.changed).sort()).toEqual(['attempts', 'status', 'submittedAt', 'updatedAt', 'version']);
    expect(raw).not.toContain(row.prompt);
    expect(raw).not.toContain(row.frontImageUrl!);
    expect(Buffer.byteLength(raw)).toBeLessThan(Buffer.byteLength(JSON.stringify(row)) / 2);
  });
});
