import type { Db, Sql } from '../db.ts';
import { requestsInFlight } from './claims.ts';
import type { TransitionStatus } from '../generated/prisma/enums.ts';
import { OPEN } from './statuses.ts';
import type { QueueGauges } from './ports.ts';

/** Transitions by status: one account's, or (null) every account's. */
export async function transitionsByStatus(db: Db, accountId: string | null) {
  const rows = await db.transition.groupBy({ by: ['status'], where: accountId ? { accountId } : {}, _count: { _all: true } });
  return rows.map((r) => ({ status: r.status as TransitionStatus, count: r._count._all }));
}

type StatsDeps = {
  db: Db;
  sql: Pick<Sql, 'query'>;
  generationJobs: QueueGauges;
  config: { fal: { concurrency: number; submitTimeoutMs: number } };
};

/**
 * What an account may know of the queue (`queueStats`): its own transitions by status, and the
 * shared figures every tenant sees anyway in its waits: queue depths, fal requests in flight
 * against FAL_CONCURRENCY (as the ledger counts them: active jobs include staged ones, whose
 * claims wait for a slot), how many workers are online.
 * Never which hosts and processes they are: that is for operators (`operatorStats`).
 */
export async function queueStats(deps: StatsDeps, accountId: string) {
  const [byStatus, queue, workers, falInFlight] = await Promise.all([
    transitionsByStatus(deps.db, accountId),
    deps.generationJobs.depths(),
    deps.generationJobs.onlineWorkers(),
    requestsInFlight(deps.sql, deps.config.fal),
  ]);
  return { byStatus, queue, falInFlight, falConcurrency: deps.config.fal.concurrency, workersOnline: workers.length };
}

/** Open (queued or running) transitions per account, the busiest first. */
async function openByAccount(db: Db, limit: number) {
  const rows = await db.transition.groupBy({
    by: ['accountId', 'status'],
    where: { status: { in: [...OPEN] } },
    _count: { _all: true },
  });
  const byAccount = new Map<string, { accountId: string; queued: number; running: number }>();
  for (const row of rows) {
    const entry = byAccount.get(row.accountId) ?? { accountId: row.accountId, queued: 0, running: 0 };
    if (row.status === 'QUEUED') entry.queued += row._count._all;
    else entry.running += row._count._all;
    byAccount.set(row.accountId, entry);
  }
  const top = [...byAccount.values()].sort((a, b) => b.queued + b.running - (a.queued + a.running)).slice(0, limit);
  const names = new Map(
    (await db.account.findMany({ where: { id: { in: top.map((t) => t.accountId) } }, select: { id: true, name: true } })).map((a) => [a.id, a.name]),
  );
  return top.map((t) => ({ ...t, name: names.get(t.accountId) ?? '' }));
}

/** For operators (the CLI, straight from PostgreSQL and Redis): every account's figures and the workers. */
export async function operatorStats(deps: StatsDeps) {
  const [byStatus, accounts, queue, workers, falInFlight] = await Promise.all([
    transitionsByStatus(deps.db, null),
    openByAccount(deps.db, 20),
    deps.generationJobs.depths(),
    deps.generationJobs.onlineWorkers(),
    requestsInFlight(deps.sql, deps.config.fal),
  ]);
  return { byStatus, accounts, queue, falInFlight, falConcurrency: deps.config.fal.concurrency, workers };
}
