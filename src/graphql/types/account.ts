import { builder } from '../builder.ts';

export const AccountNode = builder.prismaNode('Account', {
  id: { field: 'id' },
  nullable: true,
  // An account can see itself only.
  findUnique: (id, ctx) => ({ id: id === ctx.accountId() ? id : '00000000-0000-0000-0000-000000000000' }),
  fields: (t) => ({
    name: t.exposeString('name'),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
  }),
});

builder.queryField('viewer', (t) =>
  t.prismaField({
    type: 'Account',
    description: 'The account whose API key made this request.',
    resolve: (query, _root, _args, ctx) =>
      ctx.segue.db.account.findUniqueOrThrow({ ...query, where: { id: ctx.accountId() } }),
  }),
);
