import { NO_ROW } from '../../auth/scope.ts';
import { GeneratedTransitionStatus } from '../../generated/prisma/enums.ts';
import { combineTransitions, getGeneratedTransition } from '../../domain/combine.ts';
import { generatedTransitionUpdates } from '../../events/streams.ts';
import { withCleanup } from '../../events/live.ts';
import { builder } from '../builder.ts';
import { idOf } from '../ids.ts';
import { GenerationError, TransitionNode } from './transition.ts';

const GeneratedTransitionStatusEnum = builder.enumType(GeneratedTransitionStatus, { name: 'GeneratedTransitionStatus' });

export const GeneratedTransitionNode = builder.prismaNode('GeneratedTransition', {
  id: { field: 'id' },
  nullable: true,
  findUnique: (id, ctx) => ({ id: ctx.scope ? NO_ROW : id, accountId: ctx.accountId() }),
  description: 'Several completed transitions joined into one video, with an audio track and subtitles.',
  fields: (t) => ({
    status: t.expose('status', { type: GeneratedTransitionStatusEnum }),
    version: t.exposeInt('version'),
    videoUrl: t.exposeString('videoUrl', { nullable: true }),
    posterUrl: t.exposeString('posterUrl', { nullable: true }),
    subtitlesUrl: t.exposeString('subtitlesUrl', { nullable: true, description: 'WebVTT cues, one per clip with subtitles.' }),
    durationSeconds: t.exposeFloat('durationSeconds', { nullable: true }),
    audioUrl: t.exposeString('audioUrl', { nullable: true }),
    burnSubtitles: t.exposeBoolean('burnSubtitles'),
    // The row's own columns (include mode): a live event's row is shown as it is (see TransitionNode).
    error: t.field({
      type: GenerationError,
      nullable: true,
      resolve: (g) => (g.errorCode ? { code: g.errorCode, message: g.errorMessage ?? '' } : null),
    }),
    transitions: t.field({
      type: [TransitionNode],
      description: 'The clips, in order.',
      select: { items: { orderBy: { position: 'asc' }, include: { transition: true } } },
      resolve: (g) => g.items.map((i) => i.transition),
    }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    completedAt: t.expose('completedAt', { type: 'DateTime', nullable: true }),
  }),
});

const CombineTransitionsInput = builder.inputType('CombineTransitionsInput', {
  fields: (t) => ({
    transitionIds: t.idList({ required: true, description: '2 to 50 COMPLETED transitions, in the order to play them.' }),
    audioUrl: t.string({ description: 'An http(s) audio file, trimmed or padded to the video.' }),
    burnSubtitles: t.boolean({ defaultValue: false, description: 'Burn the subtitles into the picture (a WebVTT file is always made).' }),
  }),
});

const CombineTransitionsPayload = builder.objectRef<{ id: string }>('CombineTransitionsPayload').implement({
  fields: (t) => ({
    generatedTransition: t.prismaField({
      type: GeneratedTransitionNode,
      resolve: (query, r, _args, ctx) => ctx.segue.db.generatedTransition.findUniqueOrThrow({ ...query, where: { id: r.id } }),
    }),
  }),
});

builder.mutationField('combineTransitions', (t) =>
  t.field({
    type: CombineTransitionsPayload,
    args: { input: t.arg({ type: CombineTransitionsInput, required: true }) },
    resolve: async (_root, { input }, ctx) => {
      const accountId = ctx.ownerAccountId();
      const transitionIds = input.transitionIds.map((id, i) => idOf('Transition', String(id), `transitionIds.${i}`));
      return combineTransitions(ctx.segue, accountId, { ...input, transitionIds });
    },
  }),
);

builder.queryFields((t) => ({
  generatedTransition: t.prismaField({
    type: GeneratedTransitionNode,
    args: { id: t.arg.id({ required: true }) },
    resolve: (query, _root, args, ctx) =>
      getGeneratedTransition(ctx.segue, ctx.ownerAccountId(), idOf('GeneratedTransition', String(args.id)), query),
  }),
  generatedTransitions: t.prismaConnection({
    type: GeneratedTransitionNode,
    cursor: 'id',
    description: 'Your combined videos, newest first.',
    resolve: (query, _root, _args, ctx) =>
      ctx.segue.db.generatedTransition.findMany({
        ...query,
        where: { accountId: ctx.ownerAccountId() },
        orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
      }),
  }),
}));

builder.subscriptionField('generatedTransitionUpdated', (t) =>
  t.field({
    type: GeneratedTransitionNode,
    description: 'The combined video now, then every change; completes when it is COMPLETED or FAILED.',
    args: { id: t.arg.id({ required: true }) },
    subscribe: async (_root, args, ctx) => {
      const accountId = ctx.ownerAccountId();
      const id = idOf('GeneratedTransition', String(args.id));
      const release = ctx.subscriptions.acquire(accountId);
      try {
        return withCleanup(await generatedTransitionUpdates(ctx.segue, accountId, id), release);
      } catch (error) {
        release();
        throw error;
      }
    },
    resolve: (row) => row,
  }),
);
