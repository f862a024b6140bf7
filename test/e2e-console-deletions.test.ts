import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHROMIUM, hasChromium, launchChromium } from './e2e/chromium.ts';
import { ensureConsoleBuilt } from './e2e/console-build.ts';
import { idOf } from '../src/graphql/ids.ts';
import { createTestAccount, gql, type TestAccount } from './helpers/app.ts';
import { DeleteTransitions } from './helpers/credential-operations.ts';
import { transitionInputs } from './helpers/fixtures.ts';
import { CancelTransition, CreateTransitions } from './helpers/operations.ts';
import { startPipeline, type Pipeline } from './helpers/pipeline.ts';

/**
 * The console's batch page while the batch's transitions are deleted through the API (a script,
 * the CLI, another tab): it shows what a query would. Real Chromium and the built console; no
 * worker, so a generated batch stays queued, and open, for as long as a test needs.
 */
if (!hasChromium) console.warn(`e2e-console-deletions skipped: no Chromium at ${CHROMIUM} (apt-get install chromium)`);

let p: Pipeline;
let browser: Browser;

beforeAll(async () => {
  if (!hasChromium) return;
  ensureConsoleBuilt();
  [p, browser] = await Promise.all([startPipeline({ emulator: { latencyMs: 100 } }), launchChromium()]);
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await p?.close();
});

/** A new account with a queued batch of `n`, and the console open on it, signed in, its streams live. */
async function watching(n: number): Promise<{ account: TestAccount; ids: string[]; batchId: string; page: Page; close(): Promise<void> }> {
  const account = await createTestAccount(p.app.segue);
  const created = (await gql(p.app.graphqlUrl, account.apiKey, CreateTransitions, { input: { transitions: transitionInputs(n), generate: true } })).data!
    .createTransitions;
  const context = await browser.newContext({ viewport: { width: 1024, height: 800 } });
  await context.addInitScript((key) => sessionStorage.setItem('segue.apiKey', key), account.apiKey);
  const page = await context.newPage();
  return { account, ids: created.transitions.map((t) => t.id), batchId: created.batch!.id, page, close: () => context.close() };
}

async function open(page: Page, batchId: string, rows: number) {
  await page.goto(`${p.app.url}/?batch=${encodeURIComponent(batchId)}`);
  await page.locator('.feed', { hasText: 'Live' }).waitFor();
  expect(await page.getByTestId('transition-row').count()).toBe(rows);
}

describe.skipIf(!hasChromium)('console: deletions made through the API', () => {
  it('a transition deleted from the batch shown leaves the page, and the progress counts the rest', { timeout: 60_000 }, async () => {
    const { account, ids, batchId, page, close } = await watching(3);
    try {
      await open(page, batchId, 3);
      await gql(p.app.graphqlUrl, account.apiKey, CancelTransition, { id: ids[0]! });
      await page.locator(`[data-testid="transition-row"][data-status="CANCELED"]`).waitFor();
      await gql(p.app.graphqlUrl, account.apiKey, DeleteTransitions, { input: { ids: [ids[0]!] } });
      await page.waitForFunction(() => document.querySelectorAll('[data-testid="transition-row"]').length === 2, undefined, { timeout: 10_000 });
      await page.locator('[role="progressbar"][aria-valuemax="2"][aria-valuetext^="0 of 2 finished"]').waitFor({ timeout: 10_000 });
      // Still live: the batch goes on.
      await page.locator('.feed', { hasText: 'Live' }).waitFor();
      expect(await page.locator('[data-testid="transition-row"][data-status="CANCELED"]').count()).toBe(0);
    } finally {
      await close();
    }
  });

  it('a batch deleted with its transitions while shown says so, instead of showing it ended', { timeout: 60_000 }, async () => {
    const { account, ids, batchId, page, close } = await watching(2);
    try {
      // The API's progress of the create goes out first; then every item ends with the batch still
      // open, as when the process that would close it died (written directly: no one is told).
      await p.app.segue.events.flush();
      await p.app.segue.db.transition.updateMany({ where: { id: { in: ids.map((id) => idOf('Transition', id)) } }, data: { status: 'CANCELED' } });
      await open(page, batchId, 2);
      await gql(p.app.graphqlUrl, account.apiKey, DeleteTransitions, { input: { ids } });
      await page.getByRole('alert').filter({ hasText: 'This batch was deleted while you watched it' }).waitFor({ timeout: 10_000 });
      expect(await page.getByTestId('transition-row').count()).toBe(0);
    } finally {
      await close();
    }
  });
});
