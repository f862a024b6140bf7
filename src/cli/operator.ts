import type { Command } from 'commander';
import { operatorStats } from '../domain/queue-stats.ts';
import { encodeId } from '../graphql/ids.ts';
import type { Segue } from '../runtime.ts';
import type { WithSegue } from './index.ts';
import { output, type Output } from './output.ts';

/**
 * Commands for whoever runs Segue: they read PostgreSQL and Redis directly (the same
 * DATABASE_URL, REDIS_URL and QUEUE_PREFIX as the servers), need no API key, and show what no
 * tenant may see through the API: every account's figures, the workers' hosts and processes.
 */
export async function printOperatorStats(segue: Segue, out: Output) {
  const s = await operatorStats(segue);
  const accounts = s.accounts.map((a) => ({ ...a, accountId: encodeId('Account', a.accountId) }));
  out.result({ ...s, accounts }, () =>
    [
      `fal requests in flight: ${s.falInFlight} of ${s.falConcurrency}`,
      `queue: ${s.queue.waiting} waiting, ${s.queue.active} active, ${s.queue.delayed} delayed, ${s.queue.failed} failed`,
      `transitions (all accounts): ${s.byStatus.map((b) => `${b.count} ${b.status}`).join(', ') || 'none'}`,
      `workers online: ${s.workers.length}`,
      accounts.length ? 'busiest accounts (queued / running):' : 'busiest accounts: none (no transition is queued or running)',
      ...accounts.map((a) => `  ${a.accountId}  ${a.queued} / ${a.running}  ${a.name}`),
    ].join('\n'),
  );
}

export function registerOperatorCommands(program: Command, withSegue: WithSegue) {
  program
    .command('workers')
    .description('the generation workers online: host, pid, concurrency, since when (from Redis; no API key)')
    .option('--json', 'machine-readable JSON output')
    .action((options: { json?: boolean }) =>
      withSegue(async (segue) => {
        const workers = await segue.generationJobs.onlineWorkers();
        output(options).result(workers, () =>
          workers.length === 0
            ? 'No workers online.'
            : workers.map((w) => `${w.host}  pid ${w.pid ?? '?'}  concurrency ${w.concurrency ?? '?'}  since ${w.startedAt.toISOString()}`).join('\n'),
        );
      }),
    );
}
