import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAndGenerate } from '../src/domain/generation.ts';
import { transitionInput, transitionInputs } from './helpers/fixtures.ts';
import { startPipeline, type Pipeline } from './helpers/pipeline.ts';

let p: Pipeline;
beforeAll(async () => {
  p = await startPipeline({
    emulator: { latencyMs: 100 },
    env: { FAL_CONCURRENCY: '5', FAL_MAX_RETRIES: '3', FAL_RETRY_DELAY_MS: '50' },
    inlineWorkers: 1,
  });
});
afterAll(() => p?.close());

const requestsFor = (prompt: string) => p.emulator.requests().filter((r) => (r.input as { prompt: string }).prompt === prompt);

describe('retries', () => {
  it('every transition completes through transient faults, and the attempts are recorded', { timeout: 60_000 }, async () => {
    p.emulator.reset();
    const account = await p.account();
    p.emulator.inject({ on: 'submit', status: 500, times: 2 });
    p.emulator.inject({ on: 'submit', status: 503, times: 1 });
    p.emulator.inject({ on: 'job', error: 'server', times: 3 });
    p.emulator.inject({ on: 'status', status: 500, times: 2 });
    const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: transitionInputs(12) });
    const rows = await p.settled(batch!.id);
    expect(rows.map((r) => r.status)).toEqual(Array(12).fill('COMPLETED'));
    const attempts = rows.map((r) => r.attempts);
    // 3 rejected submits and 3 failed jobs were each retried: 6 extra attempts in all.
    expect(attempts.reduce((a, b) => a + b, 0)).toBe(12 + 6);
    expect(Math.max(...attempts)).toBeGreaterThan(1);
    const c = p.emulator.counters();
    expect(c.rejectedSubmits).toBe(3);
    expect(c.submitted).toBe(12 + 3); // a failed job is over; its retry is a new request
    expect(c.maxInFlight).toBeLessThanOrEqual(5);
    const retried = rows.find((r) => r.attempts > 1)!;
    expect(retried.errorCode).toBeNull(); // a success clears the last attempt's error
  });

  it('a job that fails 4 times ends FAILED with its code after FAL_MAX_RETRIES = 3 retries', { timeout: 60_000 }, async () => {
    const account = await p.account();
    const doomed = transitionInput({ prompt: `doomed ${Date.now()}` });
    p.emulator.inject({ on: 'job', error: 'server', times: Infinity, promptIncludes: doomed.prompt });
    const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: [doomed] });
    const [row] = await p.settled(batch!.id);
    expect(row).toMatchObject({ status: 'FAILED', attempts: 4, errorCode: 'FAL_JOB_ERROR' });
    expect(row!.errorMessage).toMatch(/ended in error/);
    expect(requestsFor(doomed.prompt)).toHaveLength(4);
    p.emulator.clearFaults();
  });

  it('a 422 from fal fails at once with FAL_VALIDATION and fal’s detail, never retried', { timeout: 30_000 }, async () => {
    const account = await p.account();
    const invalid = transitionInput({ prompt: `invalid ${Date.now()}` });
    p.emulator.inject({ on: 'job', error: 'validation', times: Infinity, promptIncludes: invalid.prompt });
    const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: [invalid] });
    const [row] = await p.settled(batch!.id);
    expect(row).toMatchObject({ status: 'FAILED', attempts: 1, errorCode: 'FAL_VALIDATION' });
    expect(row!.errorMessage).toMatch(/image_url/);
    expect(requestsFor(invalid.prompt)).toHaveLength(1);
    p.emulator.clearFaults();
  });

  it('a 429 is retried no sooner than its Retry-After', { timeout: 30_000 }, async () => {
    const account = await p.account();
    p.emulator.inject({ on: 'submit', status: 429, times: 1, retryAfterSec: 2 });
    const input = transitionInput();
    const asked = Date.now();
    const { batch } = await createAndGenerate(p.app.segue, account.id, { transitions: [input] });
    const [row] = await p.settled(batch!.id);
    expect(row).toMatchObject({ status: 'COMPLETED', attempts: 2 });
    const [accepted] = requestsFor(input.prompt);
    expect(accepted!.submittedAt - asked).toBeGreaterThanOrEqual(2_000);
  });
});
