import { fileURLToPath } from 'node:url';
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';
import { typedDocuments } from './typed-documents-plugin';

const webDir = fileURLToPath(new URL('.', import.meta.url));
const repoDir = fileURLToPath(new URL('..', import.meta.url));
const generatedDocuments = fileURLToPath(new URL('../src/generated/gql/graphql.ts', import.meta.url));

/**
 * The web console. `npm run build:web` runs from the repository root, so the root is pinned to
 * web/ and the output to web/dist/, which the API serves at `/` (src/http/console.ts).
 */
export default defineConfig({
  root: webDir,
  base: '/',
  plugins: [typedDocuments(generatedDocuments), react()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    assetsDir: 'assets',
  },
  server: {
    // The typed documents are generated outside web/ (src/generated/gql).
    fs: { allow: [repoDir] },
    // `npx vite --config web/vite.config.ts` against `npm start` on :4000: same-origin /graphql.
    proxy: { '/graphql': { target: 'http://localhost:4000', ws: true } },
  },
});
