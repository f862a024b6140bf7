import { mintAccessToken, TOKEN_TTL, type MintedToken } from '../../auth/access-tokens.ts';
import { builder } from '../builder.ts';
import { idOf } from '../ids.ts';

const AccessToken = builder.objectRef<MintedToken>('AccessToken').implement({
  description:
    'A browser token: send it like a key (`Authorization: Bearer <token>`, or connectionParams.authorization). It reads and ' +
    'follows only the batch or transition it names, until expiresAt, or until the key that made it is revoked.',
  fields: (t) => ({
    token: t.exposeString('token', { description: 'A signed JWT; it carries no secret and may go in a link.' }),
    expiresAt: t.expose('expiresAt', { type: 'DateTime' }),
    scope: t.exposeString('scope', { description: 'What it reads: `read:batch:<uuid>` or `read:transition:<uuid>`.' }),
  }),
});

const CreateAccessTokenInput = builder.inputType('CreateAccessTokenInput', {
  description: 'Exactly one of batchId and transitionId.',
  fields: (t) => ({
    batchId: t.id({ description: 'The batch (and its transitions) the token reads.' }),
    transitionId: t.id({ description: 'The one transition the token reads.' }),
    ttlSeconds: t.int({
      defaultValue: TOKEN_TTL.defaultSeconds,
      description: `How long the token lasts: ${TOKEN_TTL.minSeconds} to ${TOKEN_TTL.maxSeconds} seconds (never longer than the key making it).`,
    }),
  }),
});

builder.mutationField('createAccessToken', (t) =>
  t.field({
    type: AccessToken,
    description: 'A short-lived, read-only token for a browser: one batch or one transition, and nothing else.',
    args: { input: t.arg({ type: CreateAccessTokenInput, required: true }) },
    resolve: (_root, { input }, ctx) => {
      ctx.ownerAccountId();
      return mintAccessToken({ db: ctx.segue.db, tokens: ctx.tokens }, ctx.principal!, {
        batchId: input.batchId ? idOf('Batch', String(input.batchId), 'batchId') : null,
        transitionId: input.transitionId ? idOf('Transition', String(input.transitionId), 'transitionId') : null,
        ttlSeconds: input.ttlSeconds,
      });
    },
  }),
);
