import { graphql } from '../../src/generated/gql/index.ts';

/** Operations of the credential tests: keys, browser tokens, deletion. */
export const CreateApiKey = graphql(`
  mutation CreateApiKey($input: CreateApiKeyInput!) {
    createApiKey(input: $input) {
      apiKey { id name prefix createdAt lastUsedAt expiresAt revokedAt }
      secret
    }
  }
`);

export const RevokeApiKey = graphql(`
  mutation RevokeApiKey($id: ID!) {
    revokeApiKey(id: $id) { id name prefix revokedAt }
  }
`);

export const ViewerKeys = graphql(`
  query ViewerKeys {
    viewer { id apiKeys { id name prefix createdAt lastUsedAt expiresAt revokedAt } }
  }
`);

export const CreateAccessToken = graphql(`
  mutation CreateAccessToken($input: CreateAccessTokenInput!) {
    createAccessToken(input: $input) { token expiresAt scope }
  }
`);

export const TransitionWithBatch = graphql(`
  query TransitionWithBatch($id: ID!) {
    transition(id: $id) { id status batch { id } }
  }
`);

export const DeleteTransitions = graphql(`
  mutation DeleteTransitions($input: DeleteTransitionsInput!) {
    deleteTransitions(input: $input) { deletedIds }
  }
`);

export const ViewerSpend = graphql(`
  query ViewerSpend { viewer { id spend { spentUsd reservedUsd } } }
`);
