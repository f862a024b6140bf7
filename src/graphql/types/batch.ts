import { prismaConnectionHelpers } from '@pothos/plugin-prisma';
import { batchInScope, NO_ROW } from '../../auth/scope.ts';
import { BATCH_STATUSES, batchStatus } from '../../domain/batches.ts';
import { estimateUsd } from '../../domain/costs.ts';
import type { BatchWithCounts } from '../../events/streams.ts';
import type { Transition } from '../../generated/prisma/client.ts';
import { builder } from '../builder.ts';
import type { Context } from '../context.ts';
import { TransitionNode } from './transition.ts';

export const BatchStatusEnum = builder.enumType('BatchStatus', {
  values: BATCH_STATUSES,
  description: 'PARTIAL: ended with some transitions completed and others failed or canceled.',
});

const itemsConnection = prismaConnectionHelpers(builder, 'BatchItem', {
  cursor: 'batchId_position',
  query: { orderBy: { position: 'asc' } },
  // The id at least: asked only for pageInfo or cursors, the transition's select was empty, which
  // Prisma refuses (an INTERNAL error). Asked for nodes, the type's include mode loads whole rows.
  select: (nodeSelection) => ({ transition: nodeSelection({ select: { id: true } }) }),
  resolveNode: (item) => item.transition as Transition,
});

export const BatchNode = builder.prismaNode('Batch', {
  id: { field: 'id' },
  nullable: true,
  findUnique: (id, ctx) => ({ id: batchInScope(ctx.scope, id) ? id : NO_ROW, accountId: ctx.accountId() }),
  fields: (t) => {
    // A subscription event brings the counts along; a query loads them (batched per request).
    const countsOf = (batch: BatchWithCounts, ctx: Context) => batch.counts ?? ctx.loaders.batchCounts.load(batch.id);
    const count = (name: 'total' | 'queued' | 'running' | 'completed' | 'failed' | 'canceled', description: string) =>
      t.int({ description, resolve: async (batch, _args, ctx) => (await countsOf(batch, ctx))[name] });
    return {
      status: t.field({
        type: BatchStatusEnum,
        resolve: async (batch, _args, ctx) => batchStatus(await countsOf(batch, ctx)),
      }),
      total: count('total', 'Transitions in the batch.'),
      queued: count('queued', 'Waiting for a fal slot.'),
      running: count('running', 'Submitted to fal or in progress there.'),
      completed: count('completed', 'Finished with a video.'),
      failed: count('failed', 'Ended without a video after all retries.'),
      canceled: count('canceled', 'Canceled before they finished.'),
      estimatedCost: t.float({
        nullable: true,
        description: "Estimated cost in USD of generating every transition once, at the model's published price.",
        resolve: async (batch, _args, ctx) => estimateUsd(ctx.segue.config.pricePerSecondUsd, (await countsOf(batch, ctx)).seconds),
      }),
      idempotencyKey: t.exposeString('idempotencyKey', { nullable: true }),
      createdAt: t.expose('createdAt', { type: 'DateTime' }),
      completedAt: t.expose('completedAt', { type: 'DateTime', nullable: true }),
      estimatedCompletionAt: t.field({
        type: 'DateTime',
        nullable: true,
        description: 'When the last of its transitions should be done, while the batch runs (null once it has ended).',
        // Its counts say when it ended; completedAt is stamped a moment later, by the publisher.
        resolve: async (batch, _args, ctx) => {
          const counts = await countsOf(batch, ctx);
          return ctx.segue.completionEstimates.forBatch(batch.id, counts.queued + counts.running === 0);
        },
      }),
      transitions: t.connection({
        type: TransitionNode,
        description: 'The transitions of this batch, in the order they were given.',
        select: (args, ctx, nestedSelection) => ({
          items: itemsConnection.getQuery(args, ctx, nestedSelection),
        }),
        resolve: (batch, args, ctx) => itemsConnection.resolve(batch.items, args, ctx),
      }),
    };
  },
});

// Transition.batch lives here, next to the Batch type it returns.
builder.prismaObjectField(TransitionNode, 'batch', (t) =>
  t.field({
    type: BatchNode,
    nullable: true,
    description: 'The batch of the current generation run.',
    select: (_args, _ctx, nestedSelection) => ({ batch: nestedSelection(true) }),
    // A browser token sees the batch only when it is the one the token names.
    resolve: (transition, _args, ctx) => (transition.batch && batchInScope(ctx.scope, transition.batch.id) ? transition.batch : null),
  }),
);
