import type { BatchStatus, TransitionStatus } from '../../../src/generated/gql/graphql';

/** What each state means to a person watching (README: QUEUED → SUBMITTED → IN_PROGRESS → ...). */
export const TRANSITION_STATUS_LABEL: Record<TransitionStatus, string> = {
  DRAFT: 'Draft',
  QUEUED: 'Queued',
  SUBMITTED: 'Submitted to fal',
  IN_PROGRESS: 'Generating',
  COMPLETED: 'Completed',
  FAILED: 'Failed',
  CANCELED: 'Canceled',
};

export const BATCH_STATUS_LABEL: Record<BatchStatus, string> = {
  QUEUED: 'Queued',
  RUNNING: 'Running',
  COMPLETED: 'Completed',
  PARTIAL: 'Partly completed',
  FAILED: 'Failed',
  CANCELED: 'Canceled',
};

/** cancelTransition accepts what is queued or running; anything else is a CONFLICT. */
export const canCancel = (status: TransitionStatus) => status === 'QUEUED' || status === 'SUBMITTED' || status === 'IN_PROGRESS';

/** retryTransition accepts FAILED and CANCELED only. */
export const canRetry = (status: TransitionStatus) => status === 'FAILED' || status === 'CANCELED';

export const batchIsOpen = (status: BatchStatus) => status === 'QUEUED' || status === 'RUNNING';
