import { describe, expect, it } from 'vitest';
import { idOf } from '../src/graphql/ids.ts';
import { gql } from './helpers/app.ts';
import { transitionInputs } from './helpers/fixtures.ts';
import { CreateTransitions } from './helpers/operations.ts';
import { startPipeline } from './helpers/pipeline.ts';
import { until } from './helpers/wait.ts';

// A file of its own: its database is its workers' whole work list (see helpers/per-file-db.ts).
describe('worker processes for one kind of work', () => {
  it('generation-only and media-only workers split the work: posters wait for a media worker', { timeout: 60_000 }, async () => {
    const split = await startPipeline({ emulator: { latencyMs: 50 }, inlineWorkers: 0 });
    try {
      await split.startInlineWorker({ MEDIA_CONCURRENCY: '0' });
      const account = await split.account();
      const res = await gql(split.app.graphqlUrl, account.apiKey, CreateTransitions, {
        input: { transitions: transitionInputs(3), generate: true },
      });
      const rows = await split.settled(idOf('Batch', res.data!.createTransitions.batch!.id));
      expect(rows.map((r) => r.status)).toEqual(['COMPLETED', 'COMPLETED', 'COMPLETED']);
      // Videos are copied by the generation worker; posters are media work, left on the media queue.
      await new Promise((r) => setTimeout(r, 500));
      const ids = rows.map((r) => r.id);
      expect(await split.app.segue.db.transition.count({ where: { id: { in: ids }, posterUrl: { not: null } } })).toBe(0);
      await split.startInlineWorker({ WORKER_CONCURRENCY: '0' });
      await until(
        async () => (await split.app.segue.db.transition.count({ where: { id: { in: ids }, posterUrl: { not: null } } })) === 3,
        { what: 'the media-only worker to make the posters' },
      );
      expect(split.emulator.counters().submitted).toBe(3);
    } finally {
      await split.close();
    }
  });
});
