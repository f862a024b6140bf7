import { describe, expect, it } from 'vitest';
import { createAndGenerate } from '../src/domain/generation.ts';
import { startPipeline } from './helpers/pipeline.ts';

// Its own file (own database): another pipeline's workers, allowed private networks, must not take its row.
describe('without a fal key, in production network policy', () => {
  it('refuses to fetch images from private networks when ALLOW_PRIVATE_NETWORK is off: IMAGE_UNAVAILABLE, no retry', { timeout: 60_000 }, async () => {
    const strict = await startPipeline({ env: { FAL_KEY: '', FAL_PROXY_URL: '', ALLOW_PRIVATE_NETWORK: 'false' }, inlineWorkers: 1 });
    try {
      const account = await strict.account();
      // The API refuses such URLs when they are written as addresses (test/tenant-boundaries.test.ts);
      // the worker's fetch is the guard for what gets past it (a name that resolves there, a redirect,
      // a row from before). These rows get past it: made with a check that allows private networks.
      const segue = strict.app.segue;
      const lenient = { ...segue, config: { ...segue.config, media: { ...segue.config.media, allowPrivateNetwork: true } } };
      const { batch } = await createAndGenerate(lenient, account.id, {
        transitions: [{ frontImageUrl: 'http://169.254.169.254/latest/meta-data', tailImageUrl: 'http://127.0.0.1:1/x.png', prompt: 'ssrf' }],
      });
      const [row] = await strict.settled(batch!.id);
      // Found before the claim: no attempt was made at the provider, and none is retried.
      expect(row).toMatchObject({ status: 'FAILED', errorCode: 'IMAGE_UNAVAILABLE', attempts: 0, submittedAt: null });
      expect(row!.errorMessage).toMatch(/private|link-local|loopback|not allowed|refuse/i);
    } finally {
      await strict.close();
    }
  });
});
