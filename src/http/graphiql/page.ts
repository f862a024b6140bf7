import { randomBytes } from 'node:crypto';
import type { GraphiQLOptions, Plugin } from 'graphql-yoga';
import type { Config } from '../../config.ts';
import { graphiqlPolicy } from '../csp.ts';
import { graphiqlAssets, type WorkerLabel } from './assets.ts';
import { defaultTabs } from './tabs.ts';

const TITLE = 'Segue GraphQL';
/** The console's mark, as an SVG (the page's icon and GraphiQL's logo). */
const LOGO =
  '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32" width="28" height="28" aria-hidden="true">' +
  '<rect width="32" height="32" rx="8" fill="#5b5bd6"/><path d="M9 22 L16 10 L23 22" stroke="white" stroke-width="3" fill="none"/></svg>';

/** GraphiQL's options for one page, with the nonce of that page's styles. */
type PageOptions = GraphiQLOptions & { nonce: string };

/** The nonce of each GraphiQL page response, for its Content-Security-Policy header. */
const nonces = new WeakMap<Request, string>();

/**
 * Yoga's `graphiql` option: GraphiQL's options for one page. Subscriptions go over GraphQL over
 * SSE, which sends the tab's headers (its API key) with each subscription, as queries do; the
 * console's graphql-ws socket gets its key in connectionParams instead, which GraphiQL's headers
 * editor does not fill.
 */
export function graphiqlOptions(config: Config) {
  return (request: Request): PageOptions => {
    const nonce = randomBytes(16).toString('base64');
    nonces.set(request, nonce);
    return {
      title: TITLE,
      logo: LOGO,
      defaultTabs: defaultTabs(config.publicUrl ?? new URL(request.url).origin),
      subscriptionsProtocol: 'GRAPHQL_SSE',
      // Kept in sessionStorage (assets/graphiql/start.js), never localStorage.
      shouldPersistHeaders: true,
      nonce,
    };
  };
}

const WORKERS: WorkerLabel[] = ['editorWorkerService', 'json', 'graphql'];

const escapeHtml = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/**
 * Yoga's `renderGraphiQL` option: the page, which loads GraphiQL (from
 * @graphql-yoga/render-graphiql) as files of Segue's own origin, and nothing inline but its
 * options as JSON data.
 */
export async function renderGraphiQLPage(options: GraphiQLOptions): Promise<string> {
  const { nonce, ...graphiql } = options as PageOptions;
  const assets = await graphiqlAssets();
  const config = {
    options: graphiql,
    workers: Object.fromEntries(WORKERS.map((label) => [label, assets.url(`${label}.worker.js`)])),
  };
  // `<` escaped, so no value can close the data block.
  const json = JSON.stringify(config).replace(/</g, '\\u003c');
  const icon = `data:image/svg+xml,${encodeURIComponent(LOGO)}`;
  return `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>${escapeHtml(graphiql.title ?? TITLE)}</title>
    <link rel="icon" href="${escapeHtml(icon)}" />
    <link rel="stylesheet" href="${assets.url('graphiql.css')}" nonce="${nonce}" />
    <script id="graphiql-config" type="application/json">${json}</script>
    <script src="${assets.url('start.js')}" defer></script>
    <script src="${assets.url('graphiql.js')}" defer></script>
  </head>
  <body class="no-focus-outline">
    <noscript>GraphiQL needs JavaScript. The API itself answers POST requests on this address.</noscript>
    <div id="root"></div>
  </body>
</html>
`;
}

/** The GraphiQL page's Content-Security-Policy, with the nonce its options were made with. */
export function useGraphiQLPolicy(): Plugin {
  return {
    onResponse({ request, response }) {
      const nonce = nonces.get(request);
      if (!nonce) return;
      response.headers.set('content-security-policy', graphiqlPolicy(nonce));
      response.headers.delete('content-type'); // Yoga wrote `Content-Type`; set() would add a second one
      response.headers.set('content-type', 'text/html; charset=utf-8');
      // Each page has its own nonce: never reuse one from a cache.
      response.headers.set('cache-control', 'no-store');
    },
  };
}
