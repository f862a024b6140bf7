import type { Command } from 'commander';
import { createAccount, listAccounts, setBudget } from '../domain/accounts.ts';
import { deleteAccount } from '../domain/deletion.ts';
import { isAppError } from '../domain/errors.ts';
import { releaseAccountRequests } from '../domain/fal-requests.ts';
import { cancelTransition } from '../domain/generation.ts';
import { OPEN } from '../domain/statuses.ts';
import { keyRevocations } from '../events/credentials.ts';
import { encodeId, idOf, UUID } from '../graphql/ids.ts';
import type { WithSegue } from './index.ts';

export function registerAccountCommands(program: Command, withSegue: WithSegue) {
  const accounts = program.command('accounts').description('manage accounts and their API keys');

  accounts
    .command('create <name>')
    .description('create an account and print its API key (shown this once only)')
    .option('--json', 'print one JSON line {"id","apiKey"} and nothing else')
    .action((name: string, options: { json?: boolean }) =>
      withSegue(async (segue) => {
        const { account, apiKey } = await createAccount(segue.db, name);
        if (options.json) {
          process.stdout.write(`${JSON.stringify({ id: encodeId('Account', account.id), apiKey })}\n`);
        } else {
          process.stdout.write(
            `Created account "${account.name}"\n  id:      ${encodeId('Account', account.id)}\n  API key: ${apiKey}\n` +
              'Keep the key now: Segue stores only its hash and cannot show it again.\n',
          );
        }
      }),
    );

  accounts
    .command('list')
    .description('list accounts')
    .option('--json', 'print JSON')
    .action((options: { json?: boolean }) =>
      withSegue(async (segue) => {
        // By the id every other command prints and the API shows (viewer.id), as `accounts create`
        // does; --json keeps the database uuid beside it, for SQL and the logs.
        const rows = (await listAccounts(segue.db)).map((row) => ({ id: encodeId('Account', row.id), databaseId: row.id, name: row.name, createdAt: row.createdAt }));
        if (options.json) {
          process.stdout.write(`${JSON.stringify(rows)}\n`);
          return;
        }
        if (rows.length === 0) process.stdout.write('No accounts yet: create one with `accounts create <name>`.\n');
        for (const row of rows) process.stdout.write(`${row.id}  ${row.createdAt.toISOString()}  ${row.name}\n`);
      }),
    );
}

/**
 * Accepts the account's GraphQL id (as printed by `accounts create`) or its database uuid, in
 * either case (as SQL clients and other tools print it); anything else is refused as not an id.
 */
export const accountUuid = (id: string) => (UUID.test(id.toLowerCase()) ? id.toLowerCase() : idOf('Account', id));

export function registerBudgetCommand(program: Command, withSegue: WithSegue) {
  program
    .commands.find((c) => c.name() === 'accounts')!
    .command('budget <id> <usd>')
    .description('set the account\'s spending limit in USD ("none" removes it); generation beyond it is refused')
    .option('--json', 'print JSON')
    .action((id: string, usd: string, options: { json?: boolean }) =>
      withSegue(async (segue) => {
        const budgetUsd = usd === 'none' ? null : Number(usd);
        await setBudget(segue.db, accountUuid(id), budgetUsd);
        process.stdout.write(options.json ? `${JSON.stringify({ id, budgetUsd })}\n` : `Budget of ${id}: ${budgetUsd === null ? 'none' : `$${budgetUsd}`}\n`);
      }),
    );
}

export function registerDeleteCommand(program: Command, withSegue: WithSegue) {
  program
    .commands.find((c) => c.name() === 'accounts')!
    .command('delete <accountId>')
    .description('delete an account with all its rows (transitions, batches, combined videos, keys, spend) and its files')
    .option('--yes', 'really delete: without it, only say what would go')
    .option('--json', 'print JSON')
    .action((id: string, options: { yes?: boolean; json?: boolean }) =>
      withSegue(async (segue) => {
        const accountId = accountUuid(id);
        const account = await segue.db.account.findUnique({
          where: { id: accountId },
          select: { name: true, _count: { select: { transitions: true, batches: true, generatedTransitions: true, apiKeys: true } } },
        });
        if (!account) throw Object.assign(new Error('Account not found.'), { code: 'NOT_FOUND' });
        if (!options.yes) {
          const c = account._count;
          process.stderr.write(
            `Would delete account "${account.name}": ${c.transitions} transitions, ${c.batches} batches, ` +
              `${c.generatedTransitions} combined videos, ${c.apiKeys} API keys, and their files. Pass --yes to delete.\n`,
          );
          process.exitCode = 1;
          return;
        }
        // Queued and running work is canceled first, at fal too, so nothing keeps spending.
        const open = await segue.db.transition.findMany({ where: { accountId, status: { in: [...OPEN] } }, select: { id: true } });
        for (const { id: transitionId } of open) {
          await cancelTransition(segue, accountId, transitionId).catch((error: unknown) => {
            if (!isAppError(error) || error.code !== 'CONFLICT') throw error; // ended meanwhile
          });
        }
        // A canceled run's request may still run at fal (Kling finishes what it started): the
        // ledger keeps following it until fal ends it, so the account waits for that.
        const stillAtFal = await releaseAccountRequests(segue, accountId, Date.now() + segue.config.fal.cancelGraceMs, segue.logger);
        if (stillAtFal > 0) {
          throw Object.assign(new Error(`fal is still running ${stillAtFal} canceled request(s) of this account; run this again once they have ended.`), {
            code: 'CONFLICT',
          });
        }
        const deleted = await deleteAccount({ db: segue.db, media: segue.media, logger: segue.logger, revocations: keyRevocations(segue) }, accountId);
        process.stdout.write(
          options.json
            ? `${JSON.stringify({ id, ...deleted, canceled: open.length })}\n`
            : `Deleted account "${account.name}": ${deleted.transitions} transitions (${open.length} canceled first), ` +
                `${deleted.batches} batches, ${deleted.combined} combined videos, ${deleted.keys} API keys, ${deleted.files} files.\n`,
        );
      }),
    );
}
