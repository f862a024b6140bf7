import { createTransitions, generateBatch } from '../../domain/transitions.ts';
import { builder } from '../builder.ts';
import { idOf } from '../ids.ts';
import { BatchNode } from './batch.ts';
import { TransitionNode } from './transition.ts';

const TransitionInput = builder.inputType('TransitionInput', {
  fields: (t) => ({
    frontImageUrl: t.string({ description: 'http(s) URL of the first frame; or give frontImageId.' }),
    tailImageUrl: t.string({ description: 'http(s) URL of the last frame; or give tailImageId.' }),
    frontImageId: t.id({ description: 'An uploaded Image as the first frame, instead of frontImageUrl.' }),
    tailImageId: t.id({ description: 'An uploaded Image as the last frame, instead of tailImageUrl.' }),
    prompt: t.string({ required: true, description: '1 to 2500 characters.' }),
    transitionType: t.string({ defaultValue: 'morph' }),
    durationSeconds: t.int({ defaultValue: 5, description: '5 or 10.' }),
    negativePrompt: t.string(),
    enableSubtitles: t.boolean({ defaultValue: false }),
    subtitles: t.string({ description: 'Required when enableSubtitles is true.' }),
    audioUrl: t.string(),
  }),
});

const CreateTransitionsInput = builder.inputType('CreateTransitionsInput', {
  fields: (t) => ({
    transitions: t.field({ type: [TransitionInput], required: true, description: '1 to 100 transitions.' }),
    generate: t.boolean({ defaultValue: false, description: 'Start generating them at once, as one batch.' }),
    idempotencyKey: t.string({ description: 'Repeating a request with the same key returns the first result.' }),
  }),
});

type CreateResult = Awaited<ReturnType<typeof createTransitions>>;

const CreateTransitionsPayload = builder.objectRef<CreateResult>('CreateTransitionsPayload').implement({
  fields: (t) => ({
    transitions: t.prismaField({
      type: [TransitionNode],
      // Reloaded with the client's selection, so nested fields come in the same query.
      resolve: async (query, r, _args, ctx) => {
        const ids = r.transitions.map((t) => t.id);
        const rows = await ctx.segue.db.transition.findMany({ ...query, where: { id: { in: ids } } });
        const byId = new Map(rows.map((row) => [row.id, row]));
        return ids.map((id) => byId.get(id)!);
      },
    }),
    batch: t.prismaField({
      type: BatchNode,
      nullable: true,
      resolve: (query, r, _args, ctx) =>
        r.batch ? ctx.segue.db.batch.findUnique({ ...query, where: { id: r.batch.id } }) : null,
    }),
  }),
});

const GenerateBatchInput = builder.inputType('GenerateBatchInput', {
  fields: (t) => ({
    transitionIds: t.idList({ required: true, description: '1 to 100 transitions, each at most once.' }),
    idempotencyKey: t.string(),
  }),
});

type GenerateResult = Awaited<ReturnType<typeof generateBatch>>;

const GenerateBatchPayload = builder.objectRef<GenerateResult>('GenerateBatchPayload').implement({
  fields: (t) => ({
    batch: t.prismaField({
      type: BatchNode,
      resolve: (query, r, _args, ctx) => ctx.segue.db.batch.findUniqueOrThrow({ ...query, where: { id: r.batch.id } }),
    }),
  }),
});

builder.mutationFields((t) => ({
  createTransitions: t.field({
    type: CreateTransitionsPayload,
    args: { input: t.arg({ type: CreateTransitionsInput, required: true }) },
    resolve: (_root, { input }, ctx) => {
      const accountId = ctx.ownerAccountId();
      // Image global IDs become database ids here; the service checks they are the caller's uploads.
      const transitions = input.transitions.map((t, i) => ({
        ...t,
        frontImageId: t.frontImageId == null ? t.frontImageId : idOf('Image', String(t.frontImageId), `transitions.${i}.frontImageId`),
        tailImageId: t.tailImageId == null ? t.tailImageId : idOf('Image', String(t.tailImageId), `transitions.${i}.tailImageId`),
      }));
      return createTransitions(ctx.segue, accountId, { ...input, transitions });
    },
  }),
  generateBatch: t.field({
    type: GenerateBatchPayload,
    args: { input: t.arg({ type: GenerateBatchInput, required: true }) },
    resolve: (_root, { input }, ctx) => {
      const accountId = ctx.ownerAccountId();
      const transitionIds = input.transitionIds.map((id, i) => idOf('Transition', String(id), `transitionIds.${i}`));
      return generateBatch(ctx.segue, accountId, { ...input, transitionIds });
    },
  }),
}));
