import { graphql } from '../generated/gql/index.ts';

/** Every operation the command line sends: typed by codegen, the same public API as any client. */
export const CliTransitionFields = graphql(`
  fragment CliTransitionFields on Transition {
    id
    status
    prompt
    durationSeconds
    attempts
    queuePosition
    videoUrl
    estimatedCost
    error { code message }
    version
  }
`);

export const CliBatchFields = graphql(`
  fragment CliBatchFields on Batch {
    id
    status
    total
    queued
    running
    completed
    failed
    canceled
    estimatedCost
    createdAt
    completedAt
  }
`);

export const CliCreateTransitions = graphql(`
  mutation CliCreateTransitions($input: CreateTransitionsInput!) {
    createTransitions(input: $input) {
      transitions { ...CliTransitionFields }
      batch { ...CliBatchFields }
    }
  }
`);

export const CliRetryTransition = graphql(`
  mutation CliRetryTransition($id: ID!) { retryTransition(id: $id) { ...CliTransitionFields } }
`);

export const CliCancelTransition = graphql(`
  mutation CliCancelTransition($id: ID!) { cancelTransition(id: $id) { ...CliTransitionFields } }
`);

export const CliBatch = graphql(`
  query CliBatch($id: ID!) {
    batch(id: $id) {
      ...CliBatchFields
      transitions(first: 100) { edges { node { ...CliTransitionFields } } }
    }
  }
`);

export const CliBatchProgress = graphql(`
  subscription CliBatchProgress($id: ID!) { batchProgress(id: $id) { ...CliBatchFields } }
`);

export const CliQueueStats = graphql(`
  query CliQueueStats {
    queueStats {
      byStatus { status count }
      queue { waiting active delayed failed }
      falInFlight
      falConcurrency
      workersOnline
    }
  }
`);
