import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../src/logger.ts';

/** A JSON logger as production makes it, writing into a string. */
function capture() {
  const out = { text: '' };
  const sink = new Writable({
    write(chunk, _enc, done) {
      out.text += chunk.toString();
      done();
    },
  });
  return { out, log: createLogger({ log: { level: 'info', pretty: false } }, {}, sink) };
}

describe('logs', () => {
  it('never carry an API key, FAL_KEY or an Authorization header', () => {
    const { out, log } = capture();
    log.info({ apiKey: 'sg_secret1', req: { headers: { authorization: 'Bearer sg_secret2' } } }, 'request');
    log.info({ headers: { authorization: 'Key fal-id:fal-secret3' }, connectionParams: { authorization: 'Bearer sg_secret4' } }, 'ws');
    log.info({ config: { falKey: 'fal-secret5', adminToken: 'admin-secret6' } }, 'config');
    log.info({ account: { apiKey: 'sg_secret7' } }, 'nested');
    expect(out.text).not.toMatch(/secret\d/);
    expect(out.text.match(/\[redacted\]/g)!.length).toBe(7);
  });

  it('are JSON in production and pretty only when asked', () => {
    const { out, log: json } = capture();
    expect(json.level).toBe('info');
    json.info({ transitionId: 't-1' }, 'submitted to fal');
    json.debug('not at info level');
    const lines = out.text.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toEqual([expect.objectContaining({ level: 30, transitionId: 't-1', msg: 'submitted to fal' })]);
    // pino-pretty runs in a worker thread; asking for it must not fail.
    const pretty = createLogger({ log: { level: 'debug', pretty: true } });
    expect(pretty.level).toBe('debug');
  });
});
