import { NO_ROW } from '../../auth/scope.ts';
import { accountSpend, remainingUsd, type AccountSpend } from '../../domain/costs.ts';
import { builder } from '../builder.ts';

const Spend = builder.objectRef<AccountSpend>('Spend').implement({
  description: 'USD. spentUsd counts every request fal accepted (each may be billed); reservedUsd is queued work not billed yet.',
  fields: (t) => ({
    spentUsd: t.exposeFloat('spentUsd'),
    reservedUsd: t.exposeFloat('reservedUsd'),
    budgetUsd: t.exposeFloat('budgetUsd', { nullable: true, description: 'Generation beyond it is refused with BUDGET_EXCEEDED.' }),
    remainingUsd: t.float({ nullable: true, resolve: remainingUsd }),
  }),
});

export const AccountNode = builder.prismaNode('Account', {
  id: { field: 'id' },
  nullable: true,
  // An account can see itself only (and a browser token not even that).
  findUnique: (id, ctx) => ({ id: id === ctx.accountId() && !ctx.scope ? id : NO_ROW }),
  fields: (t) => ({
    name: t.exposeString('name'),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    spend: t.field({
      type: Spend,
      description: 'What this account has spent at fal so far, and its budget.',
      resolve: (account, _args, ctx) => accountSpend(ctx.segue.sql, account.id, ctx.segue.config.pricePerSecondUsd),
    }),
  }),
});

builder.queryField('viewer', (t) =>
  t.prismaField({
    type: 'Account',
    description: 'The account whose credential made this request.',
    resolve: (query, _root, _args, ctx) =>
      ctx.segue.db.account.findUniqueOrThrow({ ...query, where: { id: ctx.ownerAccountId() } }),
  }),
);
