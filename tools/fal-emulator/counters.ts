import type { FalCounters } from './types.ts';

/** Fresh zeroed counters; the live gauges (inQueue, inProgress, inFlight) are filled in on read. */
export function createCounters(): FalCounters {
  return {
    submitted: 0,
    rejectedSubmits: 0,
    inQueue: 0,
    inProgress: 0,
    inFlight: 0,
    maxInFlight: 0,
    maxInProgress: 0,
    completed: 0,
    succeeded: 0,
    failed: 0,
    canceled: 0,
    duplicateInputs: 0,
    statusCalls: 0,
    streamsOpened: 0,
    streamsOpen: 0,
    streamsCut: 0,
    resultCalls: 0,
    cancelCalls: 0,
    hungCalls: 0,
    connectionsReset: 0,
    webhookAttempts: 0,
    webhooksDelivered: 0,
    uploads: 0,
    uploadedBytes: 0,
    uploadsRefused: 0,
    connections: 0,
  };
}
