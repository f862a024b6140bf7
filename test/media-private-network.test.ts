import { describe, expect, it } from 'vitest';
import { createAndGenerate } from '../src/domain/generation.ts';
import { startPipeline } from './helpers/pipeline.ts';

// Its own file (own database): another pipeline's workers, allowed private networks, must not take its row.
describe('without a fal key, in production network policy', () => {
  it('refuses to fetch images from private networks when ALLOW_PRIVATE_NETWORK is off: IMAGE_UNAVAILABLE, no retry', { timeout: 60_000 }, async () => {
    const strict = await startPipeline({ env: { FAL_KEY: '', FAL_PROXY_URL: '', ALLOW_PRIVATE_NETWORK: 'false' }, inlineWorkers: 1 });
    try {
      const account = await strict.account();
      const { batch } = await createAndGenerate(strict.app.segue, account.id, {
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
