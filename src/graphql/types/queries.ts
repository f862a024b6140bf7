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
    resolve: (query, _root, args, ctx) =>
      getTransition(ctx.segue, ctx.accountId(), idOf('Transition', String(args.id)), query),
  }),
  transitions: t.prismaConnection({
    type: TransitionNode,
    cursor: 'id',
    description: "The caller's transitions, newest first.",
    args: {
      status: t.arg({ type: TransitionStatusEnum, required: false }),
      batchId: t.arg.id({ required: false, description: 'Only the transitions of this batch.' }),
    },
    resolve: async (query, _root, args, ctx) => {
      const accountId = ctx.accountId();
      const batchId = args.batchId ? (await getBatch(ctx.segue, accountId, idOf('Batch', String(args.batchId), 'batchId'))).id : null;
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
    resolve: (query, _root, args, ctx) => getBatch(ctx.segue, ctx.accountId(), idOf('Batch', String(args.id)), query),
  }),
  batches: t.prismaConnection({
    type: BatchNode,
    cursor: 'id',
    description: "The caller's batches, newest first.",
    resolve: (query, _root, _args, ctx) =>
      ctx.segue.db.batch.findMany({ ...query, where: { accountId: ctx.accountId() }, orderBy: newestFirst }),
  }),
}));
