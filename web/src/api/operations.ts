import { graphql } from '../../../src/generated/gql';

/*
 * Every operation the console sends, as codegen'd typed documents (`npm run codegen` turns these
 * strings into types in src/generated/gql). Names start with "Console" because operation and
 * fragment names are unique across the whole project (tests and CLI have their own).
 */

export const ConsoleTransition = graphql(`
  fragment ConsoleTransition on Transition {
    id
    status
    version
    frontImageUrl
    tailImageUrl
    prompt
    negativePrompt
    transitionType
    durationSeconds
    queuePosition
    attempts
    videoUrl
    posterUrl
    estimatedCost
    estimatedCompletionAt
    error { code message }
    updatedAt
  }
`);

export const ConsoleBatch = graphql(`
  fragment ConsoleBatch on Batch {
    id
    status
    total
    queued
    running
    completed
    failed
    canceled
    estimatedCost
    estimatedCompletionAt
    createdAt
    completedAt
  }
`);

export const ConsoleViewer = graphql(`
  query ConsoleViewer { viewer { id name } }
`);

export const ConsoleCreateTransitions = graphql(`
  mutation ConsoleCreateTransitions($input: CreateTransitionsInput!) {
    createTransitions(input: $input) {
      batch { id }
    }
  }
`);

/**
 * A batch with one page of its transitions, in the order they were given. The page size is a
 * literal so the API's query-cost limit counts it (25 full transitions cost ~6,300 of the default
 * 20,000); larger batches take a few pages (batches/load-batch.ts).
 */
export const ConsoleBatchDetail = graphql(`
  query ConsoleBatchDetail($id: ID!, $after: String) {
    batch(id: $id) {
      ...ConsoleBatch
      transitions(first: 25, after: $after) {
        edges { node { ...ConsoleTransition } }
        pageInfo { hasNextPage endCursor }
      }
    }
  }
`);

/**
 * Which transitions a batch holds now, ids only: read again after transitions were deleted from
 * it. One page (a batch holds at most 100): a page after a cursor whose item was just deleted
 * could come back empty and hide the rest.
 */
export const ConsoleBatchItemIds = graphql(`
  query ConsoleBatchItemIds($id: ID!) {
    batch(id: $id) {
      id
      transitions(first: 100) { edges { node { id } } }
    }
  }
`);

export const ConsoleRecentBatches = graphql(`
  query ConsoleRecentBatches($after: String) {
    batches(first: 10, after: $after) {
      edges { node { ...ConsoleBatch } }
      pageInfo { hasNextPage endCursor }
    }
  }
`);

export const ConsoleCancelTransition = graphql(`
  mutation ConsoleCancelTransition($id: ID!) {
    cancelTransition(id: $id) { ...ConsoleTransition }
  }
`);

export const ConsoleRetryTransition = graphql(`
  mutation ConsoleRetryTransition($id: ID!) {
    retryTransition(id: $id) { ...ConsoleTransition }
  }
`);

export const ConsoleCancelBatch = graphql(`
  mutation ConsoleCancelBatch($id: ID!) {
    cancelBatch(id: $id) { ...ConsoleBatch }
  }
`);

/** A snapshot of each transition of the batch first, then every change (versions only go up). */
export const ConsoleTransitionUpdated = graphql(`
  subscription ConsoleTransitionUpdated($batchId: ID!) {
    transitionUpdated(batchId: $batchId) { ...ConsoleTransition }
  }
`);

/** The batch's counts now, then on every change; completes when the batch ends. */
export const ConsoleBatchProgress = graphql(`
  subscription ConsoleBatchProgress($id: ID!) {
    batchProgress(id: $id) { ...ConsoleBatch }
  }
`);

/** A combined video: its state, the files once COMPLETED, and the clips it joins, in order. */
export const ConsoleGeneratedTransition = graphql(`
  fragment ConsoleGeneratedTransition on GeneratedTransition {
    id
    status
    version
    videoUrl
    posterUrl
    subtitlesUrl
    durationSeconds
    audioUrl
    burnSubtitles
    error { code message }
    transitions { id }
    createdAt
    completedAt
  }
`);

/** 2 to 50 COMPLETED transitions, in play order; rendered by a media worker (QUEUED first). */
export const ConsoleCombineTransitions = graphql(`
  mutation ConsoleCombineTransitions($input: CombineTransitionsInput!) {
    combineTransitions(input: $input) {
      generatedTransition { ...ConsoleGeneratedTransition }
    }
  }
`);

/** The combined video now, then every change; completes when it is COMPLETED or FAILED. */
export const ConsoleGeneratedTransitionUpdated = graphql(`
  subscription ConsoleGeneratedTransitionUpdated($id: ID!) {
    generatedTransitionUpdated(id: $id) { ...ConsoleGeneratedTransition }
  }
`);

/** The account's combined videos, newest first. */
export const ConsoleGeneratedTransitions = graphql(`
  query ConsoleGeneratedTransitions($after: String) {
    generatedTransitions(first: 10, after: $after) {
      edges { node { ...ConsoleGeneratedTransition } }
      pageInfo { hasNextPage endCursor }
    }
  }
`);

/** A read-only browser token for one batch: what the "Share live view" link carries instead of a key. */
export const ConsoleCreateAccessToken = graphql(`
  mutation ConsoleCreateAccessToken($input: CreateAccessTokenInput!) {
    createAccessToken(input: $input) { token expiresAt }
  }
`);

export const ConsoleUploadImage = graphql(`
  mutation ConsoleUploadImage($file: File!) {
    uploadImage(file: $file) { id url width height contentType bytes }
  }
`);
