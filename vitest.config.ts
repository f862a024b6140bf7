import { createRequire } from 'node:module';
import { defineConfig } from 'vitest/config';

const require = createRequire(import.meta.url);

// The suite's own database, recreated from the migrations; never the development one.
const env = {
  NODE_ENV: 'test',
  DATABASE_URL: process.env.TEST_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/segue_test',
  REDIS_URL: process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379',
  // Tests provoke failures on purpose; their warnings would bury the report.
  LOG_LEVEL: process.env.LOG_LEVEL ?? 'error',
  LOG_PRETTY: 'false',
};
// globalSetup runs in this process and child processes inherit it: give them the same values.
Object.assign(process.env, env);

export default defineConfig({
  resolve: {
    // Node loads graphql's CJS build for Pothos and Yoga (no "exports" map); Vite would pick the
    // .mjs one for our sources. One copy only, or graphql's realm checks fail.
    alias: [{ find: /^graphql$/, replacement: require.resolve('graphql') }],
  },
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/helpers/global-setup.ts'],
    setupFiles: ['test/helpers/per-file-db.ts'],
    // Files share one PostgreSQL and one Redis; each test makes its own accounts and queue names,
    // but the child-process suites load the 2 cores enough that files run one at a time.
    fileParallelism: false,
    // The JSON report feeds the one-line summary that .ci/run prints last.
    reporters: ['default', ['json', { outputFile: 'test/artifacts/vitest.json' }]],
    testTimeout: 30_000,
    // expect.poll's own default (1 s) is shorter than a busy CI machine sometimes needs for a
    // browser to render or a child process to answer; a poll that passes returns as soon as it does.
    expect: { poll: { timeout: 5_000 } },
    hookTimeout: 60_000,
    env,
  },
});
