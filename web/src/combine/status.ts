import type { GeneratedTransitionStatus } from '../../../src/generated/gql/graphql';

/** The API takes 2 to 50 clips per combined video. */
export const COMBINE_LIMITS = { min: 2, max: 50 } as const;

export const COMBINED_STATUS_LABEL: Record<GeneratedTransitionStatus, string> = {
  QUEUED: 'Queued',
  RUNNING: 'Rendering',
  COMPLETED: 'Completed',
  FAILED: 'Failed',
};

/** generatedTransitionUpdated completes once the video is COMPLETED or FAILED. */
export const combinedHasEnded = (status: GeneratedTransitionStatus) => status === 'COMPLETED' || status === 'FAILED';
