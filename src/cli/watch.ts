import { ApiError, type ApiClient } from './api-client.ts';
import { CliBatch, CliBatchProgress } from './operations.ts';
import { progress, type Output } from './output.ts';

/**
 * Follows a batch to its end over the batchProgress subscription (a bar on a terminal, NDJSON
 * events with --json), then prints a summary with every video URL. Returns the process exit code:
 * 0 when everything completed, 2 when some transitions failed or were canceled.
 */
export async function watchBatch(client: ApiClient, out: Output, batchId: string): Promise<number> {
  const initial = await client.request(CliBatch, { id: batchId });
  const bar = progress(out, initial.batch.total);
  await client.subscribe(CliBatchProgress, { id: batchId }, ({ batchProgress: b }) => {
    if (out.json) process.stdout.write(`${JSON.stringify({ event: 'progress', batch: b })}\n`);
    else bar.update(b.completed + b.failed + b.canceled, b.total, { completed: b.completed, failed: b.failed, canceled: b.canceled, running: b.running, queued: b.queued });
  });
  bar.stop();
  const { batch } = await client.request(CliBatch, { id: batchId }).catch((error: unknown) => {
    // The stream also completes when the batch is deleted (its transitions deleted meanwhile).
    if (error instanceof ApiError && error.code === 'NOT_FOUND') throw new ApiError(`Batch ${batchId} was deleted while it was watched.`, 'NOT_FOUND');
    throw error;
  });
  const transitions = batch.transitions.edges.map((e) => e.node);
  out.result({ event: 'summary', batch: { ...batch, transitions } }, () =>
    [
      `Batch ${batch.id} ${batch.status}: ${batch.completed} completed, ${batch.failed} failed, ${batch.canceled} canceled of ${batch.total}.`,
      ...transitions.map((t) =>
        t.videoUrl ? `  ${t.id}  ${t.status}  ${t.videoUrl}` : `  ${t.id}  ${t.status}${t.error ? `  ${t.error.code}: ${t.error.message}` : ''}`,
      ),
    ].join('\n'),
  );
  return batch.status === 'COMPLETED' ? 0 : 2;
}
