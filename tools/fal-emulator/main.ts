/**
 * CLI: runs the fal emulator as its own process (`npm run fal:emulator -- --latency 2000`).
 * Controls over HTTP: /_emulator/counters, /requests, /faults, /config, /reset.
 */
import { parseArgs } from 'node:util';
import { startFalEmulator } from './index.ts';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '4010' },
    host: { type: 'string', default: '127.0.0.1' },
    latency: { type: 'string' },
    jitter: { type: 'string' },
    capacity: { type: 'string' },
    'api-key': { type: 'string' },
  },
});

function numberFlag(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const parsed = Number(value);
  if (!Number.isFinite(parsed) || parsed < 0) {
    console.error(`fal-emulator: --${name} must be a non-negative number (got ${value})`);
    process.exit(2);
  }
  return parsed;
}

const emulator = await startFalEmulator({
  port: numberFlag('port', values.port),
  host: values.host,
  latencyMs: numberFlag('latency', values.latency),
  latencyJitterMs: numberFlag('jitter', values.jitter),
  capacity: numberFlag('capacity', values.capacity),
  apiKey: values['api-key'] ?? null,
});

const key = values['api-key'] ?? 'anything';
console.log(
  `fal emulator listening on ${emulator.url} — run Segue with FAL_PROXY_URL=${emulator.url} FAL_KEY=${key} FAL_JWKS_URL=${emulator.jwksUrl}`,
);

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    emulator.close().then(() => process.exit(0), () => process.exit(1));
  });
}
