import type { Db } from '../db.ts';
import type { TransitionStatus } from '../generated/prisma/enums.ts';
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

/** The workers connected to the generation queue now, from BullMQ's worker list (Redis CLIENT LIST). */
export async function onlineWorkers(jobs: GenerationQueue): Promise<WorkerInfo[]> {
  const clients = await jobs.queue.getWorkers();
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

export async function transitionsByStatus(db: Db, accountId: string) {
  const rows = await db.transition.groupBy({ by: ['status'], where: { accountId }, _count: { _all: true } });
  return rows.map((r) => ({ status: r.status as TransitionStatus, count: r._count._all }));
}

/**
 * What `celery inspect` told about the seed: the caller's transitions by status, the global queue,
 * fal requests in flight against FAL_CONCURRENCY (an active job is a request in flight), workers.
 */
export async function queueStats(deps: { db: Db; jobs: GenerationQueue; config: { fal: { concurrency: number } } }, accountId: string) {
  const [byStatus, queue, workers] = await Promise.all([
    transitionsByStatus(deps.db, accountId),
    queueDepths(deps.jobs),
    onlineWorkers(deps.jobs),
  ]);
  return { byStatus, queue, falInFlight: queue.active, falConcurrency: deps.config.fal.concurrency, workers };
}
