import { mkdirSync } from 'node:fs';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHROMIUM, hasChromium, launchChromium } from './e2e/chromium.ts';
import { ensureConsoleBuilt } from './e2e/console-build.ts';
import { startImageHost, type ImageHost } from './e2e/images.ts';
import { E2eGeneratedTransitions } from './e2e/operations.ts';
import { gql } from './helpers/app.ts';
import { transitionInputs } from './helpers/fixtures.ts';
import { CancelTransition, CreateTransitions, GenerateBatch, ListBatches } from './helpers/operations.ts';
import { startPipeline, type Pipeline } from './helpers/pipeline.ts';
import { makeImage } from './helpers/images.ts';

/**
 * The web console end to end: the built app served by the real API at `/`, driven in Debian's
 * Chromium, against a real worker and the fal emulator. CI installs /usr/bin/chromium.
 */
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
    launchChromium(),
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

/** Every value the data-status of each element matching `selector` took, recorded in the page as it changes. */
async function recordStatuses(page: Page, selector = '[data-testid="transition-row"]') {
  const key = `statusHistory:${selector}`;
  await page.evaluate(
    ([selector, key]) => {
      const seen: Record<string, string[]> = {};
      const note = (element: Element) => {
        const id = element.getAttribute('data-id')!;
        const status = element.getAttribute('data-status')!;
        const list = (seen[id] ??= []);
        if (list.at(-1) !== status) list.push(status);
      };
      const noteWithin = (node: Node) => {
        if (!(node instanceof Element)) return;
        if (node.matches(selector)) note(node);
        node.querySelectorAll(selector).forEach(note);
      };
      noteWithin(document.body);
      new MutationObserver((records) => {
        for (const r of records) {
          if (r.type === 'attributes' && r.target instanceof Element && r.target.matches(selector)) note(r.target);
          r.addedNodes.forEach(noteWithin);
        }
      }).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ['data-status'] });
      (window as unknown as Record<string, unknown>)[key] = seen;
    },
    [selector, key] as const,
  );
  return () => page.evaluate((key) => (window as unknown as Record<string, Record<string, string[]>>)[key]!, key);
}

