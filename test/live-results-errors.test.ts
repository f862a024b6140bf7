import { GraphQLObjectType, GraphQLSchema, GraphQLString, parse, type ExecutionArgs, type GraphQLError } from 'graphql';
import { describe, expect, it } from 'vitest';
import { AppError } from '../src/domain/errors.ts';
import type { Context } from '../src/graphql/context.ts';
import { subscribeLive } from '../src/graphql/live-subscriptions.ts';
import { SharedExecutions } from '../src/graphql/shared-executions.ts';

/**
 * A subscription whose source stream fails after it was set up (a subscriber that fell behind its
 * buffer, a read that failed): the error its client gets is masked as a result's errors are.
 */
function failingSchema(error: unknown) {
  return new GraphQLSchema({
    query: new GraphQLObjectType({ name: 'Query', fields: { ok: { type: GraphQLString } } }),
    subscription: new GraphQLObjectType({
      name: 'Subscription',
      fields: {
        ticks: {
          type: GraphQLString,
          subscribe: () => ({
            [Symbol.asyncIterator]() {
              return { next: () => Promise.reject(error), return: () => Promise.resolve({ done: true, value: undefined }) };
            },
          }),
        },
      },
    }),
  });
}

async function failureSeen(error: unknown) {
  const logged: unknown[] = [];
  const args = {
    schema: failingSchema(error),
    document: parse('subscription { ticks }'),
    contextValue: { principal: { kind: 'key', accountId: 'a' } } as unknown as Context,
  } as ExecutionArgs & { contextValue: Context };
  const stream = (await subscribeLive(args, { error: (e) => logged.push(e) }, new SharedExecutions())) as AsyncIterableIterator<unknown>;
  const seen = await stream.next().then(
    () => null,
    (e: GraphQLError) => e,
  );
  return { seen: seen!, logged };
}

describe('a live subscription whose source fails', () => {
  it('ends with LIMIT_EXCEEDED, its code kept, when the subscriber fell behind', async () => {
    const { seen } = await failureSeen(new AppError('LIMIT_EXCEEDED', 'This subscription fell 10 events behind and was ended; subscribe again.'));
    expect(seen.name).toBe('GraphQLError');
    expect(seen.extensions).toEqual({ code: 'LIMIT_EXCEEDED' });
    expect(seen.message).toMatch(/fell 10 events behind/);
  });

  it("ends with INTERNAL and a generic message when a read fails, the database's own message logged and never sent", async () => {
    const failure = new Error('relation "Transition" does not exist at postgresql://postgres:secret@db/segue');
    const { seen, logged } = await failureSeen(failure);
    expect(seen.extensions).toEqual({ code: 'INTERNAL' });
    expect(seen.message).not.toMatch(/secret|relation/);
    expect(logged).toEqual([failure]);
    // Every viewer of a shared read gets the same failure: logged once.
    expect((await failureSeen(failure)).logged).toEqual([]);
  });
});
