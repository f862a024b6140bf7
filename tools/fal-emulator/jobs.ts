import { randomUUID } from 'node:crypto';
import { canonicalJson } from './canonical-json.ts';
import type { ModelAnswer } from './model.ts';
import type { EmulatorSettings, FalCounters, FalJobStatus, FalOutcome, FalRequestRecord } from './types.ts';
import { WaitingLine } from './waiting-line.ts';

export interface Job {
  readonly id: string;
  readonly endpointId: string;
  /** `[namespace/]owner/alias`: status, result and cancel URLs are keyed by this, not the full endpoint id. */
  readonly appPath: string;
  readonly input: unknown;
  readonly webhookUrl: string | undefined;
  readonly injectedError: 'server' | 'validation' | undefined;
  readonly submittedAt: number;
  /** Place in the waiting line, for queue positions and cancels. */
  ticket: number;
  status: FalJobStatus;
  outcome?: FalOutcome;
  /** Set when the model has run (outcome ok or error). */
  answer?: ModelAnswer;
  startedAt?: number;
  completedAt?: number;
  timer?: NodeJS.Timeout;
}

export interface NewJob {
  endpointId: string;
  appPath: string;
  input: unknown;
  webhookUrl: string | undefined;
  injectedError: 'server' | 'validation' | undefined;
}

export interface Lifecycle {
  /** Runs the model when a job's latency is over. */
  run(job: Job): ModelAnswer;
  /** Called once per job when it reaches COMPLETED, whatever the outcome. */
  completed(job: Job): void;
}

/**
 * The queue's state machine: IN_QUEUE → IN_PROGRESS → COMPLETED, starting jobs in FIFO order
 * whenever fewer than `capacity` run (fal counts only IN_PROGRESS against an account's limit).
 * One timer per running job and none per waiting job, so thousands of jobs cost nothing while idle.
 */
export class JobQueue {
  private jobs = new Map<string, Job>();
  private line = new WaitingLine<Job>();
  private running = new Set<Job>();
  private seenInputs = new Set<string>();
  private listeners = new Set<(job: Job) => void>();

  /** Whether a failed job's COMPLETED status says why (FalEmulatorOptions.statusErrors). */
  get statusErrors(): boolean {
    return this.settings.statusErrors;
  }

  constructor(
    private readonly settings: EmulatorSettings,
    private readonly counters: FalCounters,
    private readonly lifecycle: Lifecycle,
  ) {}

  /** Accepts a job; returns it with its queue position at acceptance (before it may start). */
  submit(spec: NewJob): { job: Job; queuePosition: number } {
    const job: Job = {
      ...spec,
      id: randomUUID(),
      status: 'IN_QUEUE',
      submittedAt: Date.now(),
      ticket: -1,
    };
    job.ticket = this.line.push(job);
    this.jobs.set(job.id, job);
    this.counters.submitted++;
    const key = canonicalJson(spec.input);
    if (this.seenInputs.has(key)) this.counters.duplicateInputs++;
    else this.seenInputs.add(key);
    this.trackPeaks();
    const queuePosition = this.line.ahead(job.ticket);
    this.pump();
    return { job, queuePosition };
  }

  get(id: string): Job | undefined {
    return this.jobs.get(id);
  }

  /** Jobs waiting ahead of this one; undefined once it has left the queue. */
  positionOf(job: Job): number | undefined {
    return job.status === 'IN_QUEUE' ? this.line.ahead(job.ticket) : undefined;
  }

  /**
   * fal's cancel: a queued job is removed and never runs; a running one is only asked to stop, and
   * Kling ignores that (it completes and is billed) unless cancelRunning is 'stop'.
   */
  cancel(job: Job): 'requested' | 'already_completed' {
    if (job.status === 'COMPLETED') return 'already_completed';
    if (job.status === 'IN_QUEUE') {
      this.line.remove(job.ticket);
      this.complete(job, 'canceled');
    } else if (this.settings.cancelRunning === 'stop') {
      clearTimeout(job.timer);
      this.running.delete(job);
      this.complete(job, 'canceled');
      this.pump();
    }
    return 'requested';
  }

  /** Starts waiting jobs while capacity allows; call after anything that may free or add capacity. */
  pump(): void {
    while (this.running.size < this.settings.capacity) {
      const job = this.line.shift();
      if (!job) return;
      this.start(job);
    }
  }

  /** Called on every status change of any job (and queue moves): the SSE status stream listens. */
  onChange(listener: (job: Job) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  gauges(): Pick<FalCounters, 'inQueue' | 'inProgress' | 'inFlight'> {
    const inQueue = this.line.size;
    const inProgress = this.running.size;
    return { inQueue, inProgress, inFlight: inQueue + inProgress };
  }

  records(): FalRequestRecord[] {
    return Array.from(this.jobs.values(), (job) => ({
      requestId: job.id,
      endpointId: job.endpointId,
      input: job.input,
      status: job.status,
      submittedAt: job.submittedAt,
      ...(job.outcome && { outcome: job.outcome }),
      ...(job.webhookUrl && { webhookUrl: job.webhookUrl }),
      ...(job.startedAt !== undefined && { startedAt: job.startedAt }),
      ...(job.completedAt !== undefined && { completedAt: job.completedAt }),
    }));
  }

  /** Forgets every job; running ones are dropped without completing. */
  reset(): void {
    this.stop();
    this.jobs = new Map();
    this.line = new WaitingLine();
    this.running = new Set();
    this.seenInputs = new Set();
  }

  /** Clears the timers of running jobs so the process can exit. */
  stop(): void {
    for (const job of this.running) clearTimeout(job.timer);
  }

  private start(job: Job): void {
    job.status = 'IN_PROGRESS';
    job.startedAt = Date.now();
    this.running.add(job);
    this.trackPeaks();
    job.timer = setTimeout(() => this.finish(job), this.latency());
    this.notify(job);
  }

  private finish(job: Job): void {
    this.running.delete(job);
    job.answer = this.lifecycle.run(job);
    this.complete(job, job.answer.httpStatus < 300 ? 'ok' : 'error');
    this.pump();
  }

  private complete(job: Job, outcome: FalOutcome): void {
    job.status = 'COMPLETED';
    job.outcome = outcome;
    job.completedAt = Date.now();
    this.counters.completed++;
    if (outcome === 'ok') this.counters.succeeded++;
    else if (outcome === 'error') this.counters.failed++;
    else this.counters.canceled++;
    this.notify(job);
    this.lifecycle.completed(job);
  }

  private latency(): number {
    const { latencyMs, latencyJitterMs } = this.settings;
    return Math.max(0, latencyMs + (Math.random() * 2 - 1) * latencyJitterMs);
  }

  private trackPeaks(): void {
    const { inProgress, inFlight } = this.gauges();
    this.counters.maxInFlight = Math.max(this.counters.maxInFlight, inFlight);
    this.counters.maxInProgress = Math.max(this.counters.maxInProgress, inProgress);
  }

  private notify(job: Job): void {
    for (const listener of this.listeners) listener(job);
  }
}
