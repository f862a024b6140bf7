/**
 * Channel names. One PUBLISH per change; subscribers pick what they need with patterns:
 *   <prefix>:events:transition:<accountId>:<batchId|->:<transitionId>
 * - one transition:   ...:transition:<accountId>:*:<transitionId>
 * - a batch's items:  ...:transition:<accountId>:<batchId>:*
 * - a whole account:  ...:transition:<accountId>:*
 * Ids are UUIDs, so they never contain the separator or a glob character.
 */
export function topics(prefix: string) {
  const base = `${prefix}:events`;
  return {
    transition: (accountId: string, batchId: string | null, transitionId: string) =>
      `${base}:transition:${accountId}:${batchId ?? '-'}:${transitionId}`,
    oneTransition: (accountId: string, transitionId: string) => `${base}:transition:${accountId}:*:${transitionId}`,
    batchTransitions: (accountId: string, batchId: string) => `${base}:transition:${accountId}:${batchId}:*`,
    accountTransitions: (accountId: string) => `${base}:transition:${accountId}:*`,
    allTransitions: () => `${base}:transition:*`,
    batch: (accountId: string, batchId: string) => `${base}:batch:${accountId}:${batchId}`,
    generatedTransition: (accountId: string, id: string) => `${base}:combined:${accountId}:${id}`,
    /**
     * Requests fal ended without a result, as its webhook told (the message: JSON of the transition
     * and request ids): the worker following one reads fal's answer now, not at its next poll
     * (src/worker/wakeups.ts).
     */
    requestEnded: () => `${base}:request-ended`,
    /** Credential notices (keys revoked) for every API instance; see src/auth/sessions.ts. */
    credentials: () => `${base}:credentials`,
  };
}

export type Topics = ReturnType<typeof topics>;
