import { assertAccountWide, assertBatchInScope, assertTransitionInScope } from '../../auth/scope.ts';
import { withCleanup } from '../../events/live.ts';
import { batchProgress, transitionUpdates } from '../../events/streams.ts';
import { builder } from '../builder.ts';
import { idOf } from '../ids.ts';
import { BatchNode } from './batch.ts';
import { TransitionNode } from './transition.ts';

builder.subscriptionType({});

/** Holds one of the account's subscription slots for as long as the stream runs. */
const limited = <T>(release: () => void, stream: AsyncIterableIterator<T>) => withCleanup(stream, release);

builder.subscriptionFields((t) => ({
  transitionUpdated: t.field({
    type: TransitionNode,
    description:
      'One transition (id), every transition of a batch (batchId), or every transition of your account (neither). ' +
      'A transition or batch stream starts with the current state, then sends each change; versions only go up. ' +
      'A batch stream completes when the batch ends; the stream of a transition or batch that is deleted completes with no further event.',
    args: {
      id: t.arg.id({ required: false }),
      batchId: t.arg.id({ required: false }),
    },
    // Checked before the stream starts, so a foreign or unknown id is a NOT_FOUND at once.
    subscribe: async (_root, args, ctx) => {
      const accountId = ctx.accountId();
      const scope = {
        transitionId: args.id ? idOf('Transition', String(args.id)) : null,
        batchId: args.batchId ? idOf('Batch', String(args.batchId), 'batchId') : null,
      };
      if (scope.transitionId) await assertTransitionInScope(ctx.segue.db, ctx.scope, scope.transitionId);
      else if (scope.batchId) assertBatchInScope(ctx.scope, scope.batchId, ['batchId']);
      else assertAccountWide(ctx.scope, 'every transition');
      const release = ctx.subscriptions.acquire(accountId);
      try {
        return limited(release, await transitionUpdates(ctx.segue, accountId, scope));
      } catch (error) {
        release();
        throw error;
      }
    },
    resolve: (row) => row,
  }),
  batchProgress: t.field({
    type: BatchNode,
    description:
      'The batch now, then again with fresh counts on every change (items deleted included); completes when the batch ends, ' +
      'or with no further event when it is deleted with its last items.',
    args: { id: t.arg.id({ required: true }) },
    subscribe: async (_root, args, ctx) => {
      const accountId = ctx.accountId();
      const batchId = idOf('Batch', String(args.id));
      assertBatchInScope(ctx.scope, batchId);
      const release = ctx.subscriptions.acquire(accountId);
      try {
        return limited(release, await batchProgress(ctx.segue, accountId, batchId));
      } catch (error) {
        release();
        throw error;
      }
    },
    resolve: (batch) => batch,
  }),
}));
