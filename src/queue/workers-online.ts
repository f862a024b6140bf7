import type { WorkerInfo } from '../domain/ports.ts';

/** BullMQ names each worker connection `<prefix>:<queue>:w:<name>`; Segue's names are host:pid:concurrency. */
export const workerName = (host: string, pid: number, concurrency: number) => `${host}:${pid}:${concurrency}`;

/** The workers behind a queue's named connections (CLIENT LIST entries: name, age, addr, ...), one per worker. */
export function workersOf(clients: ReadonlyArray<Record<string, string>>): WorkerInfo[] {
  const byName = new Map<string, WorkerInfo>();
  // CLIENT LIST gives each connection's age in whole seconds: so is a start (to within a second
  // of Redis' clock), not a millisecond figure that would change from one call to the next.
  const now = Math.floor(Date.now() / 1000);
  for (const client of clients) {
    const raw = client.rawname ?? '';
    const name = raw.includes(':w:') ? raw.slice(raw.indexOf(':w:') + 3) : raw;
    const [host, pid, concurrency] = name.split(':');
    const startedAt = new Date((now - Number(client.age ?? 0)) * 1000);
    const known = byName.get(name);
    // A worker holds more than one connection; the oldest tells when it started.
    if (!known || startedAt < known.startedAt) {
      byName.set(name, {
        name,
        host: host ?? name,
        pid: Number.isInteger(Number(pid)) && pid ? Number(pid) : null,
        concurrency: Number.isInteger(Number(concurrency)) && concurrency ? Number(concurrency) : null,
        startedAt,
        address: client.addr ?? '',
      });
    }
  }
  return [...byName.values()].sort((a, b) => a.name.localeCompare(b.name));
}

/** CLIENT LIST's answer: one line per connection of `key=value` fields. */
export function parseClientList(list: string): Array<Record<string, string>> {
  return list
    .split(/\r?\n/)
    .filter(Boolean)
    .map((line) =>
      Object.fromEntries(
        line
          .split(' ')
          .filter((field) => field.includes('='))
          .map((field) => [field.slice(0, field.indexOf('=')), field.slice(field.indexOf('=') + 1)]),
      ),
    );
}
