import { mkdirSync } from 'node:fs';
import type { Browser, Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasChromium, launchChromium, policyOf, sameOriginPage } from './e2e/chromium.ts';
import { ensureConsoleBuilt } from './e2e/console-build.ts';
import { createTestAccount, gql } from './helpers/app.ts';
import { transitionInputs } from './helpers/fixtures.ts';
import { CreateTransitions, GenerateBatch } from './helpers/operations.ts';
import { startPipeline, type Pipeline } from './helpers/pipeline.ts';

/**
 * GraphiQL in Chromium as a person uses it, on a machine that reaches nothing but Segue: the page,
 * the key in the headers editor, the docs, a query, the opening tabs, and a subscription typed in
 * and streaming while a worker generates against the fal emulator. Introspection is off for
 * anonymous callers (INTROSPECTION=false), as in production with GRAPHIQL=true.
 */
if (!hasChromium) console.warn('e2e-graphiql skipped: no Chromium at /usr/bin/chromium (apt-get install chromium)');

/** The README's screenshot, made by this test. */
const SCREENSHOT = new URL('../docs/graphiql-subscription.png', import.meta.url).pathname;

let p: Pipeline;
let browser: Browser;
let origin: string;

beforeAll(async () => {
  if (!hasChromium) return;
  ensureConsoleBuilt();
  mkdirSync(new URL('../docs/', import.meta.url).pathname, { recursive: true });
  [p, browser] = await Promise.all([
    startPipeline({ emulator: { latencyMs: 1000 }, inlineWorkers: 1, env: { INTROSPECTION: 'false' } }),
    launchChromium(),
  ]);
  origin = new URL(p.app.url).origin;
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await p?.close();
});

const queryEditor = (page: Page) => page.locator('.graphiql-query-editor .graphiql-editor');
const headersEditor = (page: Page) => page.locator('section[aria-label="Headers"] .graphiql-editor:not(.hidden)');

/** Replaces an editor's text, as a paste would (Monaco closes brackets behind typed keys). */
async function replaceText(page: Page, editor: Locator, text: string) {
  await editor.click();
  await page.keyboard.press('ControlOrMeta+A');
  await page.keyboard.insertText(text);
}

/** Puts the key in the active tab's headers editor. */
async function setKey(page: Page, apiKey: string) {
  await page.getByRole('button', { name: 'Headers', exact: true }).click();
  await replaceText(page, headersEditor(page), JSON.stringify({ Authorization: `Bearer ${apiKey}` }));
}

async function openTab(page: Page, name: string) {
  await page.getByRole('tab', { name }).getByRole('button', { name, exact: true }).click();
  await expect.poll(() => page.getByRole('tab', { name }).getAttribute('aria-selected')).toBe('true');
}

async function run(page: Page) {
  await page.getByRole('button', { name: /^Execute query/ }).click();
}

/** The response pane's text, without Monaco's wrapping and spacing. */
const response = async (page: Page) => (await page.locator('.graphiql-response').innerText()).replace(/\s+/g, '');

/** Every `status` the response pane showed, in order, recorded in the page as it changes. */
async function recordStatuses(page: Page) {
  await page.evaluate(() => {
    const seen: string[] = [];
    (window as unknown as { statuses: string[] }).statuses = seen;
    const pane = document.querySelector('.graphiql-response')!;
    new MutationObserver(() => {
      const status = /"status":\s*"(\w+)"/.exec(pane.textContent ?? '')?.[1];
      if (status && seen.at(-1) !== status) seen.push(status);
    }).observe(pane, { subtree: true, childList: true, characterData: true });
  });
  return () => page.evaluate(() => (window as unknown as { statuses: string[] }).statuses);
}

