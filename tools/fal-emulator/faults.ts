import type { FalFault } from './types.ts';

type SubmitFault = Extract<FalFault, { on: 'submit' }>;
type ReplyFault = Extract<FalFault, { on: 'status' | 'result' | 'cancel' | 'file' }>;
type JobFault = Extract<FalFault, { on: 'job' }>;
type Armed = { fault: FalFault; left: number };

/**
 * Injected faults, used up in the order they were injected. Each fault fires `times` times
 * (default 1, Infinity allowed) and is then forgotten.
 */
export class FaultBook {
  private armed: Armed[] = [];

  inject(fault: FalFault): void {
    const times = fault.times ?? 1;
    if (!(times > 0)) throw new Error(`fault.times must be positive (got ${String(fault.times)})`);
    // Faults also arrive as untyped JSON over the control API: refuse what could never fire.
    const { on } = fault as { on: unknown };
    const fires =
      on === 'job'
        ? 'error' in fault && (fault.error === 'server' || fault.error === 'validation')
        : (on === 'submit' || on === 'status' || on === 'result' || on === 'cancel' || on === 'file') &&
          (('status' in fault && Number.isInteger(fault.status) && fault.status >= 400) || ('dropResponse' in fault && on === 'submit'));
    if (!fires) throw new Error(`not a fault the emulator knows: ${JSON.stringify(fault)}`);
    this.armed.push({ fault, left: times });
  }

  clear(): void {
    this.armed = [];
  }

  /** The fault this submit meets (an error answer, or a dropped response), if one is armed. */
  takeSubmit(): SubmitFault | undefined {
    return this.take((fault): fault is SubmitFault => fault.on === 'submit');
  }

  /** The error answering this status/result/cancel call or file download instead, if one is armed. */
  takeReply(on: ReplyFault['on']): ReplyFault | undefined {
    return this.take((fault): fault is ReplyFault => fault.on === on);
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
    const index = this.armed.findIndex((armed) => matches(armed.fault));
    const armed = this.armed[index];
    if (!armed) return undefined;
    if (--armed.left <= 0) this.armed.splice(index, 1);
    return armed.fault as F;
  }
}

function promptOf(input: unknown): string {
  const prompt = typeof input === 'object' && input !== null ? (input as { prompt?: unknown }).prompt : undefined;
  return typeof prompt === 'string' ? prompt : '';
}
