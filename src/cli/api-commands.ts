import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { loadCliConfig } from '../config.ts';
import { ApiClient, ApiError } from './api-client.ts';
import type { WithSegue } from './index.ts';
import { CliCancelTransition, CliCreateTransitions, CliQueueStats, CliRetryTransition } from './operations.ts';
import { printOperatorStats } from './operator.ts';
import { output, type Output } from './output.ts';
import { watchBatch } from './watch.ts';

interface ApiOptions {
  url?: string;
  apiKey?: string;
  json?: boolean;
}

/** Runs a command against the API; API errors print "CODE: message" and exit 1. */
async function withApi(options: ApiOptions, run: (client: ApiClient, out: Output) => Promise<number | void>) {
  const config = loadCliConfig();
  const apiKey = options.apiKey ?? config.apiKey;
  if (!apiKey) throw new Error('No API key: pass --api-key or set SEGUE_API_KEY.');
  const client = new ApiClient(options.url ?? config.apiUrl, apiKey);
  const out = output(options);
  try {
    const code = await run(client, out);
    if (typeof code === 'number' && code !== 0) process.exitCode = code;
  } catch (error) {
    if (error instanceof ApiError) {
      if (out.json) process.stdout.write(`${JSON.stringify({ error: { code: error.code, message: error.message, errors: error.errors } })}\n`);
      else process.stderr.write(`${error.code ?? 'ERROR'}: ${error.message}\n`);
      process.exitCode = 1;
      return;
    }
    throw error;
  } finally {
    await client.close();
  }
}

const apiOptions = (command: Command) =>
  command
    .option('--url <url>', 'the Segue API (default SEGUE_API_URL or http://localhost:4000)')
    .option('--api-key <key>', 'the API key (default SEGUE_API_KEY)')
    .option('--json', 'machine-readable JSON output');

/** Reads items.json: an array of TransitionInput, or { transitions: [...] }. */
async function readItems(file: string) {
  const parsed = JSON.parse(await readFile(file, 'utf8')) as unknown;
  const items = Array.isArray(parsed) ? parsed : (parsed as { transitions?: unknown }).transitions;
  if (!Array.isArray(items)) throw new Error(`${file}: expected a JSON array of transitions or { "transitions": [...] }.`);
  return items;
}

export function registerApiCommands(program: Command, withSegue: WithSegue) {
  const transitions = program.command('transitions').description('create, retry and cancel transitions (through the API)');

  apiOptions(
    transitions
      .command('create')
      .description('create transitions from a JSON file (1 to 100 per call)')
      .requiredOption('--file <items.json>', 'JSON array of TransitionInput objects')
      .option('--generate', 'start generating them at once, as one batch')
      .option('--watch', 'with --generate: follow the batch until it ends')
      .option('--idempotency-key <key>', 'repeat-safe: the same key returns the first result'),
  ).action((options: ApiOptions & { file: string; generate?: boolean; watch?: boolean; idempotencyKey?: string }) =>
    withApi(options, async (client, out) => {
      const items = await readItems(options.file);
      const { createTransitions } = await client.request(CliCreateTransitions, {
        input: { transitions: items, generate: options.generate === true, idempotencyKey: options.idempotencyKey ?? null },
      });
      out.result({ event: 'created', ...createTransitions }, () =>
        [
          `Created ${createTransitions.transitions.length} transition(s)` +
            (createTransitions.batch ? ` in batch ${createTransitions.batch.id} (estimated $${createTransitions.batch.estimatedCost ?? '?'})` : ''),
          ...createTransitions.transitions.map((t) => `  ${t.id}  ${t.status}  ${t.durationSeconds}s  ${t.prompt.slice(0, 60)}`),
        ].join('\n'),
      );
      if (options.watch && createTransitions.batch) return watchBatch(client, out, createTransitions.batch.id);
    }),
  );

  apiOptions(transitions.command('retry <id>').description('generate a FAILED or CANCELED transition again')).action(
    (id: string, options: ApiOptions) =>
      withApi(options, async (client, out) => {
        const { retryTransition: t } = await client.request(CliRetryTransition, { id });
        out.result(t, () => `${t.id}  ${t.status}`);
      }),
  );
  apiOptions(transitions.command('cancel <id>').description('cancel a queued or running transition (at fal too)')).action(
    (id: string, options: ApiOptions) =>
      withApi(options, async (client, out) => {
        const { cancelTransition: t } = await client.request(CliCancelTransition, { id });
        out.result(t, () => `${t.id}  ${t.status}`);
      }),
  );

  const batches = program.command('batches').description('follow batches');
  apiOptions(batches.command('watch <id>').description('a live progress bar until the batch ends, then a summary with the video URLs')).action(
    (id: string, options: ApiOptions) => withApi(options, (client, out) => watchBatch(client, out, id)),
  );

  const queue = program.command('queue').description('the generation queue');
  apiOptions(
    queue
      .command('stats')
      .description('your transitions by status, queue depths, fal requests in flight (--all: every account, for operators)')
      .option('--all', 'every account and the workers, read straight from PostgreSQL and Redis (no API key; operators only)'),
  ).action((options: ApiOptions & { all?: boolean }) => {
    if (options.all) return withSegue((segue) => printOperatorStats(segue, output(options)));
    return withApi(options, async (client, out) => {
      const { queueStats: s } = await client.request(CliQueueStats, {});
      out.result(s, () =>
        [
          `fal requests in flight: ${s.falInFlight} of ${s.falConcurrency}`,
          `queue: ${s.queue.waiting} waiting, ${s.queue.active} active, ${s.queue.delayed} delayed, ${s.queue.failed} failed`,
          `your transitions: ${s.byStatus.map((b) => `${b.count} ${b.status}`).join(', ') || 'none'}`,
          `workers online: ${s.workersOnline}`,
        ].join('\n'),
      );
    });
  });
}
