import type { Config } from './config.ts';
import { createDatabase, type Db, type Sql } from './db.ts';
import { CompletionEstimates } from './domain/eta.ts';
import { StoredImages } from './domain/stored-images.ts';
import { batchWatch } from './events/batch-watch.ts';
import type { WatchBatch } from './domain/ports.ts';
import { closePubSub, createPubSub, type PubSub } from './events/pubsub.ts';
import { EventPublisher } from './events/publisher.ts';
import { topics, type Topics } from './events/topics.ts';
import { createLogger, type Logger } from './logger.ts';
import { createMetrics, type Metrics } from './metrics.ts';
import { createProvider } from './providers/index.ts';
import type { VideoProvider } from './providers/provider.ts';
import { GenerationQueue } from './queue/generation-queue.ts';
import { CopyQueue } from './queue/copy-queue.ts';
import { MediaQueue } from './queue/media-queue.ts';
import { createMediaService, type MediaService } from './media/service.ts';
import { closeRedis, createRedis, type RedisClient } from './redis.ts';

/**
 * The process's shared parts, built once by an entrypoint and handed to the API, the worker and
 * the CLI. Service functions take it as their first argument. Parts that talk to Redis or fal are
 * made on first use, so a CLI command that only needs PostgreSQL opens nothing else.
 */
export interface Segue {
  readonly config: Config;
  readonly db: Db;
  /** Plain SQL on the same pool, for the state machine's hot path. */
  readonly sql: Sql;
  /** Plain SQL on a connection of its own, for a serial caller that must not wait behind the pool (see Database.lane). */
  lane(name: string): Sql;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly topics: Topics;
  readonly generationJobs: GenerationQueue;
  readonly pubsub: PubSub;
  readonly events: EventPublisher;
  /** Follows a batch's progress events (generateNow waits with it). */
  readonly watchBatch: WatchBatch;
  readonly provider: VideoProvider;
  readonly media: MediaService;
  /** When open transitions and batches should be done (estimated at most once a second). */
  readonly completionEstimates: CompletionEstimates;
  /** Uploaded images as stored (they never change once stored), kept and read together. */
  readonly storedImages: StoredImages;
  readonly mediaJobs: MediaQueue;
  /** Copies of finished videos into storage. */
  readonly copyJobs: CopyQueue;
  close(): Promise<void>;
}

export function createSegue(config: Config, options: { logger?: Logger; provider?: VideoProvider } = {}): Segue {
  const logger = options.logger ?? createLogger(config);
  const database = createDatabase(config.databaseUrl, {
    max: config.databasePoolSize,
    connectTimeoutMs: config.database.connectTimeoutMs,
    statementTimeoutMs: config.database.statementTimeoutMs,
  });
  const db = database.prisma;
  const metrics = createMetrics({ pool: database.poolStats });
  const names = topics(config.queuePrefix);

  let producer: RedisClient | undefined;
  let generationJobs: GenerationQueue | undefined;
  let pubsub: PubSub | undefined;
  let events: EventPublisher | undefined;
  let provider: VideoProvider | undefined = options.provider;
  let mediaJobs: MediaQueue | undefined;
  let copyJobs: CopyQueue | undefined;
  let completionEstimates: CompletionEstimates | undefined;
  let storedImages: StoredImages | undefined;
  const media = createMediaService(config, logger);

  const segue: Segue = {
    config,
    db,
    sql: database.sql,
    lane: (name) => database.lane(name),
    logger,
    metrics,
    topics: names,
    get generationJobs() {
      producer ??= createRedis(config.redis, 'producer');
      return (generationJobs ??= new GenerationQueue(config, producer));
    },
    get pubsub() {
      return (pubsub ??= createPubSub(config.redis));
    },
    get events() {
      return (events ??= new EventPublisher({ db, sql: database.sql, pubsub: segue.pubsub, topics: names, logger }));
    },
    watchBatch: (accountId, batchId, onChange) => batchWatch(segue.pubsub, names)(accountId, batchId, onChange),
    get provider() {
      return (provider ??= createProvider(config, media, logger));
    },
    media,
    get completionEstimates() {
      return (completionEstimates ??= new CompletionEstimates({ sql: database.sql, slots: config.fal.concurrency }));
    },
    get storedImages() {
      return (storedImages ??= new StoredImages({ sql: database.sql }));
    },
    get mediaJobs() {
      producer ??= createRedis(config.redis, 'producer');
      return (mediaJobs ??= new MediaQueue(config, producer));
    },
    get copyJobs() {
      producer ??= createRedis(config.redis, 'producer');
      return (copyJobs ??= new CopyQueue(config, producer));
    },
    async close() {
      await events?.close();
      await generationJobs?.close();
      await mediaJobs?.close();
      await copyJobs?.close();
      await closeRedis(producer);
      if (pubsub) await closePubSub(pubsub);
      await provider?.close?.();
      media.close();
      await database.close();
    },
  };
  return segue;
}
