import type { BatchCounts, BatchStatus } from '../domain/batches.ts';
import type { ReadPoint } from '../domain/read-points.ts';
import type { GeneratedTransition, Transition } from '../generated/prisma/client.ts';
import { getDatamodel } from '../generated/pothos-types.ts';

/**
 * What travels on Redis pub/sub. Messages are small: a transition's change carries its ids,
 * status, run and version and only the columns the change wrote; subscribers resolve the rest
 * (see rows.ts). Text travels as text: only the columns that ARE dates (by the Prisma model) come
 * back as Dates, so a prompt that looks like a timestamp stays the string it was.
 */
export interface TransitionChange {
  kind: 'transition';
  id: string;
  accountId: string;
  batchId: string | null;
  run: number;
  status: Transition['status'];
  version: number;
  /** The columns the change wrote, with their new values; every column when `full`. */
  changed: Partial<Transition>;
  /** A row just made: `changed` is the whole row. */
  full: boolean;
}

/** A batch's counts after a change, coalesced (one per batch per flush), and whether it has ended. */
export interface BatchProgress {
  kind: 'batch';
  batchId: string;
  accountId: string;
  completedAt: Date | null;
  counts: BatchCounts;
  status: BatchStatus;
  /**
   * Where the read of completedAt and counts stands: processes publish in any order, and a
   * subscriber drops a message read before what it has already sent. (Absent from a process not
   * yet updated.)
   */
  readAt?: ReadPoint;
}

export interface CombinedChange {
  kind: 'combined';
  generatedTransition: GeneratedTransition;
}

/** A transition deleted (deleteTransitions), on its own topic: its streams have nothing more to send. */
export interface TransitionDeleted {
  kind: 'transition-deleted';
  id: string;
  accountId: string;
}

/** A batch deleted with its last items, on its topic: its streams end. */
export interface BatchDeleted {
  kind: 'batch-deleted';
  batchId: string;
  accountId: string;
}

export type Message = TransitionChange | BatchProgress | CombinedChange | TransitionDeleted | BatchDeleted;

/** What a transitionUpdated feed hears: its transitions' topics, and for a batch, the batch's topic. */
export type TransitionFeedMessage = TransitionChange | TransitionDeleted | BatchProgress | BatchDeleted;

/** What a batch's topic carries. */
export type BatchFeedMessage = BatchProgress | BatchDeleted;

const dateFieldsOf = (model: 'Transition' | 'GeneratedTransition') =>
  new Set(
    getDatamodel()
      .datamodel.models[model]!.fields.filter((f) => f.kind === 'scalar' && f.type === 'DateTime')
      .map((f) => f.name),
  );

const DATE_FIELDS = { Transition: dateFieldsOf('Transition'), GeneratedTransition: dateFieldsOf('GeneratedTransition') };

function reviveDates<T extends object>(record: T, fields: ReadonlySet<string>): T {
  for (const [key, value] of Object.entries(record)) {
    if (fields.has(key) && typeof value === 'string') (record as Record<string, unknown>)[key] = new Date(value);
  }
  return record;
}

/** JSON, with Dates as ISO strings (Date#toJSON). */
export const encodeMessage = (message: Message): string => JSON.stringify(message);

/** The inverse of encodeMessage: Dates come back where the model has dates, and nowhere else. */
export function decodeMessage(raw: Buffer | string): Message {
  const message = JSON.parse(raw.toString()) as Message;
  switch (message.kind) {
    case 'transition':
      reviveDates(message.changed, DATE_FIELDS.Transition);
      break;
    case 'batch':
      if (typeof message.completedAt === 'string') message.completedAt = new Date(message.completedAt);
      break;
    case 'combined':
      reviveDates(message.generatedTransition, DATE_FIELDS.GeneratedTransition);
      break;
  }
  return message;
}

/** The message for a committed change of `row` that wrote `fields` (all of them when absent). */
export function transitionChange(row: Transition, fields?: readonly (keyof Transition)[]): TransitionChange {
  let changed: Partial<Transition> = row;
  if (fields) {
    changed = {};
    for (const field of fields) (changed as Record<string, unknown>)[field] = row[field];
  }
  return {
    kind: 'transition',
    id: row.id,
    accountId: row.accountId,
    batchId: row.batchId,
    run: row.run,
    status: row.status,
    version: row.version,
    changed,
    full: !fields,
  };
}

/**
 * The row at `change`'s version, from the row one version older: the columns the change wrote
 * over it (a new row's message is the whole row). What transitionChange took apart, put back.
 */
export function applyChange(older: Transition, change: TransitionChange): Transition {
  if (change.full) return change.changed as Transition;
  return { ...older, ...change.changed, status: change.status, run: change.run, version: change.version } as Transition;
}
