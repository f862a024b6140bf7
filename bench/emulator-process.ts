/**
 * The fal emulator as a process of its own (`tools/fal-emulator/main.ts`), read through its HTTP
 * controls. fal's work (completing requests, signing and posting webhooks, status streams, serving
 * videos) runs on fal's machines, not Segue's: in the bench's own process it took turns with the
 * API on one event loop, and a burst of completions showed as Segue's latency.
 * BENCH_EMULATOR=inline runs it in the bench's process instead, as before.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { startFalEmulator, type FalEmulatorOptions } from '../tools/fal-emulator/index.ts';
import type { FalCounters, FalRequestRecord } from '../tools/fal-emulator/types.ts';

export interface BenchEmulator {
  url: string;
  jwksUrl: string;
  /** Where its CPU shows in the bench's figures. */
  inline: boolean;
  counters(): Promise<FalCounters>;
  requests(): Promise<FalRequestRecord[]>;
  close(): Promise<void>;
}

export async function startBenchEmulator(options: Pick<FalEmulatorOptions, 'latencyMs'>): Promise<BenchEmulator> {
  if (process.env.BENCH_EMULATOR === 'inline') {
    const emulator = await startFalEmulator(options);
    return {
      url: emulator.url,
      jwksUrl: emulator.jwksUrl,
      inline: true,
      counters: async () => emulator.counters(),
      requests: async () => emulator.requests(),
      close: () => emulator.close(),
    };
  }
  const args = ['--import', 'tsx', 'tools/fal-emulator/main.ts', '--port', '0', ...(options.latencyMs !== undefined ? ['--latency', String(options.latencyMs)] : [])];
  // Its output after the banner goes to this process's (the emulator writes none today).
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  // A bench that crashes takes its emulator with it.
  const kill = () => child.kill('SIGKILL');
  process.once('exit', kill);
  const lines = createInterface({ input: child.stdout! });
  const [banner] = (await Promise.race([
    once(lines, 'line'),
    once(child, 'exit').then(() => ['']),
    new Promise((resolve) => setTimeout(resolve, 30_000, [''])),
  ])) as string[];
  lines.close();
  child.stdout!.pipe(process.stdout);
  const url = /listening on (\S+)/.exec(banner ?? '')?.[1];
  const jwksUrl = /FAL_JWKS_URL=(\S+)/.exec(banner ?? '')?.[1];
  if (!url || !jwksUrl) {
    kill();
    throw new Error(`the fal emulator did not start: ${banner || 'no banner within 30 s'}`);
  }
  const control = async <T>(path: string): Promise<T> => {
    const response = await fetch(`${url}/_emulator/${path}`);
    if (!response.ok) throw new Error(`emulator ${path}: ${response.status}`);
    return (await response.json()) as T;
  };
  return {
    url,
    jwksUrl,
    inline: false,
    counters: () => control<FalCounters>('counters'),
    requests: () => control<FalRequestRecord[]>('requests'),
    async close() {
      process.off('exit', kill);
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      const stuck = setTimeout(kill, 5_000);
      await exited;
      clearTimeout(stuck);
    },
  };
}
