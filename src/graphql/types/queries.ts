import { assertAccountWide, assertBatchInScope, assertTransitionInScope } from '../../auth/scope.ts';
import { getBatch, getTransition } from '../../domain/transitions.ts';
import { builder } from '../builder.ts';
import { idOf } from '../ids.ts';
import { BatchNode } from './batch.ts';
import { TransitionNode, TransitionStatusEnum } from './transition.ts';

const newestFirst = [{ createdAt: 'desc' as const }, { id: 'desc' as const }];

builder.queryFields((t) => ({
  transition: t.prismaField({
    type: TransitionNode,
    args: { id: t.arg.id({ required: true }) },
    resolve: async (query, _root, args, ctx) => {
      const accountId = ctx.accountId();
      const id = idOf('Transition', String(args.id));
      await assertTransitionInScope(ctx.segue.db, ctx.scope, id);
      return getTransition(ctx.segue, accountId, id, query);
    },
  }),
  transitions: t.prismaConnection({
    type: TransitionNode,
    cursor: 'id',
    description: "The caller's transitions, newest first. A browser token lists its batch's only (batchId required).",
    args: {
      status: t.arg({ type: TransitionStatusEnum, required: false }),
      batchId: t.arg.id({ required: false, description: 'Only the transitions of this batch.' }),
    },
    resolve: async (query, _root, args, ctx) => {
      const accountId = ctx.accountId();
      if (!args.batchId) assertAccountWide(ctx.scope, 'the transitions');
      const wanted = args.batchId ? idOf('Batch', String(args.batchId), 'batchId') : null;
      if (wanted) assertBatchInScope(ctx.scope, wanted, ['batchId']);
      const batchId = wanted ? (await getBatch(ctx.segue, accountId, wanted)).id : null;
      return ctx.segue.db.transition.findMany({
        ...query,
        where: {
          accountId,
          ...(args.status ? { status: args.status } : {}),
          ...(batchId ? { batchItems: { some: { batchId } } } : {}),
        },
        orderBy: newestFirst,
      });
    },
  }),
  batch: t.prismaField({
    type: BatchNode,
    args: { id: t.arg.id({ required: true }) },
    resolve: (query, _root, args, ctx) => {
      const accountId = ctx.accountId();
      const id = idOf('Batch', String(args.id));
      assertBatchInScope(ctx.scope, id);
      return getBatch(ctx.segue, accountId, id, query);
    },
  }),
  batches: t.prismaConnection({
    type: BatchNode,
    cursor: 'id',
    description: "The caller's batches, newest first.",
    resolve: (query, _root, _args, ctx) =>
      ctx.segue.db.batch.findMany({ ...query, where: { accountId: ctx.ownerAccountId() }, orderBy: newestFirst }),
  }),
}));
