import type { Command } from 'commander';
import { createApiKey, listApiKeys, revokeApiKey, type ApiKeyView } from '../domain/api-keys.ts';
import { keyRevocations } from '../events/credentials.ts';
import { encodeId, idOf } from '../graphql/ids.ts';
import { accountUuid } from './accounts.ts';
import type { WithSegue } from './index.ts';

/** Accepts a key's GraphQL id (as printed by `keys create` and `keys list`) or its database uuid. */
const keyUuid = (id: string) => (/^[0-9a-f-]{36}$/.test(id) ? id : idOf('ApiKey', id));

/** A key as the CLI shows it: its GraphQL id, never a secret or a hash. */
const shown = (key: ApiKeyView) => ({
  id: encodeId('ApiKey', key.id),
  name: key.name,
  prefix: key.prefix,
  createdAt: key.createdAt,
  lastUsedAt: key.lastUsedAt,
  expiresAt: key.expiresAt,
  revokedAt: key.revokedAt,
});

const state = (key: ApiKeyView) =>
  key.revokedAt ? `revoked ${key.revokedAt.toISOString()}` : key.expiresAt && key.expiresAt <= new Date() ? 'expired' : 'active';

export function registerKeyCommands(program: Command, withSegue: WithSegue) {
  const keys = program
    .commands.find((c) => c.name() === 'accounts')!
    .command('keys')
    .description("an account's API keys: create, list, revoke");

  keys
    .command('create <accountId>')
    .description('make a new API key for the account and print it (shown this once only)')
    .requiredOption('--name <name>', 'what the key is for (1 to 100 characters)')
    .option('--expires-in-days <days>', 'the key stops working after this many days (1 to 3650)')
    .option('--json', 'print one JSON line {"id","apiKey"} and nothing else')
    .action((accountId: string, options: { name: string; expiresInDays?: string; json?: boolean }) =>
      withSegue(async (segue) => {
        const expiresInDays = options.expiresInDays === undefined ? null : Number(options.expiresInDays);
        const { apiKey, secret } = await createApiKey(segue.db, accountUuid(accountId), { name: options.name, expiresInDays });
        const id = encodeId('ApiKey', apiKey.id);
        if (options.json) {
          process.stdout.write(`${JSON.stringify({ id, apiKey: secret })}\n`);
          return;
        }
        process.stdout.write(
          `Created API key "${apiKey.name}"\n  id:      ${id}\n  API key: ${secret}\n` +
            (apiKey.expiresAt ? `  expires: ${apiKey.expiresAt.toISOString()}\n` : '') +
            'Keep the key now: Segue stores only its hash and cannot show it again.\n',
        );
      }),
    );

  keys
    .command('list <accountId>')
    .description("the account's keys, newest first (names and prefixes, never secrets)")
    .option('--json', 'print JSON')
    .action((accountId: string, options: { json?: boolean }) =>
      withSegue(async (segue) => {
        const rows = await listApiKeys(segue.db, accountUuid(accountId));
        if (options.json) {
          process.stdout.write(`${JSON.stringify(rows.map(shown))}\n`);
          return;
        }
        if (rows.length === 0) process.stdout.write('No keys: create one with `accounts keys create <accountId> --name <name>`.\n');
        for (const key of rows) {
          const used = key.lastUsedAt ? `last used ${key.lastUsedAt.toISOString()}` : 'never used';
          process.stdout.write(`${shown(key).id}  ${key.prefix}…  ${state(key)}  ${used}  ${key.name}\n`);
        }
      }),
    );

  keys
    .command('revoke <keyId>')
    .description('revoke a key: refused at once by every API instance, its open connections closed')
    .option('--json', 'print JSON')
    .action((keyId: string, options: { json?: boolean }) =>
      withSegue(async (segue) => {
        const key = await revokeApiKey({ db: segue.db, revocations: keyRevocations(segue) }, null, keyUuid(keyId));
        process.stdout.write(options.json ? `${JSON.stringify(shown(key))}\n` : `Revoked API key "${key.name}" (${key.prefix}…).\n`);
      }),
    );
}
