import { cancelBatch, cancelTransition, retryTransition } from '../../domain/generation.ts';
import { builder } from '../builder.ts';
import { idOf } from '../ids.ts';
import { BatchNode } from './batch.ts';
import { TransitionNode } from './transition.ts';

builder.mutationFields((t) => ({
  cancelTransition: t.prismaField({
    type: TransitionNode,
    description: 'Cancels a queued or running transition, at fal too when it was submitted. CONFLICT when it has ended.',
    args: { id: t.arg.id({ required: true }) },
    resolve: async (query, _root, args, ctx) => {
      const row = await cancelTransition(ctx.segue, ctx.ownerAccountId(), idOf('Transition', String(args.id)));
      return ctx.segue.db.transition.findUniqueOrThrow({ ...query, where: { id: row.id } });
    },
  }),
  cancelBatch: t.prismaField({
    type: BatchNode,
    description: "Cancels every unfinished transition of the batch's run. CONFLICT when nothing is left to cancel.",
    args: { id: t.arg.id({ required: true }) },
    resolve: async (query, _root, args, ctx) => {
      const batch = await cancelBatch(ctx.segue, ctx.ownerAccountId(), idOf('Batch', String(args.id)));
      return ctx.segue.db.batch.findUniqueOrThrow({ ...query, where: { id: batch.id } });
    },
  }),
  retryTransition: t.prismaField({
    type: TransitionNode,
    description: 'Generates a FAILED or CANCELED transition again, in its batch. CONFLICT from any other status.',
    args: { id: t.arg.id({ required: true }) },
    resolve: async (query, _root, args, ctx) => {
      const row = await retryTransition(ctx.segue, ctx.ownerAccountId(), idOf('Transition', String(args.id)));
      return ctx.segue.db.transition.findUniqueOrThrow({ ...query, where: { id: row.id } });
    },
  }),
}));
