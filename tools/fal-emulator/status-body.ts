import type { Job, JobQueue } from './jobs.ts';

/** fal's public queue host: response/status/cancel URLs point there, as on fal, whatever the emulator's address. */
const QUEUE_ORIGIN = 'https://queue.fal.run';

type LogEntry = { message: string; level: 'INFO' | 'ERROR'; source: 'USER'; timestamp: string };

/** response_url, status_url and cancel_url of a request: keyed by owner/alias, without the endpoint path. */
export function requestUrls(job: Job): { response_url: string; status_url: string; cancel_url: string } {
  const base = `${QUEUE_ORIGIN}/${job.appPath}/requests/${job.id}`;
  return { response_url: base, status_url: `${base}/status`, cancel_url: `${base}/cancel` };
}

/** A status body (PROTOCOL §3); `logs` is filled only when asked for with ?logs=1, else null. */
export function statusBody(jobs: JobQueue, job: Job, withLogs: boolean): Record<string, unknown> {
  const body: Record<string, unknown> = { status: job.status, request_id: job.id, ...requestUrls(job) };
  const position = jobs.positionOf(job);
  if (position !== undefined) body.queue_position = position;
  body.logs = withLogs ? logsOf(job) : null;
  if (job.status !== 'COMPLETED') return body;
  if (job.startedAt !== undefined && job.completedAt !== undefined) {
    body.metrics = { inference_time: (job.completedAt - job.startedAt) / 1000 };
  }
  const failure = failureOf(job);
  if (failure && jobs.statusErrors) Object.assign(body, { error: failure.text, error_type: failure.type });
  return body;
}

/** Why a COMPLETED job has no output; undefined when it succeeded. */
function failureOf(job: Job): { text: string; type: string } | undefined {
  // fal's wording for a cancelled request is not documented; this mirrors the result call's detail.
  if (job.outcome === 'canceled') return { text: 'Request was cancelled', type: 'request_cancelled' };
  return job.answer?.error;
}

/** A few runner log lines derived from the job's timestamps, so nothing is stored per job. */
function logsOf(job: Job): LogEntry[] {
  const logs: LogEntry[] = [];
  const entry = (at: number, message: string, level: LogEntry['level'] = 'INFO') =>
    logs.push({ message, level, source: 'USER', timestamp: new Date(at).toISOString() });
  if (job.startedAt !== undefined) entry(job.startedAt, 'Generating video');
  if (job.completedAt !== undefined) {
    const failure = failureOf(job);
    if (failure) entry(job.completedAt, failure.text, 'ERROR');
    else entry(job.completedAt, 'Video generated');
  }
  return logs;
}