describe.skipIf(!hasChromium)('GraphiQL in Chromium, with nothing but Segue reachable', () => {
  it('loads, answers a query with the key from the headers editor, runs the opening tabs and streams a typed subscription from its snapshot to COMPLETED', { timeout: 90_000 }, async () => {
    const account = await createTestAccount(p.app.segue, 'GraphiQL explorer');
    const { page, outside, violations, errors, close } = await sameOriginPage(browser, origin, { viewport: { width: 1360, height: 760 } });
    try {
      await page.goto(`${p.app.url}/graphql`);
      await expect.poll(() => page.getByRole('tab').allInnerTexts()).toEqual(['Recent', 'Create', 'Follow']);

      // The key in the headers editor: GraphiQL reads the schema again, so the docs and
      // autocompletion work although anonymous introspection is off.
      await setKey(page, account.apiKey);
      await page.getByRole('button', { name: 'Show Documentation Explorer' }).click();
      await page.locator('.graphiql-doc-explorer').getByRole('link', { name: 'Subscription' }).waitFor();

      await run(page);
      await expect.poll(() => response(page), { timeout: 10_000 }).toContain('"name":"GraphiQLexplorer"');

      // The mutation tab, as it stands: a transition from the sample images, queued.
      await openTab(page, 'Create');
      await setKey(page, account.apiKey);
      await run(page);
      await expect.poll(() => response(page), { timeout: 10_000 }).toMatch(/"createTransitions":\{"transitions":\[\{"id":"[^"]+","status":"QUEUED"/);

      // A subscription typed in the Follow tab, to a transition another client will generate.
      await openTab(page, 'Follow');
      await setKey(page, account.apiKey);
      const created = await gql(p.app.graphqlUrl, account.apiKey, CreateTransitions, { input: { transitions: transitionInputs(1) } });
      const id = created.data!.createTransitions.transitions[0]!.id;
      await replaceText(page, queryEditor(page), 'subscription Watch { transitionUp');
      await page.locator('.suggest-widget').getByText('transitionUpdated', { exact: true }).waitFor();
      await page.keyboard.press('Escape');
      await replaceText(page, queryEditor(page), `subscription Watch { transitionUpdated(id: "${id}") { id status version videoUrl } }`);
      await page.getByRole('button', { name: /^Prettify query/ }).click();
      await page.getByRole('tab', { name: 'Watch' }).waitFor(); // GraphiQL has read the operation
      const statuses = await recordStatuses(page);
      await run(page);
      await expect.poll(statuses, { timeout: 10_000 }).toEqual(['DRAFT']);

      await gql(p.app.graphqlUrl, account.apiKey, GenerateBatch, { input: { transitionIds: [id] } });
      await expect.poll(async () => (await statuses()).at(-1), { timeout: 30_000 }).toBe('COMPLETED');
      const seen = await statuses();
      // From the snapshot through the worker's states to the end, in order, nothing backwards.
      const order = ['DRAFT', 'QUEUED', 'SUBMITTED', 'IN_PROGRESS', 'COMPLETED'];
      expect(seen[0]).toBe('DRAFT');
      expect(seen).toContain('IN_PROGRESS');
      expect(seen.map((s) => order.indexOf(s))).toEqual([...seen.map((s) => order.indexOf(s))].sort((a, b) => a - b));
      expect(await response(page)).toContain(`"id":"${id}"`);
      await expect.poll(() => response(page), { timeout: 10_000 }).toMatch(/"videoUrl":"http:\/\/127\.0\.0\.1:\d+\/media\//);
      // For the README: the docs closed, each editor showing its beginning.
      await page.getByRole('button', { name: 'Hide Documentation Explorer' }).click();
      for (const editor of [queryEditor(page), headersEditor(page)]) {
        await editor.click();
        await page.keyboard.press('ControlOrMeta+Home');
      }
      await page.screenshot({ path: SCREENSHOT });

      expect(outside).toEqual([]);
      expect(await violations()).toEqual([]);
      expect(errors).toEqual([]);
    } finally {
      await close();
    }
  });

  it('serves GraphiQL and the console under a Content-Security-Policy of Segue\'s origin only: nothing loads from elsewhere and an injected inline script does not run', { timeout: 60_000 }, async () => {
    const account = await createTestAccount(p.app.segue, 'Policy checker');
    const pages = [
      { path: '/graphql', ready: (page: Page) => page.getByRole('tab', { name: 'Recent' }).waitFor() },
      {
        path: '/',
        ready: async (page: Page) => {
          // Signed in, the console talks to the API over HTTP and its WebSocket.
          const keyInput = page.getByLabel('API key');
          await keyInput.fill(account.apiKey);
          await keyInput.press('Enter');
          await page.getByTestId('viewer-name').waitFor();
        },
      },
    ];
    for (const { path, ready } of pages) {
      const { page, outside, violations, errors, close } = await sameOriginPage(browser, origin);
      try {
        const policy = await policyOf(await page.goto(`${p.app.url}${path}`));
        for (const directive of ['default-src', 'script-src', 'worker-src', 'connect-src']) expect(policy[directive], `${path} ${directive}`).toEqual(["'self'"]);
        expect(policy['style-src']![0], path).toBe("'self'");
        expect(policy['style-src']!.slice(1).every((source) => source.startsWith("'nonce-")), path).toBe(true);
        expect(policy['object-src'], path).toEqual(["'none'"]);
        await ready(page);
        expect(outside, path).toEqual([]);
        expect(await violations(), path).toEqual([]);
        expect(errors, path).toEqual([]);

        // The policy is enforced, not just sent: an inline script is refused.
        await page.evaluate(() => {
          const script = document.createElement('script');
          script.textContent = 'window.injected = true';
          document.head.append(script);
        });
        expect(await page.evaluate(() => (window as unknown as { injected?: boolean }).injected ?? false), path).toBe(false);
        expect(await violations(), path).toEqual(['script-src-elem inline']);
      } finally {
        await close();
      }
    }
  });
});
