import { TransitionStatus } from '../../generated/prisma/enums.ts';
import { transitionScopeWhere } from '../../auth/scope.ts';
import { estimateUsd } from '../../domain/costs.ts';
import { builder } from '../builder.ts';
import { frameUrl } from '../../domain/images.ts';
import { ImageNode } from './image.ts';

export const TransitionStatusEnum = builder.enumType(TransitionStatus, {
  name: 'TransitionStatus',
  description: 'DRAFT → QUEUED → SUBMITTED → IN_PROGRESS → COMPLETED | FAILED | CANCELED',
});

export const GenerationError = builder
  .objectRef<{ code: string; message: string }>('GenerationError')
  .implement({
    description: 'Why the last generation attempt failed.',
    fields: (t) => ({
      code: t.exposeString('code'),
      message: t.exposeString('message'),
    }),
  });

export const TransitionNode = builder.prismaNode('Transition', {
  id: { field: 'id' },
  nullable: true,
  // Node lookups bypass root resolvers, so scope them to the caller (and a token's reach) here.
  findUnique: (id, ctx) => ({ id, accountId: ctx.accountId(), ...transitionScopeWhere(ctx.scope) }),
  fields: (t) => ({
    // Not a `select` of the image relation: with one, the Prisma plugin read the row again for
    // each live event.
    frontImageUrl: t.string({
      description: 'The URL given, or a signed URL of the uploaded frontImage.',
      resolve: (t, _args, ctx) => frameUrl(ctx.segue, t.frontImageUrl, t.frontImageId),
    }),
    tailImageUrl: t.string({
      description: 'The URL given, or a signed URL of the uploaded tailImage.',
      resolve: (t, _args, ctx) => frameUrl(ctx.segue, t.tailImageUrl, t.tailImageId),
    }),
    // Not relations either: the Prisma plugin read the transition and then each image again for
    // every live event shown. A stored image never changes: the process keeps it (the Image type
    // selects only what StoredImage holds, see image.ts).
    frontImage: t.field({
      type: ImageNode,
      nullable: true,
      description: 'The uploaded first frame (null for a URL).',
      resolve: (t, _args, ctx) => (t.frontImageId ? ctx.segue.storedImages.of(t.frontImageId) : null),
    }),
    tailImage: t.field({
      type: ImageNode,
      nullable: true,
      description: 'The uploaded last frame (null for a URL).',
      resolve: (t, _args, ctx) => (t.tailImageId ? ctx.segue.storedImages.of(t.tailImageId) : null),
    }),
    prompt: t.exposeString('prompt'),
    negativePrompt: t.exposeString('negativePrompt', { nullable: true }),
    transitionType: t.exposeString('transitionType'),
    durationSeconds: t.exposeInt('durationSeconds'),
    enableSubtitles: t.exposeBoolean('enableSubtitles'),
    subtitles: t.exposeString('subtitles', { nullable: true }),
    audioUrl: t.exposeString('audioUrl', { nullable: true }),
    videoUrl: t.exposeString('videoUrl', { nullable: true, description: "Segue's own copy of the video (MP4)." }),
    falVideoUrl: t.exposeString('falVideoUrl', { nullable: true, description: 'Where the provider delivered it (fal keeps it about an hour).' }),
    posterUrl: t.exposeString('posterUrl', { nullable: true, description: 'The first frame, as JPEG (made just after completion).' }),
    status: t.expose('status', { type: TransitionStatusEnum }),
    version: t.exposeInt('version', { description: 'Grows with every change; orders updates of this transition.' }),
    attempts: t.exposeInt('attempts', { description: 'fal attempts in the current generation run.' }),
    // No `select` on fields made of the row's own columns: the type is in include mode, so every
    // row has them, and a row a live event carries is shown as it is. With one, the plugin reads
    // the row again for each such row it did not load itself: a statement per event per
    // subscriber, and a message whose error is of a later version than its status.
    error: t.field({
      type: GenerationError,
      nullable: true,
      resolve: (t) => (t.errorCode ? { code: t.errorCode, message: t.errorMessage ?? '' } : null),
    }),
    estimatedCost: t.float({
      nullable: true,
      description: "Estimated cost in USD of one generation at the model's published price (null when unknown).",
      resolve: (t, _args, ctx) => estimateUsd(ctx.segue.config.pricePerSecondUsd, t.durationSeconds),
    }),
    estimatedCompletionAt: t.field({
      type: 'DateTime',
      nullable: true,
      description:
        'When this transition should be done, while it is queued or running: from how long generations of its length took ' +
        'lately and the work ahead of it (null once it has ended, or before it is generated).',
      resolve: (t, _args, ctx) => ctx.segue.completionEstimates.forTransition(t.id, t.status),
    }),
    falRequestId: t.exposeString('falRequestId', { nullable: true }),
    queuePosition: t.exposeInt('queuePosition', { nullable: true, description: "Requests ahead in fal's queue." }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    updatedAt: t.expose('updatedAt', { type: 'DateTime' }),
    queuedAt: t.expose('queuedAt', { type: 'DateTime', nullable: true }),
    startedAt: t.expose('startedAt', { type: 'DateTime', nullable: true }),
    completedAt: t.expose('completedAt', { type: 'DateTime', nullable: true }),
  }),
});
