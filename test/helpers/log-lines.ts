import { Writable } from 'node:stream';
import { pino } from 'pino';

/** A log line as pino writes it (JSON), with the fields tests read. */
export interface LogLine {
  level: number;
  msg?: string;
  err?: { type?: string; message?: string };
}

/** A JSON logger at `level` for a test's app, whose lines are kept, parsed, in `lines`. */
export function capturedLogs(level: pino.LevelWithSilent) {
  const lines: LogLine[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line) as LogLine);
      done();
    },
  });
  return { lines, logger: pino({ level }, sink) };
}
