import type { CredentialNotice } from '../auth/sessions.ts';
import type { KeyRevocations } from '../domain/api-keys.ts';
import type { Logger } from '../logger.ts';
import type { PubSub } from './pubsub.ts';
import type { Topics } from './topics.ts';

/**
 * Tells every API instance that keys were revoked, so their open connections close at once. A
 * failed publish (Redis down) is logged, not raised: the revocation is already committed, HTTP
 * requests read keys from PostgreSQL, and open connections are re-checked within seconds anyway.
 */
export function keyRevocations(deps: { pubsub: PubSub; topics: Topics; logger: Logger }): KeyRevocations {
  return {
    async revoked(keyIds) {
      if (keyIds.length === 0) return;
      const notice: CredentialNotice = { revokedKeyIds: [...keyIds] };
      try {
        await deps.pubsub.publish(deps.topics.credentials(), notice);
      } catch (err) {
        deps.logger.warn({ err, keyIds }, 'could not announce revoked keys; open connections close at the next re-check');
      }
    },
  };
}
