import { queueStats } from '../../domain/queue-stats.ts';
import { builder } from '../builder.ts';
import { TransitionStatusEnum } from './transition.ts';

const StatusCount = builder.objectRef<{ status: string; count: number }>('StatusCount').implement({
  fields: (t) => ({
    status: t.field({ type: TransitionStatusEnum, resolve: (s) => s.status as never }),
    count: t.exposeInt('count'),
  }),
});

const QueueDepths = builder.objectRef<{ waiting: number; active: number; delayed: number; failed: number }>('QueueDepths').implement({
  description: 'Jobs of every account in the generation queue.',
  fields: (t) => ({
    waiting: t.exposeInt('waiting', { description: 'Waiting for a fal slot.' }),
    active: t.exposeInt('active', { description: 'Holding a fal request (submitting or tracking).' }),
    delayed: t.exposeInt('delayed', { description: 'Backing off before a retry.' }),
    failed: t.exposeInt('failed', { description: 'Failed jobs kept for the dashboard.' }),
  }),
});

type Stats = Awaited<ReturnType<typeof queueStats>>;

const QueueStats = builder.objectRef<Stats>('QueueStats').implement({
  description:
    'Your transitions, and the figures every account shares: queue depths, fal requests in flight and the cap. ' +
    'Which hosts and processes run the workers is for operators (`npm run cli -- workers`).',
  fields: (t) => ({
    byStatus: t.field({ type: [StatusCount], description: 'Your transitions by status.', resolve: (s) => s.byStatus }),
    queue: t.field({ type: QueueDepths, resolve: (s) => s.queue }),
    falInFlight: t.exposeInt('falInFlight', { description: 'fal requests in flight, all workers and accounts.' }),
    falConcurrency: t.exposeInt('falConcurrency', { description: 'FAL_CONCURRENCY: the most there can be.' }),
    workersOnline: t.exposeInt('workersOnline', { description: 'Generation worker processes online now.' }),
  }),
});

builder.queryField('queueStats', (t) =>
  t.field({
    type: QueueStats,
    resolve: (_root, _args, ctx) => queueStats(ctx.segue, ctx.ownerAccountId()),
  }),
);
