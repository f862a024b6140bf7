/**
 * Content-Security-Policy of the pages Segue serves (the web console and GraphiQL). Scripts,
 * styles, workers and connections come from Segue's own origin only: no CDN, no inline script,
 * nothing a third party could change. `'self'` covers ws:/wss: on the same host, so the console's
 * graphql-ws socket needs nothing more.
 */
const BASE = {
  'default-src': "'self'",
  'script-src': "'self'",
  'style-src': "'self'",
  'worker-src': "'self'",
  'connect-src': "'self'",
  'img-src': "'self' data:",
  'font-src': "'self' data:",
  'object-src': "'none'",
  'base-uri': "'none'",
  'form-action': "'self'",
  'frame-ancestors': "'none'",
};

const serialize = (directives: Record<string, string>) =>
  Object.entries(directives)
    .map(([name, value]) => `${name} ${value}`)
    .join('; ');

/**
 * The console shows the images a user types in (any URL) and plays videos from the storage's
 * public URL (the local driver, a bucket, or fal's own copy): those may come from anywhere, and
 * neither can run code.
 */
export const CONSOLE_POLICY = serialize({
  ...BASE,
  'img-src': '* data: blob:',
  'media-src': '* data: blob:',
});

/**
 * GraphiQL's editor (Monaco) writes <style> elements at run time, which carry the page's nonce
 * (assets/graphiql/start.js), and positions each line with a style attribute, which no nonce can
 * cover: style-src-attr allows those. A style attribute styles its own element and nothing else,
 * and with images, fonts and connections limited to Segue's origin (and data: URLs), CSS has no
 * way to send anything elsewhere. Its fonts and icons are data: URLs inside its stylesheet.
 */
export function graphiqlPolicy(nonce: string): string {
  return serialize({
    ...BASE,
    'style-src': `'self' 'nonce-${nonce}'`,
    'style-src-attr': "'unsafe-inline'",
  });
}
