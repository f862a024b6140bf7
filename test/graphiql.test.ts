import { parse, type OperationDefinitionNode } from 'graphql';
import { createClient as createSseClient } from 'graphql-sse';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestAccount, startTestApp, type TestApp } from './helpers/app.ts';
import { startPipeline, type Pipeline } from './helpers/pipeline.ts';
import { until } from './helpers/wait.ts';

/** GraphiQL over HTTP: its page, its files, its opening tabs. In Chromium: e2e-graphiql.test.ts. */
let p: Pipeline;
let off: TestApp;
beforeAll(async () => {
  [p, off] = await Promise.all([startPipeline({ env: { INTROSPECTION: 'false' } }), startTestApp({ GRAPHIQL: 'false' })]);
});
afterAll(async () => {
  await p?.close();
  await off?.close();
});

interface PageConfig {
  options: { defaultTabs: Array<{ query: string; variables: string }>; subscriptionsProtocol: string };
  workers: Record<string, string>;
}

async function graphiqlPage(app: TestApp) {
  const response = await fetch(app.graphqlUrl, { headers: { accept: 'text/html' } });
  const html = await response.text();
  const config = /<script id="graphiql-config" type="application\/json">(.*?)<\/script>/s.exec(html)?.[1];
  return { response, html, config: config ? (JSON.parse(config) as PageConfig) : null };
}

const policy = (header: string | null) =>
  Object.fromEntries((header ?? '').split(';').map((d) => d.trim().split(/\s+/)).map(([name, ...sources]) => [name, sources]));

