import type { ServerResponse } from 'node:http';
import type { StreamFault } from './faults.ts';
import type { Job, JobQueue } from './jobs.ts';
import { statusBody } from './status-body.ts';
import type { FalCounters } from './types.ts';

/**
 * GET .../requests/<id>/status/stream: Server-Sent Events, one `data: <status JSON>` per change
 * (queue position moves included), a `: keep-alive` comment every `keepAliveMs` as fal sends one
 * every 15 s, closed after COMPLETED. The client's FalStream resolves with the last event when
 * the server closes the stream, so closing is what ends subscribe(). A fault can cut the stream,
 * leave it silent, close it before COMPLETED, or have it lag behind the webhook, as networks and
 * proxies do.
 */
export class StatusStreams {
  /** Open streams and how to stop each one listening. */
  private open = new Map<ServerResponse, () => void>();

  constructor(
    private readonly jobs: JobQueue,
    private readonly counters: FalCounters,
    private readonly keepAliveMs: () => number,
  ) {}

  serve(res: ServerResponse, job: Job, withLogs: boolean, fault?: StreamFault): void {
    this.counters.streamsOpened++;
    this.counters.streamsOpen++;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'x-fal-request-id': job.id });
    // The answer's head goes at once, as fal's does, before the first event (which may lag).
    res.flushHeaders();
    let last = '';
    const lagging = new Set<NodeJS.Timeout>();
    let answered = false;
    let sent = 0;
    let finished = false;
    const stopListening = this.jobs.onChange((changed) => {
      // Another job's move only matters while this one waits (its queue position may drop).
      if (changed === job || job.status === 'IN_QUEUE') send();
    });
    const keepAlive = fault && 'silent' in fault ? undefined : setInterval(() => res.write(': keep-alive\n\n'), this.keepAliveMs());
    keepAlive?.unref();
    const finish = () => {
      if (finished) return;
      finished = true;
      stopListening();
      clearInterval(keepAlive);
      for (const timer of lagging) clearTimeout(timer);
      this.open.delete(res);
      this.counters.streamsOpen--;
    };
    const send = () => {
      if (finished || (fault && 'silent' in fault)) return;
      const text = JSON.stringify(statusBody(this.jobs, job, withLogs));
      if (text === last) return;
      last = text;
      // A lagging stream answers with the status of the moment, and sends each change after it
      // late (in order: the same delay each time).
      const completed = job.status === 'COMPLETED';
      const first = !answered;
      answered = true;
      if (fault && 'lagMs' in fault && !first) {
        const timer = setTimeout(() => (lagging.delete(timer), write(text, completed)), fault.lagMs);
        lagging.add(timer);
      } else write(text, completed);
    };
    const write = (text: string, completed: boolean) => {
      if (finished) return;
      res.write(`data: ${text}\n\n`);
      sent++;
      if (completed) {
        finish();
        res.end();
      } else if (fault && 'cut' in fault && sent >= (fault.afterEvents ?? 1)) {
        finish();
        res.socket?.destroy();
      } else if (fault && 'closeEarly' in fault && sent >= (fault.afterEvents ?? 1)) {
        finish();
        res.end();
      }
    };
    this.open.set(res, finish);
    res.on('close', () => {
      if (!finished) this.counters.streamsCut++;
      finish();
    });
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
