import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { lookup as dnsLookup } from 'node:dns/promises';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { MediaError } from './errors.ts';
import { classifyAddress } from './ip-ranges.ts';

/**
 * Downloads of URLs that clients give us (front/tail images) and that providers return (videos).
 * A server that fetches arbitrary URLs can be pointed at itself or its private network (SSRF), so
 * every hop is checked: http(s) only, every address the name resolves to must be public, the
 * connection goes to the address that was checked (a custom `lookup`, so a DNS answer that
 * changes between check and connect, "DNS rebinding", cannot redirect it), and redirects are
 * followed by hand and checked the same way.
 */
export interface FetchPolicy {
  /** Allow loopback/private/link-local targets (local development, tests). Default false. */
  allowPrivateNetwork?: boolean | undefined;
  /** Hostnames trusted whatever they resolve to, e.g. an internal MinIO; exact, case-insensitive. */
  allowHosts?: readonly string[] | undefined;
  /** Resolver, default dns.lookup with all addresses; tests use it to map names to addresses. */
  lookup?: ((hostname: string) => Promise<Array<{ address: string; family: number }>>) | undefined;
}

export interface DownloadOptions extends FetchPolicy {
  /** Default 200 MB; more is FETCH_TOO_LARGE. */
  maxBytes?: number | undefined;
  /** For the whole download, all attempts and waits included. Default 2 minutes. */
  timeoutMs?: number | undefined;
  /** Retries after a network error or a 5xx (never after a 4xx). Default 3. */
  retries?: number | undefined;
  /** First backoff; doubled per retry, with jitter. Default 500 ms. */
  retryDelayMs?: number | undefined;
  /** Default 5. */
  maxRedirects?: number | undefined;
  headers?: Record<string, string> | undefined;
  signal?: AbortSignal | undefined;
}

export interface DownloadResult {
  file: string;
  bytes: number;
  contentType: string | null;
  /** The URL after redirects. */
  url: string;
  attempts: number;
}

export interface FetchTarget {
  url: URL;
  /** The address the connection will use. */
  address: string;
  family: 4 | 6;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/** Checks scheme and resolved addresses without connecting; throws FETCH_INVALID_URL or FETCH_BLOCKED. */
export async function assertFetchableUrl(url: string | URL, policy: FetchPolicy = {}): Promise<FetchTarget> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new MediaError('FETCH_INVALID_URL', `Not a URL: ${String(url).slice(0, 200)}`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new MediaError('FETCH_BLOCKED', `Only http and https URLs can be fetched, not ${parsed.protocol}`);
  }
  // WHATWG URL parsing already turns 0x7f.1, 2130706433 and friends into dotted quads.
  const host = parsed.hostname.replace(/^\[|\]$/g, '');
  if (!host) throw new MediaError('FETCH_INVALID_URL', `URL has no host: ${parsed.href}`);

  let addresses: Array<{ address: string; family: number }>;
  if (isIP(host)) addresses = [{ address: host, family: isIP(host) }];
  else {
    try {
      addresses = await (policy.lookup ?? ((name) => dnsLookup(name, { all: true, verbatim: true })))(host);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw new MediaError('FETCH_NETWORK', `Cannot resolve ${host}: ${code ?? (error as Error).message}`, {
        retryable: code !== 'ENOTFOUND',
        cause: error,
      });
    }
    if (addresses.length === 0) throw new MediaError('FETCH_NETWORK', `${host} has no addresses.`);
  }

  const trusted = policy.allowPrivateNetwork === true || (policy.allowHosts ?? []).some((h) => h.toLowerCase() === host.toLowerCase());
  if (!trusted) {
    // All of them, not just the first: the resolver's order decides which one a connection uses.
    const blocked = addresses.find((a) => classifyAddress(a.address) !== 'public');
    if (blocked) {
      throw new MediaError(
        'FETCH_BLOCKED',
        `Refusing to fetch ${parsed.origin}: ${host === blocked.address ? 'it' : `${host} resolves to ${blocked.address}, which`} is a ${classifyAddress(blocked.address)} address.`,
      );
    }
  }
  const first = addresses[0]!;
  return { url: parsed, address: first.address, family: first.family === 6 ? 6 : 4 };
}

/** Downloads `url` into `file` (written atomically); see DownloadOptions for the limits. */
export async function downloadToFile(url: string, file: string, options: DownloadOptions = {}): Promise<DownloadResult> {
  const timeoutMs = options.timeoutMs ?? 120_000;
  const retries = options.retries ?? 3;
  const timeout = AbortSignal.timeout(timeoutMs);
  const signal = options.signal ? AbortSignal.any([timeout, options.signal]) : timeout;
  const target = path.resolve(file);
  await mkdir(path.dirname(target), { recursive: true });

  for (let attempt = 1; ; attempt++) {
    try {
      const result = await attemptDownload(url, target, options, signal);
      return { ...result, attempts: attempt };
    } catch (raw) {
      const error = asDownloadError(raw, signal, timeout, timeoutMs);
      if (!error.retryable || attempt > retries || signal.aborted) throw error;
      const delay = (options.retryDelayMs ?? 500) * 2 ** (attempt - 1) * (0.75 + Math.random() / 2);
      try {
        await sleep(delay, undefined, { signal });
      } catch {
        throw asDownloadError(error, signal, timeout, timeoutMs);
      }
    }
  }
}

