import { createApiKey, revokeApiKey, type ApiKeyView } from '../../domain/api-keys.ts';
import { keyRevocations } from '../../events/credentials.ts';
import { builder } from '../builder.ts';
import { idOf } from '../ids.ts';
import { AccountNode } from './account.ts';

const NO_ROW = '00000000-0000-0000-0000-000000000000';

export const ApiKeyNode = builder.prismaNode('ApiKey', {
  id: { field: 'id' },
  nullable: true,
  description: 'An API key of your account. Its secret is shown once, when it is made; only `prefix` is kept to recognise it.',
  // Only the account's owner credentials see its keys (a browser token never does).
  findUnique: (id, ctx) => ({ id, accountId: ctx.scope ? NO_ROW : ctx.accountId() }),
  fields: (t) => ({
    name: t.exposeString('name'),
    prefix: t.exposeString('prefix', { description: 'The first characters of the secret (`sg_` and 8 more).' }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    lastUsedAt: t.expose('lastUsedAt', { type: 'DateTime', nullable: true, description: 'Updated at most once a minute.' }),
    expiresAt: t.expose('expiresAt', { type: 'DateTime', nullable: true }),
    revokedAt: t.expose('revokedAt', { type: 'DateTime', nullable: true }),
  }),
});

builder.prismaObjectField(AccountNode, 'apiKeys', (t) =>
  t.relation('apiKeys', {
    description: 'Every key of the account, newest first, revoked and expired ones included.',
    query: { orderBy: [{ createdAt: 'desc' }, { id: 'desc' }] },
  }),
);

const CreateApiKeyInput = builder.inputType('CreateApiKeyInput', {
  fields: (t) => ({
    name: t.string({ required: true, description: 'What the key is for, 1 to 100 characters.' }),
    expiresInDays: t.int({ description: 'The key stops working after this many days (1 to 3650); never when null.' }),
  }),
});

const CreateApiKeyPayload = builder.objectRef<{ apiKey: ApiKeyView; secret: string }>('CreateApiKeyPayload').implement({
  fields: (t) => ({
    apiKey: t.prismaField({
      type: ApiKeyNode,
      resolve: (query, r, _args, ctx) => ctx.segue.db.apiKey.findUniqueOrThrow({ ...query, where: { id: r.apiKey.id } }),
    }),
    secret: t.exposeString('secret', {
      description: 'The key itself (`sg_...`), shown this once: Segue keeps only its hash. Send it as `Authorization: Bearer <secret>`.',
    }),
  }),
});

builder.mutationFields((t) => ({
  createApiKey: t.field({
    type: CreateApiKeyPayload,
    description: 'A new API key for your account. The secret is in the answer and nowhere else, ever.',
    args: { input: t.arg({ type: CreateApiKeyInput, required: true }) },
    resolve: (_root, { input }, ctx) => createApiKey(ctx.segue.db, ctx.ownerAccountId(), input),
  }),
  revokeApiKey: t.prismaField({
    type: ApiKeyNode,
    description:
      'Revokes a key of your account: every API instance refuses it from the next request, its open WebSocket and SSE ' +
      'subscriptions end, and so do browser tokens it made. Revoking a revoked key changes nothing.',
    args: { id: t.arg.id({ required: true }) },
    resolve: async (query, _root, args, ctx) => {
      const accountId = ctx.ownerAccountId();
      const key = await revokeApiKey({ db: ctx.segue.db, revocations: keyRevocations(ctx.segue) }, accountId, idOf('ApiKey', String(args.id)));
      return ctx.segue.db.apiKey.findUniqueOrThrow({ ...query, where: { id: key.id } });
    },
  }),
}));
