import { SingleBar, Presets } from 'cli-progress';

/** How a command speaks: JSON for scripts (--json), text for people, bars only on a terminal. */
export interface Output {
  json: boolean;
  tty: boolean;
  /** A result: one JSON line with --json, else the text. */
  result(value: unknown, text: () => string): void;
  line(text: string): void;
}

export function output(options: { json?: boolean }): Output {
  const json = options.json === true;
  return {
    json,
    tty: !json && process.stdout.isTTY === true,
    result(value, text) {
      process.stdout.write(json ? `${JSON.stringify(value)}\n` : `${text()}\n`);
    },
    line(text) {
      if (!json) process.stdout.write(`${text}\n`);
    },
  };
}

/** A progress bar of ended / total on a terminal; plain progress lines otherwise (and none with --json). */
export function progress(out: Output, total: number) {
  if (out.tty) {
    const bar = new SingleBar(
      { format: ' {bar} {value}/{total} ended | {completed} completed, {failed} failed, {running} running, {queued} queued', hideCursor: true },
      Presets.shades_classic,
    );
    bar.start(total, 0, { completed: 0, failed: 0, running: 0, queued: total });
    return {
      // The total of each event: transitions deleted from the batch meanwhile leave it smaller.
      update: (ended: number, now: number, payload: Record<string, number>) => {
        if (now !== bar.getTotal()) bar.setTotal(now);
        bar.update(ended, payload);
      },
      stop: () => bar.stop(),
    };
  }
  let last = '';
  return {
    update: (ended: number, now: number, payload: Record<string, number>) => {
      const text = `${ended}/${now} ended: ${payload.completed} completed, ${payload.failed} failed, ${payload.canceled ?? 0} canceled, ${payload.running} running, ${payload.queued} queued`;
      if (text !== last) out.line(text);
      last = text;
    },
    stop: () => undefined,
  };
}
