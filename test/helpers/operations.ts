import { graphql } from '../../src/generated/gql/index.ts';

export const TransitionFields = graphql(`
  fragment TransitionFields on Transition {
    id
    status
    version
    frontImageUrl
    tailImageUrl
    prompt
    negativePrompt
    transitionType
    durationSeconds
    enableSubtitles
    subtitles
    audioUrl
    videoUrl
    attempts
    falRequestId
    queuePosition
    error { code message }
    createdAt
    updatedAt
    queuedAt
    startedAt
    completedAt
  }
`);

export const BatchFields = graphql(`
  fragment BatchFields on Batch {
    id
    status
    total
    queued
    running
    completed
    failed
    canceled
    createdAt
    completedAt
  }
`);

export const CreateTransitions = graphql(`
  mutation CreateTransitions($input: CreateTransitionsInput!) {
    createTransitions(input: $input) {
      transitions { ...TransitionFields }
      batch { ...BatchFields }
    }
  }
`);

export const GenerateBatch = graphql(`
  mutation GenerateBatch($input: GenerateBatchInput!) {
    generateBatch(input: $input) {
      batch {
        ...BatchFields
        transitions(first: 100) { edges { node { id status } } }
      }
    }
  }
`);

export const GetTransition = graphql(`
  query GetTransition($id: ID!) {
    transition(id: $id) { ...TransitionFields batch { id } }
  }
`);

export const GetNode = graphql(`
  query GetNode($id: ID!) {
    node(id: $id) { id __typename }
  }
`);

export const ListTransitions = graphql(`
  query ListTransitions($first: Int, $after: String, $last: Int, $before: String, $status: TransitionStatus, $batchId: ID) {
    transitions(first: $first, after: $after, last: $last, before: $before, status: $status, batchId: $batchId) {
      edges { cursor node { id status prompt } }
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    }
  }
`);

export const GetBatch = graphql(`
  query GetBatch($id: ID!) {
    batch(id: $id) {
      ...BatchFields
      transitions(first: 100) { edges { node { id status } } }
    }
  }
`);

export const ListBatches = graphql(`
  query ListBatches($first: Int, $after: String) {
    batches(first: $first, after: $after) {
      edges { node { id status total } }
      pageInfo { hasNextPage endCursor }
    }
  }
`);

export const Viewer = graphql(`
  query Viewer { viewer { id name createdAt } }
`);

export const CancelTransition = graphql(`
  mutation CancelTransition($id: ID!) {
    cancelTransition(id: $id) { ...TransitionFields }
  }
`);

export const CancelBatch = graphql(`
  mutation CancelBatch($id: ID!) {
    cancelBatch(id: $id) { ...BatchFields }
  }
`);

export const RetryTransition = graphql(`
  mutation RetryTransition($id: ID!) {
    retryTransition(id: $id) { ...TransitionFields }
  }
`);

export const TransitionUpdated = graphql(`
  subscription TransitionUpdated($id: ID, $batchId: ID) {
    transitionUpdated(id: $id, batchId: $batchId) { id status version queuePosition attempts videoUrl posterUrl error { code message } }
  }
`);

export const BatchProgress = graphql(`
  subscription BatchProgress($id: ID!) {
    batchProgress(id: $id) { ...BatchFields }
  }
`);

export const CombineTransitions = graphql(`
  mutation CombineTransitions($input: CombineTransitionsInput!) {
    combineTransitions(input: $input) {
      generatedTransition { id status transitions { id } }
    }
  }
`);

export const GeneratedTransitionUpdated = graphql(`
  subscription GeneratedTransitionUpdated($id: ID!) {
    generatedTransitionUpdated(id: $id) {
      id status version videoUrl posterUrl subtitlesUrl durationSeconds audioUrl error { code message }
    }
  }
`);

export const GetGeneratedTransition = graphql(`
  query GetGeneratedTransition($id: ID!) {
    generatedTransition(id: $id) {
      id status videoUrl posterUrl subtitlesUrl durationSeconds burnSubtitles transitions { id }
    }
  }
`);

export const ImageFields = graphql(`
  fragment ImageFields on Image { id url width height contentType bytes createdAt }
`);

export const UploadImage = graphql(`
  mutation UploadImage($file: File!) { uploadImage(file: $file) { ...ImageFields } }
`);

export const CreateImageUpload = graphql(`
  mutation CreateImageUpload($input: CreateImageUploadInput!) {
    createImageUpload(input: $input) { imageId uploadUrl headers { name value } expiresAt }
  }
`);

export const CompleteImageUpload = graphql(`
  mutation CompleteImageUpload($id: ID!) { completeImageUpload(id: $id) { ...ImageFields } }
`);

export const GetImage = graphql(`
  query GetImage($id: ID!) { image(id: $id) { ...ImageFields } }
`);
