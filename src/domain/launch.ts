import type { Transition } from '../generated/prisma/client.ts';
import type { Logger } from '../logger.ts';
import type { RunJobs } from './ports.ts';
import { announceCommitted, type ChangeListener, type TransitionField } from './state-machine.ts';

export interface LaunchDeps {
  db: import('../db.ts').Db;
  sql: import('../db.ts').Sql;
  generationJobs: RunJobs;
  events: ChangeListener;
  logger: Logger;
}

/**
 * After a transaction that queued transitions has committed: announce them and add their jobs.
 * If Redis cannot take the jobs now, the rows are still QUEUED in PostgreSQL and the workers'
 * reconciler adds the jobs when Redis is back, so the request still succeeds.
 */
export async function launchRuns(deps: LaunchDeps, rows: readonly Transition[], fields?: readonly TransitionField[]) {
  if (rows.length === 0) return;
  await announceCommitted(deps, rows, fields);
  try {
    await deps.generationJobs.enqueue(rows);
  } catch (err) {
    deps.logger.warn({ err, transitions: rows.length }, 'could not enqueue now; the reconciler will');
  }
}
