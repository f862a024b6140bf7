import { existsSync, mkdirSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureConsoleBuilt } from './e2e/console-build.ts';
import { gql } from './helpers/app.ts';
import { transitionInputs } from './helpers/fixtures.ts';
import { CreateTransitions } from './helpers/operations.ts';
import { startPipeline, type Pipeline } from './helpers/pipeline.ts';

/**
 * "Share live view" end to end: the owner, signed in with a key, makes a read-only link for a
 * running batch; a fresh browser context (no key anywhere) opens it and watches the batch
 * complete live. Real Chromium, the built console, a real worker and the fal emulator.
 */
const CHROMIUM = '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
if (!hasChromium) console.warn(`e2e-console-share skipped: no Chromium at ${CHROMIUM} (apt-get install chromium)`);

const ARTIFACTS = new URL('./artifacts/', import.meta.url).pathname;

let p: Pipeline;
let browser: Browser;

beforeAll(async () => {
  if (!hasChromium) return;
  ensureConsoleBuilt();
  mkdirSync(ARTIFACTS, { recursive: true });
  [p, browser] = await Promise.all([
    // fal takes 8 s a video: the batch is still running when the link is opened.
    startPipeline({ emulator: { latencyMs: 8_000 }, inlineWorkers: 1 }),
    chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    }),
  ]);
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await p?.close();
});

describe.skipIf(!hasChromium)('console: Share live view', () => {
  it('mints a read-only link that a fresh browser, without the key, opens to watch the batch complete live', { timeout: 90_000 }, async () => {
    const account = await p.account();
    const created = await gql(p.app.graphqlUrl, account.apiKey, CreateTransitions, {
      input: { transitions: transitionInputs(2), generate: true },
    });
    const batchId = created.data!.createTransitions.batch!.id;

    // The owner, signed in with the key, on the batch's page.
    const owner = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const ownerPage = await owner.newPage();
    await ownerPage.goto(`${p.app.url}/?batch=${encodeURIComponent(batchId)}`);
    await ownerPage.getByLabel('API key').fill(account.apiKey);
    await ownerPage.getByLabel('API key').press('Enter');
    await ownerPage.getByTestId('batch-view').waitFor();
    await ownerPage.getByLabel('Link works for').selectOption('3600');
    await ownerPage.getByRole('button', { name: 'Share live view' }).click();
    const linkInput = ownerPage.getByLabel('Read-only link');
    await linkInput.waitFor();
    const link = await linkInput.inputValue();
    const parsed = new URL(link);
    expect(parsed.origin).toBe(new URL(p.app.url).origin);
    expect(parsed.pathname).toBe('/');
    expect([...parsed.searchParams.keys()]).toEqual(['token', 'batch']);
    expect(parsed.searchParams.get('batch')).toBe(batchId);
    const token = parsed.searchParams.get('token')!;
    expect(token).not.toContain('sg_');
    expect(await ownerPage.getByRole('status').filter({ hasText: 'Anyone with this link' }).textContent()).toMatch(/cannot change anything/);
    await ownerPage.screenshot({ path: `${ARTIFACTS}console-share-owner.png`, fullPage: true });
    await owner.close();

    // Someone else: a fresh context, nothing stored, no key.
    const viewer = await browser.newContext({ viewport: { width: 1024, height: 800 } });
    const page = await viewer.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (error) => pageErrors.push(error.message));
    const sent: string[] = [];
    page.on('request', (request) => sent.push(request.headers().authorization ?? ''));
    page.on('websocket', (ws) => ws.on('framesent', (frame) => sent.push(String(frame.payload))));
    await page.goto(link);
    const view = page.getByTestId('batch-view');
    await view.waitFor();
    expect(await page.getByTestId('read-only-notice').textContent()).toMatch(/Read only/);
    // Seen live: running first, then completed, without a reload.
    await page.waitForFunction(() => document.querySelector('[data-testid="batch-view"]')?.getAttribute('data-batch-status') === 'RUNNING' ||
      document.querySelector('[data-testid="batch-view"]')?.getAttribute('data-batch-status') === 'QUEUED');
    const loadsBefore = await page.evaluate(() => performance.getEntriesByType('navigation').length);
    await page.waitForFunction(() => document.querySelector('[data-testid="batch-view"]')?.getAttribute('data-batch-status') === 'COMPLETED', undefined, {
      timeout: 60_000,
    });
    expect(await page.evaluate(() => performance.getEntriesByType('navigation').length)).toBe(loadsBefore);
    await expect.poll(() => page.locator('[data-testid="transition-row"][data-status="COMPLETED"]').count(), { timeout: 20_000 }).toBe(2);
    expect(await page.locator('video.transition-video').count()).toBe(2);

    // A watcher only: no actions, no sign-in, no key stored or sent.
    for (const name of ['Cancel batch', 'Share live view', 'Sign out']) expect(await page.getByRole('button', { name }).count(), name).toBe(0);
    expect(await page.getByLabel('API key').count()).toBe(0);
    expect(await page.evaluate(() => sessionStorage.getItem('segue.apiKey'))).toBeNull();
    expect(sent.some((s) => s.includes(account.apiKey) || /sg_/.test(s))).toBe(false);
    expect(sent.some((s) => s.includes(`Bearer ${token}`))).toBe(true);
    expect(pageErrors).toEqual([]);
    await page.screenshot({ path: `${ARTIFACTS}console-share-viewer.png`, fullPage: true });
    await viewer.close();
  });
});
