import { existsSync, mkdirSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureConsoleBuilt } from './e2e/console-build.ts';
import { startImageHost, type ImageHost } from './e2e/images.ts';
import { gql } from './helpers/app.ts';
import { transitionInputs } from './helpers/fixtures.ts';
import { CreateTransitions, ListBatches } from './helpers/operations.ts';
import { startPipeline, type Pipeline } from './helpers/pipeline.ts';

/**
 * The web console end to end: the built app served by the real API at `/`, driven in Debian's
 * Chromium, against a real worker and the fal emulator. CI installs /usr/bin/chromium.
 */
const CHROMIUM = '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
if (!hasChromium) console.warn(`e2e-console skipped: no Chromium at ${CHROMIUM} (apt-get install chromium)`);

const ARTIFACTS = new URL('./artifacts/', import.meta.url).pathname;

let p: Pipeline;
let images: ImageHost;
let browser: Browser;

beforeAll(async () => {
  if (!hasChromium) return;
  ensureConsoleBuilt();
  mkdirSync(ARTIFACTS, { recursive: true });
  [p, images, browser] = await Promise.all([
    startPipeline({ emulator: { latencyMs: 1500 }, inlineWorkers: 1 }),
    startImageHost(),
    chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--autoplay-policy=no-user-gesture-required',
      ],
    }),
  ]);
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await images?.close();
  await p?.close();
});

/** Fills one row of the create form, found by its fieldset's legend. */
async function fillRow(page: Page, number: number, row: { front: string; tail: string; prompt: string; duration?: '5' | '10'; type?: string }) {
  const group = page.getByRole('group', { name: `Transition ${number}` });
  await group.getByLabel('Front image URL').fill(row.front);
  await group.getByLabel('Tail image URL').fill(row.tail);
  await group.getByLabel('Prompt', { exact: true }).fill(row.prompt);
  if (row.duration) await group.getByLabel('Duration').selectOption(row.duration);
  if (row.type) await group.getByLabel('Transition type').selectOption(row.type);
}

/** Every value each row's data-status took, recorded in the page as it changes. */
async function recordStatuses(page: Page) {
  await page.evaluate(() => {
    const seen: Record<string, string[]> = {};
    const note = (row: Element) => {
      const id = row.getAttribute('data-id')!;
      const status = row.getAttribute('data-status')!;
      const list = (seen[id] ??= []);
      if (list.at(-1) !== status) list.push(status);
    };
    document.querySelectorAll('[data-testid="transition-row"]').forEach(note);
    new MutationObserver((records) => {
      for (const r of records) {
        if (r.target instanceof Element && r.target.matches('[data-testid="transition-row"]')) note(r.target);
        r.addedNodes.forEach((n) => n instanceof Element && n.matches('[data-testid="transition-row"]') && note(n));
      }
    }).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ['data-status'] });
    (window as unknown as { statusHistory: typeof seen }).statusHistory = seen;
  });
  return () => page.evaluate(() => (window as unknown as { statusHistory: Record<string, string[]> }).statusHistory);
}

