import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestAccount, gql, startTestApp, type TestApp } from './helpers/app.ts';
import { Viewer } from './helpers/operations.ts';
import { run } from './helpers/process.ts';

let app: TestApp;
beforeAll(async () => {
  app = await startTestApp();
});
afterAll(() => app.close());

describe('npm run cli -- accounts', () => {
  it('create --json prints exactly one JSON line with the id and a working API key', async () => {
    const name = `cli-${Date.now()}`;
    const child = run('npm', ['run', 'cli', '--', 'accounts', 'create', name, '--json']);
    expect((await child.exited).code).toBe(0);
    const lines = child.stdout().split('\n').filter(Boolean);
    expect(lines).toHaveLength(1);
    const printed = JSON.parse(lines[0]!) as { id: string; apiKey: string };
    expect(Object.keys(printed).sort()).toEqual(['apiKey', 'id']);

    const viewer = await gql(app.graphqlUrl, printed.apiKey, Viewer);
    expect(viewer.data!.viewer).toMatchObject({ id: printed.id, name });
    const row = await app.segue.db.account.findFirstOrThrow({ where: { name }, include: { apiKeys: true } });
    expect(row.apiKeys).toHaveLength(1);
    expect(row.apiKeys[0]!.hash).not.toContain(printed.apiKey);
    expect(JSON.stringify(row)).not.toContain(printed.apiKey);
  });

  it('create without --json tells the key is shown once', async () => {
    const child = run('npm', ['run', 'cli', '--', 'accounts', 'create', 'human']);
    expect((await child.exited).code).toBe(0);
    expect(child.stdout()).toMatch(/API key: sg_\S+/);
    expect(child.stdout()).toMatch(/cannot show it again/);
  });

  it('list shows accounts without their keys, by the id the API and `accounts create` show', async () => {
    const name = `listed-${Date.now()}`;
    const account = await createTestAccount(app.segue, name);
    const viewer = await gql(app.graphqlUrl, account.apiKey, Viewer);
    const child = run('npm', ['run', 'cli', '--', 'accounts', 'list', '--json']);
    expect((await child.exited).code).toBe(0);
    const rows = JSON.parse(child.stdout()) as Array<{ id: string; databaseId: string; name: string }>;
    expect(rows.find((r) => r.name === name)).toMatchObject({ id: viewer.data!.viewer.id, databaseId: account.id });
    expect(child.stdout()).not.toMatch(/apiKey|sg_/);

    // The text form prints the same id, and the commands that take an account accept it.
    const text = run('npm', ['run', 'cli', '--', 'accounts', 'list']);
    expect((await text.exited).code).toBe(0);
    expect(text.stdout().split('\n').find((line) => line.endsWith(`  ${name}`))).toMatch(new RegExp(`^${viewer.data!.viewer.id}  `));
    const keys = run('npm', ['run', 'cli', '--', 'accounts', 'keys', 'list', viewer.data!.viewer.id, '--json']);
    expect((await keys.exited).code).toBe(0);
    expect(JSON.parse(keys.stdout())).toHaveLength(1);
    // Its database uuid is accepted too, as SQL clients print it or in capitals as other tools do.
    const byUuid = run('npm', ['run', 'cli', '--', 'accounts', 'keys', 'list', account.id.toUpperCase(), '--json']);
    expect((await byUuid.exited).code, byUuid.output()).toBe(0);
    expect(JSON.parse(byUuid.stdout())).toHaveLength(1);
    // Something shaped like a uuid that is not one is refused as not an id, not looked up.
    const bad = run('npm', ['run', 'cli', '--', 'accounts', 'keys', 'list', `${'a'.repeat(35)}-`, '--json']);
    expect((await bad.exited).code).toBe(1);
    expect(bad.output()).toMatch(/is not a valid ID/);
  });

  it('rejects an empty name with a clear message and exit code 1', async () => {
    const child = run('npm', ['run', 'cli', '--', 'accounts', 'create', '  ']);
    expect((await child.exited).code).toBe(1);
    expect(child.output()).toMatch(/name must not be empty/);
  });
});
