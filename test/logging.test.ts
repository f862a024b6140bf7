import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { createLogger, REDACT_PATHS } from '../src/logger.ts';

describe('logs', () => {
  it('never carry an API key, FAL_KEY or an Authorization header', () => {
    let out = '';
    const sink = new Writable({
      write(chunk, _enc, done) {
        out += chunk.toString();
        done();
      },
    });
    const log = pino({ redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, sink);
    log.info({ apiKey: 'sg_secret1', req: { headers: { authorization: 'Bearer sg_secret2' } } }, 'request');
    log.info({ headers: { authorization: 'Key fal-id:fal-secret3' }, connectionParams: { authorization: 'Bearer sg_secret4' } }, 'ws');
    log.info({ config: { falKey: 'fal-secret5', adminToken: 'admin-secret6' } }, 'config');
    log.info({ account: { apiKey: 'sg_secret7' } }, 'nested');
    expect(out).not.toMatch(/secret\d/);
    expect(out.match(/\[redacted\]/g)!.length).toBe(7);
  });

  it('are JSON in production and pretty only when asked', () => {
    const json = createLogger({ log: { level: 'info', pretty: false } });
    expect(json.level).toBe('info');
    // pino-pretty runs in a worker thread; asking for it must not fail.
    const pretty = createLogger({ log: { level: 'debug', pretty: true } });
    expect(pretty.level).toBe('debug');
  });
});
