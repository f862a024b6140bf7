import type { ServerResponse } from 'node:http';
import type { Job, JobQueue } from './jobs.ts';
import { statusBody } from './status-body.ts';

/**
 * GET .../requests/<id>/status/stream: Server-Sent Events, one `data: <status JSON>` per change
 * (queue position moves included), closed after COMPLETED. The client's FalStream resolves with
 * the last event when the server closes the stream, so closing is what ends subscribe().
 */
export class StatusStreams {
  /** Open streams and how to stop each one listening. */
  private open = new Map<ServerResponse, () => void>();

  constructor(private readonly jobs: JobQueue) {}

  serve(res: ServerResponse, job: Job, withLogs: boolean): void {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'x-fal-request-id': job.id });
    let last = '';
    const stopListening = this.jobs.onChange((changed) => {
      // Another job's move only matters while this one waits (its queue position may drop).
      if (changed === job || job.status === 'IN_QUEUE') send();
    });
    const finish = () => {
      stopListening();
      this.open.delete(res);
    };
    const send = () => {
      const text = JSON.stringify(statusBody(this.jobs, job, withLogs));
      if (text === last) return;
      last = text;
      res.write(`data: ${text}\n\n`);
      if (job.status === 'COMPLETED') {
        finish();
        res.end();
      }
    };
    this.open.set(res, finish);
    res.on('close', finish);
    send();
  }

  /** Ends every open stream (reset forgets their jobs; close must not wait for them). */
  closeAll(): void {
    for (const [res, finish] of this.open) {
      finish();
      res.end();
    }
  }
}
