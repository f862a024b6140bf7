import type { Transition } from '../generated/prisma/client.ts';

/**
 * What the domain needs from the queues and the event bus, declared here so the rules never import
 * them: src/queue and src/events implement these, src/runtime.ts wires them in.
 */

/** A generation run to be worked: the transition, its run number and its account (for fair share). */
export interface RunRef {
  id: string;
  run: number;
  accountId: string;
}

/** The generation queue, as the domain uses it. */
export interface RunJobs {
  /** Adds one job per run (a run already queued is left as it is). */
  enqueue(runs: readonly RunRef[]): Promise<void>;
  /** Removes a run's job if no worker has taken it yet. */
  removeWaiting(transitionId: string, run: number): Promise<void>;
}

/** The media queue, as the domain uses it: a combined video to render. */
export interface CombineJobs {
  add(job: { kind: 'combine'; generatedTransitionId: string }): Promise<unknown>;
}

/** What deleteTransitions removed, for the live streams. */
export interface Deletion {
  accountId: string;
  /** Each deleted transition with the batch its topic is under (its current one). */
  transitions: ReadonlyArray<Pick<Transition, 'id' | 'batchId'>>;
  /** Batches that lost items and remain (their counts changed). */
  changedBatchIds: readonly string[];
  /** Batches left with no items, deleted with them. */
  deletedBatchIds: readonly string[];
}

/**
 * The event bus, as deletion uses it: the streams of a deleted transition or batch end (no change
 * will ever come to them), and a remaining batch's viewers get its new counts.
 */
export interface DeletionListener {
  deleted(deletion: Deletion): Promise<void>;
}

/** Calls `onChange` whenever a batch of the account changes; resolves with a function that stops it. */
export type WatchBatch = (accountId: string, batchId: string, onChange: () => void) => Promise<() => void>;

/** A worker process connected to the generation queue. */
export interface WorkerInfo {
  name: string;
  host: string;
  pid: number | null;
  concurrency: number | null;
  startedAt: Date;
  address: string;
}

/** Jobs of the generation queue by state (waiting includes BullMQ's prioritized ones). */
export interface QueueDepths {
  waiting: number;
  active: number;
  delayed: number;
  failed: number;
}

/** What the queue stats read from the generation queue. */
export interface QueueGauges {
  depths(): Promise<QueueDepths>;
  /** The workers connected now. */
  onlineWorkers(): Promise<WorkerInfo[]>;
}