async function attemptDownload(url: string, file: string, options: DownloadOptions, signal: AbortSignal) {
  const maxRedirects = options.maxRedirects ?? 5;
  let current: string | URL = url;
  for (let hop = 0; ; hop++) {
    const target = await assertFetchableUrl(current, options);
    const response = await get(target, options.headers, signal);
    const status = response.statusCode ?? 0;
    const location = response.headers.location;
    if (REDIRECTS.has(status) && location) {
      response.resume();
      if (hop >= maxRedirects) {
        throw new MediaError('FETCH_TOO_MANY_REDIRECTS', `More than ${maxRedirects} redirects from ${new URL(url).origin}.`);
      }
      current = new URL(location, target.url);
      continue;
    }
    if (status < 200 || status > 299) {
      response.resume();
      throw new MediaError('FETCH_HTTP_ERROR', `${target.url.origin} answered ${status}.`, { status, retryable: status >= 500 });
    }
    const maxBytes = options.maxBytes ?? 200 * 1024 * 1024;
    const declared = Number(response.headers['content-length']);
    if (Number.isFinite(declared) && declared > maxBytes) {
      response.destroy();
      throw tooLarge(maxBytes);
    }
    const bytes = await save(response, file, maxBytes);
    return { file, bytes, contentType: response.headers['content-type'] ?? null, url: target.url.href };
  }
}

function get(target: FetchTarget, headers: Record<string, string> | undefined, signal: AbortSignal): Promise<IncomingMessage> {
  const client = target.url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const request = client.request(target.url, {
      method: 'GET',
      agent: agentFor(target),
      signal,
      headers: { 'user-agent': 'Segue media fetch', 'accept-encoding': 'identity', ...headers },
    });
    request.on('response', resolve);
    request.on('error', reject);
    request.end();
  });
}

/** Keep-alive agents by checked address, least recently used first. */
const agents = new Map<string, http.Agent>();
const AGENTS_KEPT = 64;
/** An idle kept connection closes after this (below the usual 5 s of servers' keep-alive). */
const IDLE_CONNECTION_MS = 4_000;

/**
 * The connections of one checked address: they connect only to that address, whatever DNS says
 * now (a pinned `lookup`, so a DNS answer that changes between check and connect cannot
 * redirect them), so reusing one is as safe as opening one, and saves a connect and a TLS
 * handshake per download from the same server (fal's CDN, a bucket). Each download still checks
 * its URL first; an agent that falls out of the map is not destroyed (a download may be using
 * it), its idle connections close by themselves.
 */
function agentFor(target: FetchTarget): http.Agent {
  const host = target.url.hostname.replace(/^\[|\]$/g, '');
  const key = `${target.url.protocol}//${host}@${target.address}`;
  let agent = agents.get(key);
  if (agent) {
    agents.delete(key);
    agents.set(key, agent);
    return agent;
  }
  // Node 20's happy-eyeballs connect asks for all addresses (`all: true`), older paths for one.
  const pinned = ((_hostname: string, opts: { all?: boolean }, callback: (...args: unknown[]) => void) => {
    if (opts?.all) callback(null, [{ address: target.address, family: target.family }]);
    else callback(null, target.address, target.family);
  }) as unknown as LookupFunction;
  const options = { keepAlive: true, timeout: IDLE_CONNECTION_MS, maxFreeSockets: 16, lookup: pinned };
  agent = target.url.protocol === 'https:' ? new https.Agent(options) : new http.Agent(options);
  agents.set(key, agent);
  if (agents.size > AGENTS_KEPT) agents.delete(agents.keys().next().value!);
  return agent;
}

async function save(response: IncomingMessage, file: string, maxBytes: number): Promise<number> {
  const partial = `${file}.${randomBytes(6).toString('hex')}.part`;
  let bytes = 0;
  const cap = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      bytes += chunk.length;
      callback(bytes > maxBytes ? tooLarge(maxBytes) : null, chunk);
    },
  });
  try {
    await pipeline(response, cap, createWriteStream(partial));
    await rename(partial, file);
    return bytes;
  } catch (error) {
    await rm(partial, { force: true });
    throw error;
  }
}

const tooLarge = (maxBytes: number) => new MediaError('FETCH_TOO_LARGE', `The download is larger than ${maxBytes} bytes.`);

function asDownloadError(error: unknown, signal: AbortSignal, timeout: AbortSignal, timeoutMs: number): MediaError {
  if (timeout.aborted) return new MediaError('FETCH_TIMEOUT', `The download took longer than ${timeoutMs} ms.`, { retryable: true, cause: error });
  if (signal.aborted) return new MediaError('MEDIA_ABORTED', 'The download was aborted.', { cause: error });
  if (error instanceof MediaError) return error;
  const code = (error as NodeJS.ErrnoException).code;
  // A bad certificate stays bad; refused, reset, unreachable, cut off mid-body may well work later.
  const tls = typeof code === 'string' && /CERT|SSL|TLS|SIGNATURE/.test(code);
  return new MediaError('FETCH_NETWORK', `Download failed: ${code ?? (error as Error).message}`, { retryable: !tls, cause: error });
}
