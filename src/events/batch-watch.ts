import type { WatchBatch } from '../domain/ports.ts';
import type { PubSub } from './pubsub.ts';
import type { Topics } from './topics.ts';

/** The domain's WatchBatch on Redis pub/sub: every batchProgress event of the batch calls `onChange`. */
export const batchWatch =
  (pubsub: PubSub, names: Topics): WatchBatch =>
  async (accountId, batchId, onChange) => {
    const id = await pubsub.subscribe(names.batch(accountId, batchId), onChange);
    return () => pubsub.unsubscribe(id);
  };
