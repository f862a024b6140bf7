import type { IncomingMessage, ServerResponse } from 'node:http';
import { readJson, sendJson } from './http.ts';
import type { ConfigPatch, FalEmulator, FalFault } from './types.ts';

export type Controls = Pick<FalEmulator, 'counters' | 'requests' | 'configure' | 'inject' | 'clearFaults' | 'reset'>;

/**
 * /_emulator/*: the programmatic controls over HTTP, for an emulator running as its own process.
 * JSON has no Infinity, so `null` stands for it in `times` and `capacity`.
 */
export async function handleControl(controls: Controls, req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
  const route = `${req.method ?? 'GET'} ${path}`;
  switch (route) {
    case 'GET /_emulator/counters':
      return sendJson(res, 200, controls.counters());
    case 'GET /_emulator/requests':
      return sendJson(res, 200, controls.requests());
    case 'DELETE /_emulator/faults':
      controls.clearFaults();
      return sendJson(res, 200, { ok: true });
    case 'POST /_emulator/reset':
      controls.reset();
      return sendJson(res, 200, { ok: true });
    case 'POST /_emulator/faults':
    case 'POST /_emulator/config': {
      const body = await readJson(req);
      if (!body.ok || typeof body.value !== 'object' || body.value === null) {
        return sendJson(res, 400, { detail: 'Expected a JSON object' });
      }
      const value = body.value as Record<string, unknown>;
      try {
        if (path === '/_emulator/faults') controls.inject(nullAsInfinity(value, 'times') as FalFault);
        else controls.configure(nullAsInfinity(value, 'capacity') as ConfigPatch);
      } catch (error) {
        return sendJson(res, 400, { detail: (error as Error).message });
      }
      return sendJson(res, 200, { ok: true });
    }
    default:
      return sendJson(res, 404, { detail: `No control route for ${route}` });
  }
}

function nullAsInfinity(value: Record<string, unknown>, key: string): Record<string, unknown> {
  return value[key] === null ? { ...value, [key]: Infinity } : value;
}
