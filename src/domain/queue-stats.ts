import type { Db } from '../db.ts';
import type { TransitionStatus } from '../generated/prisma/enums.ts';
import { OPEN } from './statuses.ts';
import type { GenerationQueue } from '../queue/generation-queue.ts';

export interface WorkerInfo {
  name: string;
  host: string;
  pid: number | null;
  concurrency: number | null;
  startedAt: Date;
  address: string;
}

/** BullMQ names each worker connection `<prefix>:<queue>:w:<name>`; Segue's names are host:pid:concurrency. */
export const workerName = (host: string, pid: number, concurrency: number) => `${host}:${pid}:${concurrency}`;

/** The workers connected to the generation queue now, from their named connections (Redis CLIENT LIST). */
export async function onlineWorkers(jobs: GenerationQueue): Promise<WorkerInfo[]> {
  const clients = await jobs.workerClients();
  const byName = new Map<string, WorkerInfo>();
  for (const client of clients) {
    const raw = client.rawname ?? '';
    const name = raw.includes(':w:') ? raw.slice(raw.indexOf(':w:') + 3) : raw;
    const [host, pid, concurrency] = name.split(':');
    const startedAt = new Date(Date.now() - Number(client.age ?? 0) * 1000);
    const known = byName.get(name);
    // A worker holds more than one connection; the oldest tells when it started.
    if (!known || startedAt < known.startedAt) {
      byName.set(name, {
        name,
        host: host ?? name,
        pid: Number.isInteger(Number(pid)) && pid ? Number(pid) : null,
        concurrency: Number.isInteger(Number(concurrency)) && concurrency ? Number(concurrency) : null,
        startedAt,
        address: client.addr ?? '',
      });
    }
  }
  return [...byName.values()].sort((a, b) => a.name.localeCompare(b.name));
}

export async function queueDepths(jobs: GenerationQueue) {
  const counts = await jobs.queue.getJobCounts('waiting', 'prioritized', 'active', 'delayed', 'failed', 'completed');
  return {
    // Prioritized jobs are waiting too (every generation job has a fair-share priority).
    waiting: (counts.waiting ?? 0) + (counts.prioritized ?? 0),
    active: counts.active ?? 0,
    delayed: counts.delayed ?? 0,
    failed: counts.failed ?? 0,
  };
}

/** Transitions by status: one account's, or (null) every account's. */
export async function transitionsByStatus(db: Db, accountId: string | null) {
  const rows = await db.transition.groupBy({ by: ['status'], where: accountId ? { accountId } : {}, _count: { _all: true } });
  return rows.map((r) => ({ status: r.status as TransitionStatus, count: r._count._all }));
}

type StatsDeps = { db: Db; jobs: GenerationQueue; config: { fal: { concurrency: number } } };

/**
 * What an account may know of the queue (`queueStats`): its own transitions by status, and the
 * shared figures every tenant sees anyway in its waits: queue depths, fal requests in flight
 * against FAL_CONCURRENCY (an active job is a request in flight), how many workers are online.
 * Never which hosts and processes they are: that is for operators (`operatorStats`).
 */
export async function queueStats(deps: StatsDeps, accountId: string) {
  const [byStatus, queue, workers] = await Promise.all([
    transitionsByStatus(deps.db, accountId),
    queueDepths(deps.jobs),
    onlineWorkers(deps.jobs),
  ]);
  return { byStatus, queue, falInFlight: queue.active, falConcurrency: deps.config.fal.concurrency, workersOnline: workers.length };
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
  const [byStatus, accounts, queue, workers] = await Promise.all([
    transitionsByStatus(deps.db, null),
    openByAccount(deps.db, 20),
    queueDepths(deps.jobs),
    onlineWorkers(deps.jobs),
  ]);
  return { byStatus, accounts, queue, falInFlight: queue.active, falConcurrency: deps.config.fal.concurrency, workers };
}
