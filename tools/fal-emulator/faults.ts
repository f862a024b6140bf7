import type { FalFault } from './types.ts';

type SubmitFault = Extract<FalFault, { on: 'submit' }>;
type ReplyFault = Extract<FalFault, { on: 'status' | 'result' | 'cancel' | 'file' }>;
type JobFault = Extract<FalFault, { on: 'job' }>;
type UploadFault = Extract<FalFault, { on: 'upload' }>;
type WebhookFault = Extract<FalFault, { on: 'webhook' }>;
export type StreamFault = Extract<FalFault, { on: 'stream' }>;
type Armed = { fault: FalFault; left: number };

const REPLY_CALLS = new Set(['status', 'result', 'cancel']);

/** Whether a fault (which may arrive as untyped JSON over the control API) could ever fire. */
function canFire(fault: FalFault): boolean {
  const f = fault as Record<string, unknown>;
  const status = Number.isInteger(f.status) && (f.status as number) >= 400;
  switch (f.on) {
    case 'job':
      return f.error === 'server' || f.error === 'validation';
    case 'submit':
      return status || f.dropResponse === true || f.cutBody === true || (typeof f.delayMs === 'number' && f.delayMs >= 0);
    case 'file':
      return status;
    case 'upload':
      return status || f.hang === true;
    case 'webhook':
      return typeof f.delayMs === 'number' && f.delayMs >= 0;
    case 'stream':
      return f.cut === true || f.silent === true || f.closeEarly === true || (typeof f.lagMs === 'number' && f.lagMs >= 0);
    default:
      return REPLY_CALLS.has(String(f.on)) && (status || f.hang === true || f.stallBody === true || f.resetReused === true || (f.on === 'result' && f.malformed === true));
  }
}

/**
 * Injected faults, used up in the order they were injected. Each fault fires `times` times
 * (default 1, or Infinity with a `rate`; Infinity allowed) and is then forgotten. A fault with a
 * `rate` fires on a matching call only with that probability.
 */
export class FaultBook {
  private armed: Armed[] = [];

  constructor(private readonly random: () => number = Math.random) {}

  inject(fault: FalFault): void {
    const rate = fault.rate;
    if (rate !== undefined && !(rate > 0 && rate <= 1)) throw new Error(`fault.rate must be in (0, 1] (got ${String(rate)})`);
    const times = fault.times ?? (rate !== undefined ? Infinity : 1);
    if (!(times > 0)) throw new Error(`fault.times must be positive (got ${String(fault.times)})`);
    if (!canFire(fault)) throw new Error(`not a fault the emulator knows: ${JSON.stringify(fault)}`);
    this.armed.push({ fault, left: times });
  }

  clear(): void {
    this.armed = [];
  }

  /** The fault this submit meets (an error answer, a dropped or a delayed response), if one is armed. */
  takeSubmit(): SubmitFault | undefined {
    return this.take((fault): fault is SubmitFault => fault.on === 'submit');
  }

  /**
   * The error (or silence) answering this status/result/cancel call or file download instead, if
   * one is armed. A `resetReused` fault waits for a call on a reused connection (`reused`).
   */
  takeReply(on: ReplyFault['on'], reused = false): ReplyFault | undefined {
    return this.take((fault): fault is ReplyFault => fault.on === on && (reused || !('resetReused' in fault)));
  }

  /** What this status stream meets (cut, silence, an early close), if a fault is armed. */
  takeStream(): StreamFault | undefined {
    return this.take((fault): fault is StreamFault => fault.on === 'stream');
  }

  /** What the PUT of an upload's bytes meets (an error answer, early or not, or silence), if a fault is armed. */
  takeUpload(): UploadFault | undefined {
    return this.take((fault): fault is UploadFault => fault.on === 'upload');
  }

  /** How late this finished job's webhook goes out, if a webhook fault is armed. */
  takeWebhook(): WebhookFault | undefined {
    return this.take((fault): fault is WebhookFault => fault.on === 'webhook');
  }

  /** The error an accepted job must end in, if a job fault matches its prompt. */
  takeJob(input: unknown): JobFault['error'] | undefined {
    const prompt = promptOf(input);
    const fault = this.take(
      (f): f is JobFault => f.on === 'job' && (f.promptIncludes === undefined || prompt.includes(f.promptIncludes)),
    );
    return fault?.error;
  }

  private take<F extends FalFault>(matches: (fault: FalFault) => fault is F): F | undefined {
    for (const [index, armed] of this.armed.entries()) {
      if (!matches(armed.fault)) continue;
      if (armed.fault.rate !== undefined && this.random() >= armed.fault.rate) continue;
      if (--armed.left <= 0) this.armed.splice(index, 1);
      return armed.fault as F;
    }
    return undefined;
  }
}

function promptOf(input: unknown): string {
  const prompt = typeof input === 'object' && input !== null ? (input as { prompt?: unknown }).prompt : undefined;
  return typeof prompt === 'string' ? prompt : '';
}
