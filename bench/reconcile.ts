/**
 * One reconciler pass over a large history: `npx tsx bench/reconcile.ts [finished=1000000] [open=1000] [posters=1000]`.
 * Seeds `finished` ended transitions (in batches, with their ledger rows), `open` queued ones, and
 * a backlog of `posters` videos completed a while ago whose poster jobs still wait (as after a
 * burst), then times a pass (the first, which re-creates the open rows' jobs in Redis, and the
 * next, with nothing to do), counts the table rows PostgreSQL read for it (pg_stat_user_tables)
 * and the commands Redis ran for it (INFO commandstats).
 * Goal: under 1 s, reads proportional to the open rows, not to the history.
 */
import pg from 'pg';
import { dropQueueKeys } from '../test/helpers/pipeline.ts';
import { Reconciler } from '../src/queue/reconciler.ts';
import { createRedis } from '../src/redis.ts';
import { createSegue } from '../src/runtime.ts';
import { benchConfig, ms } from './lib.ts';

const finished = Number(process.argv[2] ?? 1_000_000);
const open = Number(process.argv[3] ?? 1_000);
const posters = Number(process.argv[4] ?? 1_000);
const prefix = `bench-reconcile-${process.pid}`;
const config = benchConfig({ QUEUE_PREFIX: prefix, RECONCILE_INTERVAL_MS: '3600000' });
const admin = new pg.Client({ connectionString: config.databaseUrl });
await admin.connect();

console.log(`seeding ${finished.toLocaleString()} finished and ${open.toLocaleString()} open transitions ...`);
const seedStarted = performance.now();
const [{ id: accountId }] = (await admin.query<{ id: string }>(`INSERT INTO "Account" ("id", "name") VALUES (gen_random_uuid(), 'bench') RETURNING "id"`)).rows as [{ id: string }];
const perBatch = 100;
await admin.query(
  `INSERT INTO "Batch" ("id", "accountId", "createdAt", "completedAt")
   SELECT gen_random_uuid(), $1, now() - interval '2 days', now() - interval '1 day' FROM generate_series(1, $2)`,
  [accountId, Math.ceil(finished / perBatch)],
);
await admin.query(
  `WITH batches AS (SELECT "id", row_number() OVER (ORDER BY "id") AS n FROM "Batch" WHERE "accountId" = $1),
   rows AS (
     INSERT INTO "Transition" ("id", "accountId", "frontImageUrl", "tailImageUrl", "prompt", "status", "run", "attempts",
       "batchId", "videoUrl", "videoKey", "posterUrl", "posterKey", "falRequestId", "createdAt", "updatedAt", "queuedAt", "completedAt")
     SELECT gen_random_uuid(), $1, 'https://images.example.com/f.png', 'https://images.example.com/t.png', 'history ' || g,
       (CASE WHEN g % 10 = 0 THEN 'FAILED' WHEN g % 25 = 0 THEN 'CANCELED' ELSE 'COMPLETED' END)::"TransitionStatus", 1, 1,
       b."id", 'https://media.example.com/v.mp4', 'transitions/v.mp4', 'https://media.example.com/p.jpg', 'transitions/p.jpg',
       'req-' || g, now() - interval '2 days', now() - interval '1 day', now() - interval '2 days', now() - interval '1 day'
     FROM generate_series(1, $2) g JOIN batches b ON b.n = (g - 1) / ${perBatch} + 1
     RETURNING "id", "batchId", "falRequestId"
   ), items AS (
     INSERT INTO "BatchItem" ("batchId", "transitionId", "position", "status")
     SELECT "batchId", "id", row_number() OVER (PARTITION BY "batchId" ORDER BY "id") - 1, 'COMPLETED' FROM rows
   )
   INSERT INTO "FalRequest" ("id", "requestId", "accountId", "transitionId", "run", "attempt", "model", "costUsd", "state", "outcome", "createdAt", "endedAt")
   SELECT gen_random_uuid(), "falRequestId", $1, "id", 1, 1, 'fal-ai/kling-video/v2.1/pro/image-to-video', 0.49, 'ENDED', 'OK',
     now() - interval '2 days', now() - interval '1 day'
   FROM rows`,
  [accountId, finished],
);
const [{ id: openBatch }] = (await admin.query<{ id: string }>(`INSERT INTO "Batch" ("id", "accountId") VALUES (gen_random_uuid(), $1) RETURNING "id"`, [accountId])).rows as [{ id: string }];
await admin.query(
  `WITH rows AS (
     INSERT INTO "Transition" ("id", "accountId", "frontImageUrl", "tailImageUrl", "prompt", "status", "run", "batchId", "updatedAt", "queuedAt")
     SELECT gen_random_uuid(), $1, 'https://images.example.com/f.png', 'https://images.example.com/t.png', 'open ' || g, 'QUEUED', 1, $2,
       now(), now() - (g || ' milliseconds')::interval
     FROM generate_series(1, $3) g RETURNING "id"
   )
   INSERT INTO "BatchItem" ("batchId", "transitionId", "position", "status")
   SELECT $2, "id", row_number() OVER (ORDER BY "id") - 1, 'QUEUED' FROM rows`,
  [accountId, openBatch, open],
);
// The poster backlog: completed a minute and more ago, each with its poster job waiting.
const backlog = (
  await admin.query<{ id: string }>(
    `INSERT INTO "Transition" ("id", "accountId", "frontImageUrl", "tailImageUrl", "prompt", "status", "run", "attempts",
       "videoUrl", "videoKey", "createdAt", "updatedAt", "queuedAt", "completedAt")
     SELECT gen_random_uuid(), $1, 'https://images.example.com/f.png', 'https://images.example.com/t.png', 'poster ' || g, 'COMPLETED', 1, 1,
       'https://media.example.com/v.mp4', 'transitions/v.mp4', now() - interval '1 hour', now() - interval '2 minutes',
       now() - interval '1 hour', now() - interval '2 minutes' - (g || ' milliseconds')::interval
     FROM generate_series(1, $2) g RETURNING "id"`,
    [accountId, posters],
  )
).rows;
{
  const segue = createSegue(config);
  for (let i = 0; i < backlog.length; i += 1_000) {
    await Promise.all(backlog.slice(i, i + 1_000).map((r) => segue.mediaJobs.add({ kind: 'poster', transitionId: r.id, run: 1 })));
  }
  await segue.close();
}
await admin.query('VACUUM ANALYZE');
console.log(`seeded in ${((performance.now() - seedStarted) / 1000).toFixed(1)} s`);

