import { badInput, notFound } from '../domain/errors.ts';

/** A database id as PostgreSQL prints a uuid (lowercase). */
export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Global IDs are base64url("Type:uuid"): opaque to clients, cheap to check before any query. */
export const encodeId = (typename: string, id: string | number | bigint) =>
  Buffer.from(`${typename}:${id}`).toString('base64url');

export function decodeId(globalId: string, field = 'id'): { typename: string; id: string } {
  const decoded = Buffer.from(globalId, 'base64url').toString('utf8');
  const colon = decoded.indexOf(':');
  const typename = decoded.slice(0, colon);
  const id = decoded.slice(colon + 1);
  if (colon < 1 || !UUID.test(id) || encodeId(typename, id) !== globalId.replace(/=+$/, '')) {
    throw badInput(`"${globalId.slice(0, 100)}" is not a valid ID.`, [field]);
  }
  return { typename, id };
}

/** The database id behind a global ID of the expected type; another type's ID is NOT_FOUND. */
export function idOf(typename: string, globalId: string, field = 'id'): string {
  const decoded = decodeId(globalId, field);
  if (decoded.typename !== typename) throw notFound(typename);
  return decoded.id;
}
