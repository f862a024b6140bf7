import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { classifyAddress } from '../src/media/ip-ranges.ts';
import { assertFetchableUrl, downloadToFile } from '../src/media/safe-fetch.ts';

let dir: string;
let server: http.Server;
let port: number;
let base: string;
/** Requests the server saw, by path; a refused fetch must leave this empty. */
let seen: string[] = [];
let hostHeaders: string[] = [];
const counters = new Map<string, number>();
const MB = 1024 * 1024;

const routes: Record<string, (req: http.IncomingMessage, res: http.ServerResponse, count: number) => void> = {
  '/ok': (_req, res) => {
    res.writeHead(200, { 'content-type': 'image/png' });
    res.end('hello image');
  },
  '/big': (_req, res) => {
    res.writeHead(200, { 'content-length': String(2 * MB) });
    res.end(Buffer.alloc(2 * MB));
  },
  // No content-length: the cap has to count while streaming.
  '/big-chunked': (_req, res) => {
    res.writeHead(200);
    for (let i = 0; i < 32; i++) res.write(Buffer.alloc(64 * 1024));
    res.end();
  },
  '/slow': (_req, res) => {
    res.writeHead(200);
    res.write('a little');
    // ...and nothing more until the client gives up.
  },
  '/flaky': (_req, res, count) => {
    if (count === 1) {
      res.writeHead(503);
      res.end('try later');
    } else routes['/ok']!(_req, res, count);
  },
  '/always-503': (_req, res) => {
    res.writeHead(503);
    res.end();
  },
  '/reset-once': (req, res, count) => {
    if (count === 1) req.socket.destroy();
    else routes['/ok']!(req, res, count);
  },
  '/missing': (_req, res) => {
    res.writeHead(404);
    res.end();
  },
  '/to-metadata': (_req, res) => {
    res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data/' });
    res.end();
  },
  '/to-localhost': (_req, res) => {
    res.writeHead(301, { location: `http://localhost:${port}/ok` });
    res.end();
  },
  '/to-file': (_req, res) => {
    res.writeHead(302, { location: 'file:///etc/passwd' });
    res.end();
  },
  '/relative': (_req, res) => {
    res.writeHead(307, { location: '/ok' });
    res.end();
  },
  '/loop': (_req, res, count) => {
    res.writeHead(302, { location: `/loop?${count}` });
    res.end();
  },
};

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'segue-media-fetch-'));
  server = http.createServer((req, res) => {
    const route = new URL(req.url ?? '/', 'http://x').pathname;
    seen.push(route);
    hostHeaders.push(req.headers.host ?? '');
    const count = (counters.get(route) ?? 0) + 1;
    counters.set(route, count);
    const handler = routes[route];
    if (handler) handler(req, res, count);
    else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
  base = `http://127.0.0.1:${port}`;
});
beforeEach(() => {
  seen = [];
  hostHeaders = [];
  counters.clear();
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

const target = (name: string) => path.join(dir, name);
const local = { allowPrivateNetwork: true, retryDelayMs: 10 };

describe('downloadToFile', () => {
  it('downloads from a local server when private networks are allowed', async () => {
    const result = await downloadToFile(`${base}/ok`, target('ok.png'), local);
    expect(result).toMatchObject({ bytes: 11, contentType: 'image/png', url: `${base}/ok`, attempts: 1 });
    expect(await readFile(target('ok.png'), 'utf8')).toBe('hello image');
  });

  it.each([
    ['127.0.0.1', () => `${base}/ok`],
    ['localhost', () => `http://localhost:${port}/ok`],
    ['10.x', () => 'http://10.1.2.3/image.png'],
    ['cloud metadata', () => 'http://169.254.169.254/latest/meta-data/'],
    ['[::1]', () => `http://[::1]:${port}/ok`],
    ['IPv4-mapped [::ffff:127.0.0.1]', () => `http://[::ffff:127.0.0.1]:${port}/ok`],
    ['IPv4-mapped in hex [::ffff:7f00:1]', () => `http://[::ffff:7f00:1]:${port}/ok`],
    ['127.0.0.1 written as 0x7f.1', () => `http://0x7f.1:${port}/ok`],
    ['127.0.0.1 written as 2130706433', () => `http://2130706433:${port}/ok`],
    ['0.0.0.0', () => `http://0.0.0.0:${port}/ok`],
    ['CGNAT 100.64/10', () => 'http://100.100.1.1/x'],
    ['unique local fd00::/8', () => 'http://[fd12::1]/x'],
    ['link-local fe80::/10', () => 'http://[fe80::1]/x'],
  ])('refuses %s without connecting', async (_name, url) => {
    const error = await downloadToFile(url(), target('refused'), { retries: 3 }).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'MediaError', code: 'FETCH_BLOCKED', retryable: false });
    expect(seen).toEqual([]);
    await expect(readdir(dir)).resolves.not.toContain('refused');
  });

  it('refuses schemes other than http(s)', async () => {
    for (const url of ['file:///etc/passwd', 'ftp://example.com/a.png', 'gopher://127.0.0.1:70/']) {
      await expect(assertFetchableUrl(url)).rejects.toMatchObject({ code: 'FETCH_BLOCKED' });
    }
    await expect(assertFetchableUrl('not a url')).rejects.toMatchObject({ code: 'FETCH_INVALID_URL' });
  });

  it('refuses a host name when any of its addresses is private', async () => {
    const lookup = async () => [
      { address: '93.184.216.34', family: 4 },
      { address: '10.0.0.5', family: 4 },
    ];
    await expect(assertFetchableUrl('https://images.example.com/a.png', { lookup })).rejects.toMatchObject({ code: 'FETCH_BLOCKED' });
    const target = await assertFetchableUrl('https://images.example.com/a.png', { lookup: async () => [{ address: '93.184.216.34', family: 4 }] });
    expect(target).toMatchObject({ address: '93.184.216.34', family: 4 });
  });

  it('connects to the address it checked, not to a second DNS answer', async () => {
    // The name does not exist in DNS: only the checked answer can have brought the request here.
    const lookup = async () => [{ address: '127.0.0.1', family: 4 }];
    const result = await downloadToFile(`http://media.invalid:${port}/ok`, target('pinned.png'), { ...local, lookup });
    expect(result.bytes).toBe(11);
    expect(hostHeaders).toEqual([`media.invalid:${port}`]);
  });

  it('keeps its connection to a checked address for the next download, and never takes it to another address', async () => {
    const ports: number[] = [];
    const onRequest = (req: http.IncomingMessage) => ports.push(req.socket.remotePort!);
    server.on('request', onRequest);
    try {
      let answer = '127.0.0.1';
      const lookup = async () => [{ address: answer, family: 4 }];
      const url = `http://kept.invalid:${port}/ok`;
      await downloadToFile(url, target('kept-1.png'), { ...local, lookup });
      await downloadToFile(url, target('kept-2.png'), { ...local, lookup });
      // One connection for both (the same client port), not a connect per download.
      expect(ports).toHaveLength(2);
      expect(ports[1]).toBe(ports[0]);
      // The name now resolves elsewhere (nothing listens on 127.0.0.2 at this port): the kept
      // connection to the first address is not used for it.
      answer = '127.0.0.2';
      await expect(downloadToFile(url, target('kept-3.png'), { ...local, lookup, retries: 0 })).rejects.toMatchObject({ code: 'FETCH_NETWORK' });
      expect(ports).toHaveLength(2);
    } finally {
      server.off('request', onRequest);
    }
  });

  it('refuses a redirect to a private address, checking every hop', async () => {
    // The first hop is trusted by name; the hops it redirects to are not.
    const policy = { allowHosts: ['127.0.0.1'], retryDelayMs: 10 };
    await expect(downloadToFile(`${base}/to-metadata`, target('r1'), policy)).rejects.toMatchObject({ code: 'FETCH_BLOCKED' });
    await expect(downloadToFile(`${base}/to-localhost`, target('r2'), policy)).rejects.toMatchObject({ code: 'FETCH_BLOCKED' });
    await expect(downloadToFile(`${base}/to-file`, target('r3'), policy)).rejects.toMatchObject({ code: 'FETCH_BLOCKED' });
    // One request each: the redirect targets were never contacted, and nothing was retried.
    expect(seen).toEqual(['/to-metadata', '/to-localhost', '/to-file']);
  });

  it('follows allowed redirects, up to a limit', async () => {
    const result = await downloadToFile(`${base}/relative`, target('relative.png'), local);
    expect(result).toMatchObject({ url: `${base}/ok`, bytes: 11 });
    await expect(downloadToFile(`${base}/loop`, target('loop'), { ...local, maxRedirects: 3 })).rejects.toMatchObject({
      code: 'FETCH_TOO_MANY_REDIRECTS',
    });
    expect(counters.get('/loop')).toBe(4);
  });

  it('enforces the size cap, from the declared length or while streaming, and keeps no partial file', async () => {
    await expect(downloadToFile(`${base}/big`, target('big'), { ...local, maxBytes: MB })).rejects.toMatchObject({
      code: 'FETCH_TOO_LARGE',
      retryable: false,
    });
    await expect(downloadToFile(`${base}/big-chunked`, target('big'), { ...local, maxBytes: MB })).rejects.toMatchObject({
      code: 'FETCH_TOO_LARGE',
    });
    expect(counters.get('/big-chunked')).toBe(1);
    expect((await readdir(dir)).filter((f) => f.startsWith('big'))).toEqual([]);
    const fits = await downloadToFile(`${base}/big`, target('big'), { ...local, maxBytes: 2 * MB });
    expect(fits.bytes).toBe(2 * MB);
  });

  it('enforces the total timeout', async () => {
    const started = Date.now();
    const error = await downloadToFile(`${base}/slow`, target('slow'), { ...local, timeoutMs: 300 }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'FETCH_TIMEOUT', retryable: true });
    expect(Date.now() - started).toBeLessThan(2_000);
    expect((await readdir(dir)).filter((f) => f.startsWith('slow'))).toEqual([]);
  });

  it('retries a 503 and a dropped connection, then succeeds', async () => {
    const flaky = await downloadToFile(`${base}/flaky`, target('flaky.png'), local);
    expect(flaky.attempts).toBe(2);
    expect(seen).toEqual(['/flaky', '/flaky']);
    expect(await readFile(target('flaky.png'), 'utf8')).toBe('hello image');

    const reset = await downloadToFile(`${base}/reset-once`, target('reset.png'), local);
    expect(reset.attempts).toBe(2);
  });

  it('gives up after its retries on 5xx, and never retries a 4xx', async () => {
    await expect(downloadToFile(`${base}/always-503`, target('x'), { ...local, retries: 2 })).rejects.toMatchObject({
      code: 'FETCH_HTTP_ERROR',
      status: 503,
      retryable: true,
    });
    expect(counters.get('/always-503')).toBe(3);
    await expect(downloadToFile(`${base}/missing`, target('x'), { ...local, retries: 2 })).rejects.toMatchObject({
      code: 'FETCH_HTTP_ERROR',
      status: 404,
      retryable: false,
    });
    expect(counters.get('/missing')).toBe(1);
  });
});

describe('classifyAddress', () => {
  it.each([
    ['8.8.8.8', 'public'],
    ['93.184.216.34', 'public'],
    ['2606:4700:4700::1111', 'public'],
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['::1', 'loopback'],
    ['0.0.0.0', 'unspecified'],
    ['::', 'unspecified'],
    ['10.0.0.1', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['172.32.0.1', 'public'],
    ['192.168.1.1', 'private'],
    ['169.254.169.254', 'link-local'],
    ['100.64.0.1', 'shared'],
    ['100.128.0.1', 'public'],
    ['224.0.0.1', 'multicast'],
    ['255.255.255.255', 'reserved'],
    ['fc00::1', 'private'],
    ['fdff:ffff::1', 'private'],
    ['fe80::1%eth0', 'link-local'],
    ['ff02::1', 'multicast'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['::ffff:169.254.169.254', 'link-local'],
    ['::ffff:8.8.8.8', 'public'],
    ['64:ff9b::10.0.0.1', 'private'],
    ['2002:7f00:1::', 'loopback'],
    ['::127.0.0.1', 'reserved'],
    ['not-an-ip', 'invalid'],
  ])('%s is %s', (address, kind) => {
    expect(classifyAddress(address)).toBe(kind);
  });
});