describe('GraphiQL over HTTP', () => {
  it('serves its page and every file the page loads from Segue itself, under a Content-Security-Policy with a fresh nonce', async () => {
    const { response, html, config } = await graphiqlPage(p.app);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(response.headers.get('cache-control')).toBe('no-store');
    const csp = policy(response.headers.get('content-security-policy'));
    const nonce = /<link rel="stylesheet" href="[^"]+" nonce="([^"]+)"/.exec(html)?.[1];
    expect(csp['script-src']).toEqual(["'self'"]);
    expect(csp['style-src']).toEqual(["'self'", `'nonce-${nonce}'`]);
    for (const directive of ['default-src', 'worker-src', 'connect-src']) expect(csp[directive]).toEqual(["'self'"]);
    expect(csp['object-src']).toEqual(["'none'"]);
    expect(csp['frame-ancestors']).toEqual(["'none'"]);
    // A nonce is good for one page only.
    const again = await graphiqlPage(p.app);
    expect(again.response.headers.get('content-security-policy')).not.toContain(nonce);

    // Nothing inline but the options (JSON data), and nothing from another origin.
    const scripts = [...html.matchAll(/<script\b([^>]*)>/g)].map((m) => m[1]!);
    expect(scripts.filter((attributes) => !/\bsrc="/.test(attributes))).toEqual([' id="graphiql-config" type="application/json"']);
    const urls = [...html.matchAll(/\b(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
    expect(urls.filter((url) => !url.startsWith('/') && !url.startsWith('data:'))).toEqual([]);

    const files = [...urls.filter((url) => url.startsWith('/')), ...Object.values(config!.workers)];
    expect(files.map((url) => url.replace(/^\/graphql\/graphiql\/\w+\//, ''))).toEqual([
      'graphiql.css',
      'start.js',
      'graphiql.js',
      'editorWorkerService.worker.js',
      'json.worker.js',
      'graphql.worker.js',
    ]);
    for (const url of files) {
      const plain = await fetch(`${p.app.url}${url}`, { headers: { 'accept-encoding': 'identity' } });
      expect(plain.status, url).toBe(200);
      expect(plain.headers.get('content-type'), url).toMatch(url.endsWith('.css') ? /^text\/css/ : /^text\/javascript/);
      expect(plain.headers.get('cache-control'), url).toBe('public, max-age=31536000, immutable');
      const body = Buffer.from(await plain.arrayBuffer());
      // Node's fetch would unzip by itself: read the raw bytes with a plain request.
      const zipped = await fetch(`${p.app.url}${url}`, { headers: { 'accept-encoding': 'gzip' } });
      expect(zipped.headers.get('content-encoding'), url).toBe('gzip');
      expect(Number(zipped.headers.get('content-length')), url).toBeLessThan(body.length);
      await zipped.arrayBuffer();
    }
    expect(await (await fetch(`${p.app.url}/graphql/graphiql/0000/graphiql.js`)).status).toBe(404);
  });

  it('runs each opening tab as it stands once a key is set: the query, the createTransitions mutation and the transitionUpdated subscription', async () => {
    const account = await createTestAccount(p.app.segue, 'Tab runner');
    const { config } = await graphiqlPage(p.app);
    expect(config!.options.subscriptionsProtocol).toBe('GRAPHQL_SSE');
    const tabs = config!.options.defaultTabs.map((tab) => ({
      ...tab,
      variables: tab.variables ? (JSON.parse(tab.variables) as Record<string, unknown>) : {},
      operation: parse(tab.query).definitions[0] as OperationDefinitionNode,
    }));
    expect(tabs.map((t) => `${t.operation.operation} ${t.operation.name?.value}`)).toEqual([
      'query Recent',
      'mutation Create',
      'subscription Follow',
    ]);
    const [query, mutation, subscription] = tabs as [(typeof tabs)[0], (typeof tabs)[0], (typeof tabs)[0]];
    const run = async (tab: (typeof tabs)[0]) => {
      const response = await fetch(p.app.graphqlUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${account.apiKey}` },
        body: JSON.stringify({ query: tab.query, variables: tab.variables }),
      });
      return (await response.json()) as { data: Record<string, any>; errors?: unknown };
    };

    // The subscription first (it sends changes as they happen), then the mutation it will see.
    // Segue answers an SSE subscription once it listens at Redis: "connected" means live.
    const events: Array<{ id: string; status: string }> = [];
    let connected!: () => void;
    const live = new Promise<void>((resolve) => (connected = resolve));
    const client = createSseClient({
      url: p.app.graphqlUrl,
      headers: { authorization: `Bearer ${account.apiKey}` },
      retryAttempts: 0,
      on: { connected: () => connected() },
    });
    const stop = client.subscribe(
      { query: subscription.query, variables: subscription.variables },
      {
        next: (value) => events.push((value.data as { transitionUpdated: { id: string; status: string } }).transitionUpdated),
        error: () => undefined,
        complete: () => undefined,
      },
    );
    try {
      await live;
      const created = await run(mutation);
      expect(created.errors).toBeUndefined();
      const transition = created.data.createTransitions.transitions[0];
      expect(transition.status).toBe('QUEUED');
      // The sample images Segue serves itself, at the address the page was asked on.
      expect(mutation.variables).toMatchObject({
        input: { transitions: [{ frontImageUrl: `${p.app.url}/samples/front.png`, tailImageUrl: `${p.app.url}/samples/tail.png` }] },
      });
      await until(() => events.some((e) => e.id === transition.id), { what: 'the Follow tab to see the new transition' });

      const recent = await run(query);
      expect(recent.errors).toBeUndefined();
      expect(recent.data.viewer.name).toBe('Tab runner');
      expect(recent.data.transitions.edges.map((e: { node: { id: string } }) => e.node.id)).toEqual([transition.id]);
    } finally {
      stop();
      client.dispose();
    }
  });

  it('serves neither the page nor its files with GRAPHIQL=false', async () => {
    const { response, config } = await graphiqlPage(off);
    expect(response.headers.get('content-type') ?? '').not.toMatch(/text\/html/);
    expect(config).toBeNull();
    const { html } = await graphiqlPage(p.app);
    const file = /src="(\/graphql\/graphiql\/[^"]+)"/.exec(html)![1]!;
    expect((await fetch(`${off.url}${file}`)).status).toBe(404);
  });
});
