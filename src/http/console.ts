import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';
import { CONSOLE_POLICY } from './csp.ts';
import { staticFiles } from './static-files.ts';

/** The web console's build (npm run build:web), served at `/`. */
export const CONSOLE_DIR = fileURLToPath(new URL('../../web/dist/', import.meta.url));

export function consoleHandler() {
  const serve = staticFiles(CONSOLE_DIR, '/', {
    fallback: 'index.html',
    immutable: (path) => path.startsWith('assets/'),
    headers: { 'content-security-policy': CONSOLE_POLICY },
  });
  return {
    available: () => existsSync(`${CONSOLE_DIR}index.html`),
    serve,
  };
}
