import type { Db } from '../db.ts';
import { forbidden, notFound } from '../domain/errors.ts';
import type { Prisma } from '../generated/prisma/client.ts';
import type { AccessScope } from './principal.ts';

/**
 * How far a browser token reaches: the batch it names and that batch's transitions, or the one
 * transition it names. Ids outside are NOT_FOUND, exactly like another account's ids, so a
 * token tells nothing about what else exists. `scope` null means the whole account.
 */

/** A uuid no row has: node lookups outside the scope find nothing. */
export const NO_ROW = '00000000-0000-0000-0000-000000000000';

export const batchInScope = (scope: AccessScope | null, batchId: string) => !scope || scope.batchId === batchId;

export function assertBatchInScope(scope: AccessScope | null, batchId: string, fields?: string[]) {
  if (!batchInScope(scope, batchId)) throw notFound('Batch', fields);
}

/** Extra conditions on a transition lookup, so `node(id)` finds only what the token names. */
export function transitionScopeWhere(scope: AccessScope | null): Pick<Prisma.TransitionWhereInput, 'AND' | 'batchItems'> {
  if (!scope) return {};
  if (scope.batchId === undefined) return { AND: [{ id: scope.transitionId }] };
  return { batchItems: { some: { batchId: scope.batchId } } };
}

export async function assertTransitionInScope(db: Db, scope: AccessScope | null, transitionId: string) {
  if (!scope) return;
  if (scope.batchId === undefined) {
    if (scope.transitionId !== transitionId) throw notFound('Transition');
    return;
  }
  const item = await db.batchItem.findUnique({
    where: { batchId_transitionId: { batchId: scope.batchId, transitionId } },
    select: { position: true },
  });
  if (!item) throw notFound('Transition');
}

/** Account-wide lists and streams are not for a browser token: it names what it reads. */
export function assertAccountWide(scope: AccessScope | null, what: string) {
  if (scope) throw forbidden(`A browser token cannot list ${what} of the account: ask for the batch or transition it was made for.`);
}
