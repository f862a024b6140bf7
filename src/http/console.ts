import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';
import { staticFiles } from './static-files.ts';

/** The web console's build (npm run build:web), served at `/`. */
export const CONSOLE_DIR = fileURLToPath(new URL('../../web/dist/', import.meta.url));

export function consoleHandler() {
  const serve = staticFiles(CONSOLE_DIR, '/', {
    fallback: 'index.html',
    immutable: (path) => path.startsWith('assets/'),
  });
  return {
    available: () => existsSync(`${CONSOLE_DIR}index.html`),
    serve,
  };
}