/** Rows PostgreSQL read from tables and indexes since the last reset, by table. */
async function rowsRead() {
  const { rows } = await admin.query<{ relname: string; seq: string; idx: string }>(
    `SELECT relname, coalesce(seq_tup_read, 0) AS seq, coalesce(idx_tup_fetch, 0) AS idx FROM pg_stat_user_tables`,
  );
  return rows
    .map((r) => ({ table: r.relname, read: Number(r.seq) + Number(r.idx), seq: Number(r.seq) }))
    .filter((r) => r.read > 0)
    .sort((a, b) => b.read - a.read);
}

const stats = createRedis(config.redis, 'client');
/** Commands Redis has run, all clients together (this bench is alone on it while a pass runs). */
async function redisCommands() {
  const info = await stats.info('commandstats');
  return [...info.matchAll(/calls=(\d+)/g)].reduce((sum, m) => sum + Number(m[1]), 0);
}

async function pass(label: string) {
  await admin.query('SELECT pg_stat_reset()');
  // A process of its own: its connections close after the pass, which flushes their statistics.
  const segue = createSegue(config);
  const reconciler = new Reconciler(segue);
  await segue.generationJobs.ready();
  const commandsBefore = await redisCommands();
  const started = performance.now();
  const report = await reconciler.run();
  const elapsed = performance.now() - started;
  // Less the INFO that reads the count.
  const commands = (await redisCommands()) - commandsBefore - 1;
  await segue.close();
  await new Promise((r) => setTimeout(r, 200));
  const read = await rowsRead();
  const total = read.reduce((sum, r) => sum + r.read, 0);
  console.log(`\n${label}: ${ms(elapsed)}; rows read ${total.toLocaleString()} (${(total / open).toFixed(1)} per open transition)`);
  console.log(`  ${read.map((r) => `${r.table} ${r.read.toLocaleString()}${r.seq ? ` (${r.seq.toLocaleString()} by scans)` : ''}`).join(', ')}`);
  console.log(`  Redis commands ${commands.toLocaleString()} (${posters.toLocaleString()} poster jobs waiting)`);
  console.log(`  report ${JSON.stringify(report)}`);
}

await pass('first pass (re-creates the open rows’ jobs)');
await pass('next pass (nothing to do)');

await dropQueueKeys(config.redis, prefix);
stats.disconnect();
await admin.end();
