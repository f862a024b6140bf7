/**
 * Counts the round trips this process makes: SQL statements sent to PostgreSQL (every query
 * through node-postgres: Prisma's driver adapter and Segue's own SQL both go there, BEGIN and
 * COMMIT included) and commands sent to Redis (every command through ioredis, pipelined ones
 * each counted, by name). Writes the counts to `$BENCH_COUNTS/<pid>.json` at exit and on
 * SIGUSR2. Loaded with `--import` into worker processes by bench/pipeline.ts, and imported by
 * benches themselves.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

export interface Counts {
  statements: number;
  /** Statements by their first words (the table and what is done to it, enough to tell them apart). */
  sql: Record<string, number>;
  redis: Record<string, number>;
}

const labelOf = (args: unknown[]) => {
  const first = args[0] as string | { text?: string } | undefined;
  const text = typeof first === 'string' ? first : (first?.text ?? '?');
  return text.replace(/\s+/g, ' ').trim().slice(0, 70);
};

const dir = process.env.BENCH_COUNTS;
if (dir) {
  const require = createRequire(import.meta.url);
  const counts: Counts = { statements: 0, sql: {}, redis: {} };
  const pg = require('pg') as { Client: { prototype: { query: (...args: unknown[]) => unknown } } };
  const query = pg.Client.prototype.query;
  pg.Client.prototype.query = function (this: unknown, ...args: unknown[]) {
    counts.statements += 1;
    const label = labelOf(args);
    counts.sql[label] = (counts.sql[label] ?? 0) + 1;
    return query.apply(this, args);
  };
  const { Redis } = require('ioredis') as { Redis: { prototype: { sendCommand: (command: { name: string }, ...rest: unknown[]) => unknown } } };
  const send = Redis.prototype.sendCommand;
  Redis.prototype.sendCommand = function (this: unknown, command: { name: string; args?: unknown[] }, ...rest: unknown[]) {
    // Scripts (BullMQ's, the fair share's) by their first key's last part, e.g. evalsha(:wait).
    const name =
      command.name === 'evalsha' && process.env.SQL_DETAIL
        ? `evalsha(${String(command.args?.[2] ?? '').split(':').slice(-1)[0]}/${String(command.args?.[1] ?? '')})`
        : command.name;
    counts.redis[name] = (counts.redis[name] ?? 0) + 1;
    return send.call(this, command, ...rest);
  };
  mkdirSync(dir, { recursive: true });
  const write = () => {
    try {
      writeFileSync(`${dir}/${process.pid}.json`, JSON.stringify(counts));
    } catch {
      /* the bench has already read and removed its counts */
    }
  };
  process.on('exit', write);
  // SIGUSR2: write the counts so far (a bench reads them as its baseline before a run).
  process.on('SIGUSR2', write);
  (globalThis as { benchCounts?: () => Counts }).benchCounts = () => structuredClone(counts);
}
