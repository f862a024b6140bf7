import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GraphQLError } from 'graphql';
import { ERROR_CODES } from '../src/domain/errors.ts';
import { maskError } from '../src/graphql/errors.ts';
import { startTestApp, type TestApp } from './helpers/app.ts';

let broken: TestApp;
beforeAll(async () => {
  // A database that does not answer: every query fails inside Prisma / pg.
  broken = await startTestApp({ DATABASE_URL: 'postgresql://postgres@127.0.0.1:1/nowhere' });
});
afterAll(() => broken.close());

describe('unexpected failures', () => {
  it('a database that does not answer is UNAVAILABLE with a generic message: no stack, SQL or driver text', async () => {
    const response = await fetch(broken.graphqlUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer sg_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG' },
      body: JSON.stringify({ query: '{ viewer { id } }' }),
    });
    const text = await response.text();
    expect(response.status).toBeLessThan(600);
    const body = JSON.parse(text) as { errors: Array<{ message: string; extensions: { code: string } }> };
    expect(body.errors.map((e) => e.extensions.code)).toEqual(['UNAVAILABLE']);
    expect(text).not.toMatch(/ECONNREFUSED|prisma|postgres|SELECT|\.ts:\d+|at .*\(/i);
  });

  it("every pool connection busy past its wait (pg-pool's timeout) is UNAVAILABLE, not INTERNAL", () => {
    const busy = new GraphQLError('boom', { originalError: new Error('timeout exceeded when trying to connect') });
    expect((maskError(busy) as GraphQLError).extensions.code).toBe('UNAVAILABLE');
  });

  it('a Redis command that timed out (ioredis: a Redis that keeps its connection and answers nothing) is UNAVAILABLE, not INTERNAL', () => {
    const silent = new GraphQLError('boom', { originalError: new Error('Command timed out') });
    expect((maskError(silent) as GraphQLError).extensions.code).toBe('UNAVAILABLE');
  });

  it('anything else is INTERNAL, with a generic message', () => {
    const bug = new GraphQLError('boom', { originalError: new TypeError("Cannot read properties of undefined (reading 'x') at SELECT * FROM secret") });
    const masked = maskError(bug) as GraphQLError;
    expect(masked.extensions.code).toBe('INTERNAL');
    expect(masked.message).toBe('Internal error. It has been logged.');
  });

  it('every error code is documented in the README', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    for (const code of ERROR_CODES) expect(readme, code).toMatch(new RegExp(`\\| \`${code}\` \\|`));
  });
});