describe.skipIf(!hasChromium)('web console in Chromium', () => {
  it('signs in, creates a batch of three from the form, watches them complete live and plays a video', async () => {
    const account = await p.account();
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (error) => pageErrors.push(error.message));
    let loads = 0;
    page.on('load', () => (loads += 1));

    // Sign in, by keyboard: a wrong key is refused with a clear message, the right one accepted.
    await page.goto(p.app.url);
    const keyInput = page.getByLabel('API key');
    await keyInput.fill('sg_not-a-real-key');
    await keyInput.press('Enter');
    await expect.poll(() => page.getByRole('alert').textContent()).toMatch(/not accepted/);
    await keyInput.fill(account.apiKey);
    await keyInput.press('Enter');
    await page.getByTestId('viewer-name').waitFor();
    expect(await page.evaluate(() => sessionStorage.getItem('segue.apiKey'))).toBe(account.apiKey);
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => document.activeElement?.textContent)).toBe('Skip to content');

    // Three rows; the third without a prompt first: the API's BAD_USER_INPUT lands beside it.
    await page.getByRole('button', { name: 'Add transition' }).click();
    await page.getByRole('button', { name: 'Add transition' }).click();
    await fillRow(page, 1, { front: images.url('dawn'), tail: images.url('dusk'), prompt: 'Day slowly turns into night' });
    await fillRow(page, 2, { front: images.url('seed'), tail: images.url('tree'), prompt: 'A seed grows into a tree', duration: '10', type: 'crossfade' });
    await fillRow(page, 3, { front: images.url('city'), tail: images.url('forest'), prompt: '' });
    await expect.poll(() => page.locator('.preview img').count()).toBe(6);
    await page.getByRole('button', { name: 'Generate 3 transitions' }).click();
    const third = page.getByRole('group', { name: 'Transition 3' });
    await third.getByText('Prompt must not be empty').waitFor();
    expect(await third.getByLabel('Prompt', { exact: true }).getAttribute('aria-invalid')).toBe('true');
    expect(await page.evaluate(() => document.activeElement?.getAttribute('name'))).toBe('prompt');
    await page.screenshot({ path: `${ARTIFACTS}console-form.png`, fullPage: true });
    await third.getByLabel('Prompt', { exact: true }).fill('The city dissolves into a forest');
    expect(await page.getByText('Estimated cost: $1.96').count()).toBe(1);

    // A double click creates one batch (the button locks, and the idempotency key would hold).
    await page.getByRole('button', { name: 'Generate 3 transitions' }).dblclick();
    await page.waitForURL(/\?batch=/);
    const rows = page.getByTestId('transition-row');
    await expect.poll(() => rows.count()).toBe(3);
    const history = await recordStatuses(page);

    await page.locator('[data-testid="transition-row"]:is([data-status="SUBMITTED"], [data-status="IN_PROGRESS"])').first().waitFor();
    await page.screenshot({ path: `${ARTIFACTS}console-mid-batch.png`, fullPage: true });

    await page.locator('[data-testid="transition-row"][data-status="COMPLETED"]').nth(2).waitFor({ timeout: 30_000 });
    await page.locator('[data-batch-status="COMPLETED"]').waitFor();
    const progress = page.getByRole('progressbar', { name: 'Batch progress' });
    expect(await progress.getAttribute('aria-valuenow')).toBe('3');
    expect(await progress.getAttribute('aria-valuemax')).toBe('3');
    expect(await page.getByTestId('batch-cost').textContent()).toBe('$1.96');

    // Each row moved through its states in this page, with no reload: live over the subscription.
    const statuses = Object.values(await history());
    expect(statuses).toHaveLength(3);
    for (const seen of statuses) {
      expect(seen.at(-1)).toBe('COMPLETED');
      expect(seen.some((s) => s === 'SUBMITTED' || s === 'IN_PROGRESS' || s === 'QUEUED')).toBe(true);
    }
    expect(loads).toBe(1);

    // The video plays inline (the emulator serves a real MP4).
    const video = rows.first().locator('video');
    await video.evaluate(async (v: HTMLVideoElement) => {
      v.muted = true;
      await v.play();
    });
    await page.waitForFunction(
      (v) => (v as HTMLVideoElement).readyState >= 2 && (v as HTMLVideoElement).currentTime > 1,
      await video.elementHandle(),
      { timeout: 10_000 },
    );
    await page.getByRole('link', { name: /3 transitions/ }).getByText('Completed').waitFor();
    await page.screenshot({ path: `${ARTIFACTS}console-done.png`, fullPage: true });

    // Readable on a phone: nothing wider than 375 px.
    await page.setViewportSize({ width: 375, height: 812 });
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(375);
    await page.screenshot({ path: `${ARTIFACTS}console-phone.png` });

    // One batch of three was made, and each was submitted to fal once.
    const batches = await gql(p.app.graphqlUrl, account.apiKey, ListBatches, { first: 10 });
    expect(batches.data?.batches.edges.map((e) => e.node)).toEqual([expect.objectContaining({ status: 'COMPLETED', total: 3 })]);
    expect(p.emulator.counters().submitted).toBe(3);

    // Sign out forgets the key.
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('API key').waitFor();
    expect(await page.evaluate(() => sessionStorage.getItem('segue.apiKey'))).toBeNull();
    expect(pageErrors).toEqual([]);
    await context.close();
  }, 60_000);

  it('cancels a running transition and retries it by keyboard, following the batch again after it reopens', async () => {
    const account = await p.account();
    // Long enough that the cancel surely lands while fal is still generating.
    p.emulator.configure({ latencyMs: 60_000 });
    const created = await gql(p.app.graphqlUrl, account.apiKey, CreateTransitions, {
      input: { transitions: transitionInputs(1), generate: true },
    });
    const batchId = created.data!.createTransitions.batch!.id;

    const context = await browser.newContext({ viewport: { width: 1024, height: 800 } });
    await context.addInitScript((key) => sessionStorage.setItem('segue.apiKey', key), account.apiKey);
    const page = await context.newPage();
    await page.goto(`${p.app.url}/?batch=${batchId}`);
    const row = page.getByTestId('transition-row');
    await page.locator('[data-testid="transition-row"][data-status="IN_PROGRESS"]').waitFor();

    await page.getByRole('button', { name: 'Cancel transition 1' }).click();
    await page.locator('[data-testid="transition-row"][data-status="CANCELED"]').waitFor();
    // The batch ended, so the server completed both streams.
    await page.locator('[data-batch-status="CANCELED"]').waitFor();
    await page.locator('.feed', { hasText: 'Ended' }).waitFor();

    p.emulator.configure({ latencyMs: 500 });
    const retry = page.getByRole('button', { name: 'Retry transition 1' });
    await retry.focus();
    await page.keyboard.press('Enter');
    await page.locator('[data-testid="transition-row"][data-status="COMPLETED"]').waitFor({ timeout: 20_000 });
    await page.locator('[data-batch-status="COMPLETED"]').waitFor();
    expect(await row.getByTestId('attempts').textContent()).toBe('1');
    expect(await row.locator('video').count()).toBe(1);
    await context.close();
  }, 40_000);
});