/** Plays a <video> muted until it has data and has moved past `seconds`; returns its duration. */
async function play(page: Page, video: ReturnType<Page['locator']>, seconds = 1): Promise<number> {
  await video.evaluate(async (v: HTMLVideoElement) => {
    v.muted = true;
    await v.play();
  });
  const handle = await video.elementHandle();
  await page.waitForFunction(
    ([v, seconds]) => (v as HTMLVideoElement).readyState >= 2 && (v as HTMLVideoElement).currentTime > (seconds as number),
    [handle, seconds] as const,
    { timeout: 10_000 },
  );
  return video.evaluate((v: HTMLVideoElement) => v.duration);
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
    // Each figure shows its image, or why not ("No image yet", "Preview unavailable"): a failure says which.
    const previews = () => page.locator('.preview').evaluateAll((figures) => figures.map((f) => (f.querySelector('img') ? 'img' : f.textContent)));
    await expect.poll(previews, { timeout: 10_000 }).toEqual(Array(6).fill('img'));
    await page.getByRole('button', { name: 'Generate 3 transitions' }).click();
    const third = page.getByRole('group', { name: 'Transition 3' });
    await third.getByText('Prompt must not be empty').waitFor();
    expect(await third.getByLabel('Prompt', { exact: true }).getAttribute('aria-invalid')).toBe('true');
    // Focus moves in the frame after the messages render.
    await expect.poll(() => page.evaluate(() => document.activeElement?.getAttribute('name'))).toBe('prompt');
    await page.screenshot({ path: `${ARTIFACTS}console-form.png`, fullPage: true });
    await third.getByLabel('Prompt', { exact: true }).fill('The city dissolves into a forest');
    // No price before the batch exists: the estimate is the API's (Batch.estimatedCost).
    expect(await page.getByTestId('draft-summary').textContent()).toMatch(/^3 transitions, 20 s of video/);

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
    // The API's estimate at Kling v2.1 Pro's price: 5 s $0.49, 10 s $0.98.
    expect(await page.getByTestId('batch-cost').textContent()).toBe('$1.96');
    expect(await rows.getByTestId('transition-cost').allTextContents()).toEqual(['$0.49', '$0.98', '$0.49']);

    // Each row moved through its states in this page, with no reload: live over the subscription.
    const statuses = Object.values(await history());
    expect(statuses).toHaveLength(3);
    for (const seen of statuses) {
      expect(seen.at(-1)).toBe('COMPLETED');
      expect(seen.some((s) => s === 'SUBMITTED' || s === 'IN_PROGRESS' || s === 'QUEUED')).toBe(true);
    }
    expect(loads).toBe(1);

    // The video plays inline: Segue's own copy of the emulator's real MP4.
    const video = rows.first().locator('video');
    expect(await video.getAttribute('src')).toMatch(/\/media\/transitions\/.+\.mp4$/);
    await play(page, video);
    await page.getByRole('link', { name: /3 transitions/ }).getByText('Completed').waitFor();
    await page.screenshot({ path: `${ARTIFACTS}console-done.png`, fullPage: true });

    // Combine two clips, picked by keyboard in play order: transition 2 (10 s), then transition 1 (5 s).
    const panel = page.getByTestId('combine-panel');
    expect(await page.getByRole('checkbox', { name: /^Combine transition \d$/ }).count()).toBe(3);
    expect(await panel.getByRole('button', { name: 'Combine', exact: true }).isDisabled()).toBe(true);
    for (const name of ['Combine transition 2', 'Combine transition 1']) {
      await page.getByRole('checkbox', { name }).focus();
      await page.keyboard.press('Space');
    }
    expect(await page.getByRole('checkbox', { name: 'Combine transition 2' }).isChecked()).toBe(true);
    expect(await rows.nth(1).getByTestId('clip-order').getAttribute('data-order')).toBe('1');
    expect(await rows.nth(0).getByTestId('clip-order').getAttribute('data-order')).toBe('2');
    expect(await rows.nth(2).getByTestId('clip-order').count()).toBe(0);
    expect(await panel.getByTestId('combine-order').getByRole('listitem').allTextContents()).toEqual(['Transition 2 (10 s)', 'Transition 1 (5 s)']);

    // A bad audio URL: the API's BAD_USER_INPUT lands beside the field, which takes the focus.
    const audio = panel.getByLabel('Audio URL (optional)');
    await audio.fill('ftp://example.com/song.mp3');
    const combineButton = panel.getByRole('button', { name: 'Combine 2 clips' });
    await combineButton.click();
    await panel.getByText('Audio URL must be an http(s) URL').waitFor();
    expect(await audio.getAttribute('aria-invalid')).toBe('true');
    await expect.poll(() => page.evaluate(() => document.activeElement?.getAttribute('name'))).toBe('audioUrl');
    await audio.fill('');

    // Then combined for real: the new video's state arrives live, QUEUED or RUNNING, then COMPLETED.
    const combinedHistory = await recordStatuses(page, '[data-testid="combined-video"]');
    await combineButton.click();
    const combined = page.locator('[data-testid="combined-video"][data-status="COMPLETED"]');
    await combined.waitFor({ timeout: 30_000 });
    const [combinedStatuses] = Object.values(await combinedHistory());
    expect(combinedStatuses!.at(-1)).toBe('COMPLETED');
    expect(combinedStatuses!.some((s) => s === 'QUEUED' || s === 'RUNNING')).toBe(true);
    expect(loads).toBe(1);
    const combinedVideo = combined.locator('video');
    expect(await combinedVideo.getAttribute('src')).toMatch(/\/media\/combined\/.+\.mp4$/);
    expect(await combinedVideo.getAttribute('poster')).toMatch(/\/media\/combined\/.+\.jpg$/);
    expect(await combinedVideo.locator('track').count()).toBe(0); // these clips have no subtitles
    const duration = await play(page, combinedVideo);
    expect(Math.abs(duration - 15)).toBeLessThanOrEqual(0.5);
    await page.getByTestId('combined-list').locator('li[data-status="COMPLETED"]').getByText('2 clips', { exact: false }).waitFor();
    await combined.scrollIntoViewIfNeeded();
    await page.screenshot({ path: `${ARTIFACTS}console-combined.png`, fullPage: true });

    // Readable on a phone: nothing wider than 375 px.
    await page.setViewportSize({ width: 375, height: 812 });
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(375);
    await page.screenshot({ path: `${ARTIFACTS}console-phone.png` });

    // Each clip's first frame is its poster. (They are made just after the batch ended, when its
    // transitionUpdated stream has already completed, so this page shows them once reloaded.)
    await page.reload();
    await expect.poll(() => rows.locator('video').evaluateAll((videos) => videos.map((v) => v.getAttribute('poster')))).toEqual([
      expect.stringMatching(/\/media\/transitions\/.+poster\.jpg$/),
      expect.stringMatching(/\/media\/transitions\/.+poster\.jpg$/),
      expect.stringMatching(/\/media\/transitions\/.+poster\.jpg$/),
    ]);

    // One batch of three was made, and each was submitted to fal once.
    const batches = await gql(p.app.graphqlUrl, account.apiKey, ListBatches, { first: 10 });
    expect(batches.data?.batches.edges.map((e) => e.node)).toEqual([expect.objectContaining({ status: 'COMPLETED', total: 3 })]);
    expect(p.emulator.counters().submitted).toBe(3);
    const made = await gql(p.app.graphqlUrl, account.apiKey, E2eGeneratedTransitions);
    expect(made.data?.generatedTransitions.edges.map((e) => e.node.status)).toEqual(['COMPLETED']);

    // Sign out forgets the key.
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('API key').waitFor();
    expect(await page.evaluate(() => sessionStorage.getItem('segue.apiKey'))).toBeNull();
    expect(pageErrors).toEqual([]);
    await context.close();
  }, 60_000);

  it('drops two image files, shows each with its size (and a broken rule before sending), generates and watches the video complete', async () => {
    const account = await p.account();
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (error) => pageErrors.push(error.message));
    await page.goto(p.app.url);
    await page.getByLabel('API key').fill(account.apiKey);
    await page.getByLabel('API key').press('Enter');
    await page.getByTestId('viewer-name').waitFor();

    /** A real drop event carrying a file, as dragging it from the desktop does. */
    const drop = async (testId: string, name: string, bytes: Buffer) => {
      const transfer = await page.evaluateHandle(
        ({ name, base64 }) => {
          const data = new DataTransfer();
          data.items.add(new File([Uint8Array.from(atob(base64), (c) => c.charCodeAt(0))], name, { type: 'image/png' }));
          return data;
        },
        { name, base64: bytes.toString('base64') },
      );
      await page.getByTestId(testId).dispatchEvent('drop', { dataTransfer: transfer });
    };

    const row = page.getByRole('group', { name: 'Transition 1' });
    // A file that breaks a rule shows the rule at once, and nothing is sent.
    await drop('front-image-drop', 'tiny.png', await makeImage({ width: 200, height: 200 }));
    await row.getByText(/200×200 px is too small/).waitFor();
    expect(await page.getByRole('button', { name: 'Generate 1 transition' }).isDisabled()).toBe(true);
    expect(await p.app.segue.db.image.count({ where: { accountId: account.id } })).toBe(0);

    await drop('front-image-drop', 'dawn.png', await images.png('dawn'));
    await drop('tail-image-drop', 'dusk.png', await images.png('dusk'));
    await page.locator('[data-testid="front-image-drop"][data-state="uploaded"]').waitFor();
    await page.locator('[data-testid="tail-image-drop"][data-state="uploaded"]').waitFor();
    expect(await page.getByTestId('front-image-facts').textContent()).toMatch(/^640×360 px · [\d.]+ KB$/);
    expect(await row.getByRole('img', { name: 'Tail image preview' }).getAttribute('src')).toMatch(/^blob:/);
    await row.getByLabel('Prompt', { exact: true }).fill('Dawn turns to dusk, from two files');
    await page.screenshot({ path: `${ARTIFACTS}console-dropped-images.png`, fullPage: true });
    await page.getByRole('button', { name: 'Generate 1 transition' }).click();
    await page.waitForURL(/\?batch=/);

    const done = page.locator('[data-testid="transition-row"][data-status="COMPLETED"]');
    await done.waitFor({ timeout: 30_000 });
    await play(page, done.locator('video'));
    // fal got the two uploads through its storage, never a URL on this machine.
    const request = p.emulator.requests().find((r) => (r.input as { prompt: string }).prompt === 'Dawn turns to dusk, from two files');
    expect((request!.input as { image_url: string }).image_url).toMatch(/^https:\/\/v3\.fal\.media\//);
    expect(await p.app.segue.db.image.count({ where: { accountId: account.id, status: 'READY' } })).toBe(2);
    await page.screenshot({ path: `${ARTIFACTS}console-images-done.png`, fullPage: true });
    expect(pageErrors).toEqual([]);
    await context.close();
  }, 60_000);

  it('shows "about N min left" on each running card and on the batch, and drops it once they are done', async () => {
    const account = await p.account();
    // Long enough that the page has opened, signed in and subscribed while both still run.
    p.emulator.configure({ latencyMs: 8_000 });
    try {
      const created = await gql(p.app.graphqlUrl, account.apiKey, CreateTransitions, {
        input: { transitions: transitionInputs(2), generate: true },
      });
      const batchId = created.data!.createTransitions.batch!.id;
      const context = await browser.newContext({ viewport: { width: 1024, height: 800 } });
      await context.addInitScript((key) => sessionStorage.setItem('segue.apiKey', key), account.apiKey);
      const page = await context.newPage();
      await page.goto(`${p.app.url}/?batch=${batchId}`);
      const cardEta = page.getByTestId('transition-eta').first();
      await cardEta.waitFor();
      expect(await cardEta.textContent()).toMatch(/^about \d+ min left$/);
      expect(await page.getByTestId('batch-eta').textContent()).toMatch(/^Done in about \d+ min left$/);
      await page.locator('[data-batch-status="COMPLETED"]').waitFor({ timeout: 30_000 });
      expect(await page.getByTestId('transition-eta').count()).toBe(0);
      expect(await page.getByTestId('batch-eta').count()).toBe(0);
      await context.close();
    } finally {
      p.emulator.configure({ latencyMs: 1_500 });
    }
  }, 40_000);

  it('cancels a running transition and retries it by keyboard, following the batch again after it reopens', async () => {
    const account = await p.account();
    // Long enough that the cancel surely lands while fal is still generating. This fal stops a
    // canceled job: a retry waits for the old request to end at fal before it submits anew.
    p.emulator.configure({ latencyMs: 60_000, cancelRunning: 'stop' });
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

    p.emulator.configure({ latencyMs: 500, cancelRunning: 'complete' });
    const retry = page.getByRole('button', { name: 'Retry transition 1' });
    await retry.focus();
    await page.keyboard.press('Enter');
    await page.locator('[data-testid="transition-row"][data-status="COMPLETED"]').waitFor({ timeout: 20_000 });
    await page.locator('[data-batch-status="COMPLETED"]').waitFor();
    expect(await row.getByTestId('attempts').textContent()).toBe('1');
    expect(await row.locator('video').count()).toBe(1);
    await context.close();
  }, 40_000);
  it('combines clips with subtitles into a video with a subtitle track, and explains a CONFLICT', async () => {
    const account = await p.account();
    p.emulator.configure({ latencyMs: 500 });
    const created = await gql(p.app.graphqlUrl, account.apiKey, CreateTransitions, {
      input: {
        generate: true,
        transitions: [
          transitionInputs(1, { enableSubtitles: true, subtitles: 'Dawn breaks' })[0]!,
          transitionInputs(1)[0]!,
          transitionInputs(1, { enableSubtitles: true, subtitles: 'Night falls' })[0]!,
        ],
      },
    });
    const { batch, transitions } = created.data!.createTransitions;

    const context = await browser.newContext({ viewport: { width: 1024, height: 800 } });
    await context.addInitScript((key) => sessionStorage.setItem('segue.apiKey', key), account.apiKey);
    const page = await context.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (error) => pageErrors.push(error.message));
    await page.goto(`${p.app.url}/?batch=${batch!.id}`);
    await page.locator('[data-batch-status="COMPLETED"]').waitFor({ timeout: 20_000 });

    // Picked with the mouse this time: 3 then 1, each with subtitles.
    const panel = page.getByTestId('combine-panel');
    await page.getByLabel('Combine transition 3').check();
    await page.getByLabel('Combine transition 1').check();
    expect(await panel.getByTestId('combine-order').getByRole('listitem').allTextContents()).toEqual(['Transition 3 (5 s)', 'Transition 1 (5 s)']);
    await panel.getByRole('button', { name: 'Combine 2 clips' }).click();
    const combined = page.locator('[data-testid="combined-video"][data-status="COMPLETED"]');
    await combined.waitFor({ timeout: 30_000 });

    // The subtitles come as a WebVTT track, shown by default: one cue per clip, in play order.
    const track = combined.locator('video track');
    expect(await track.getAttribute('kind')).toBe('subtitles');
    expect(await track.getAttribute('src')).toMatch(/\/media\/combined\/.+\.vtt$/);
    expect(await track.evaluate((t: HTMLTrackElement) => t.default)).toBe(true);
    const video = combined.locator('video');
    await page.waitForFunction((v) => ((v as HTMLVideoElement).textTracks[0]?.cues?.length ?? 0) >= 2, await video.elementHandle(), { timeout: 10_000 });
    expect(await video.evaluate((v: HTMLVideoElement) => [...v.textTracks[0]!.cues!].map((c) => (c as VTTCue).text))).toEqual(['Night falls', 'Dawn breaks']);
    expect(Math.abs((await play(page, video, 0.5)) - 10)).toBeLessThanOrEqual(0.5);

    // Transition 2 is generated again elsewhere (through the API) while this page still shows it
    // COMPLETED (its batch's stream has ended): combining it is a CONFLICT, explained above the
    // form, which takes the focus. The generation queue is paused meanwhile, so that it stays QUEUED.
    const generation = p.app.segue.generationJobs.queue;
    await generation.pause();
    try {
      const regenerate = await gql(p.app.graphqlUrl, account.apiKey, GenerateBatch, { input: { transitionIds: [transitions[1]!.id] } });
      expect(regenerate.errors).toBeUndefined();
      await panel.getByRole('button', { name: 'Clear selection' }).click();
      await page.getByLabel('Combine transition 2').check();
      await page.getByLabel('Combine transition 1').check();
      await panel.getByRole('button', { name: 'Combine 2 clips' }).click();
      const alert = panel.getByRole('alert');
      await expect.poll(() => alert.textContent()).toMatch(/Only COMPLETED transitions .*can be combined/);
      await expect.poll(() => page.evaluate(() => document.activeElement?.getAttribute('role'))).toBe('alert');
      // The video made before is still the one shown.
      expect(await page.getByTestId('combined-video').getAttribute('data-id')).toBe(await combined.getAttribute('data-id'));
    } finally {
      await gql(p.app.graphqlUrl, account.apiKey, CancelTransition, { id: transitions[1]!.id });
      await generation.resume();
    }
    expect(pageErrors).toEqual([]);
    await context.close();
  }, 40_000);
});
