import { isIPv4, isIPv6 } from 'node:net';

/**
 * Which addresses a server-side fetch may connect to. A URL a client hands us must not reach the
 * machine itself, the cloud's metadata service (169.254.169.254), or anything else on the private
 * side of the network; so only globally routable unicast addresses count as public. IPv6 forms
 * that carry an IPv4 address (mapped ::ffff:a.b.c.d, NAT64, 6to4) are judged by that address.
 */
export type AddressKind =
  | 'public'
  | 'invalid'
  | 'unspecified'
  | 'loopback'
  | 'private'
  | 'link-local'
  | 'shared'
  | 'multicast'
  | 'reserved'
  | 'documentation';

type Range = [prefix: number[], bits: number, kind: Exclude<AddressKind, 'public' | 'invalid'>];

// IANA IPv4 special-purpose registry, the parts that matter for outbound requests.
const V4_RANGES: Range[] = [
  [[0, 0, 0, 0], 8, 'unspecified'], // "this network"; 0.0.0.0 reaches localhost on Linux
  [[10, 0, 0, 0], 8, 'private'],
  [[100, 64, 0, 0], 10, 'shared'], // carrier-grade NAT
  [[127, 0, 0, 0], 8, 'loopback'],
  [[169, 254, 0, 0], 16, 'link-local'], // includes cloud metadata endpoints
  [[172, 16, 0, 0], 12, 'private'],
  [[192, 0, 0, 0], 24, 'reserved'], // IETF protocol assignments
  [[192, 0, 2, 0], 24, 'documentation'],
  [[192, 88, 99, 0], 24, 'reserved'], // 6to4 relay anycast
  [[192, 168, 0, 0], 16, 'private'],
  [[198, 18, 0, 0], 15, 'reserved'], // benchmarking
  [[198, 51, 100, 0], 24, 'documentation'],
  [[203, 0, 113, 0], 24, 'documentation'],
  [[224, 0, 0, 0], 4, 'multicast'],
  [[240, 0, 0, 0], 4, 'reserved'], // includes 255.255.255.255
];

export function classifyAddress(address: string): AddressKind {
  if (isIPv4(address)) return classifyV4(address.split('.').map(Number));
  if (isIPv6(address)) {
    const groups = parseV6(address);
    return groups ? classifyV6(groups) : 'invalid';
  }
  return 'invalid';
}

export const isPublicAddress = (address: string) => classifyAddress(address) === 'public';

function classifyV4(octets: number[]): AddressKind {
  for (const [prefix, bits, kind] of V4_RANGES) if (matches(octets, prefix, bits, 8)) return kind;
  return 'public';
}

function classifyV6(g: number[]): AddressKind {
  const v4 = (hi: number, lo: number) => classifyV4([hi >> 8, hi & 0xff, lo >> 8, lo & 0xff]);
  const zeros = (from: number, to: number) => g.slice(from, to).every((x) => x === 0);
  if (zeros(0, 8)) return 'unspecified';
  if (zeros(0, 7) && g[7] === 1) return 'loopback';
  if (zeros(0, 5) && g[5] === 0xffff) return v4(g[6]!, g[7]!); // ::ffff:a.b.c.d, IPv4-mapped
  if (zeros(0, 4) && g[4] === 0xffff && g[5] === 0) return v4(g[6]!, g[7]!); // ::ffff:0:a.b.c.d
  if (g[0] === 0x64 && g[1] === 0xff9b && zeros(2, 6)) return v4(g[6]!, g[7]!); // NAT64 64:ff9b::/96
  if (g[0] === 0x64 && g[1] === 0xff9b && g[2] === 1) return 'private'; // local-use NAT64
  if (g[0] === 0x2002) return v4(g[1]!, g[2]!); // 6to4
  if (g[0] === 0x2001 && g[1] === 0) return 'reserved'; // Teredo: the client address is obfuscated
  if (g[0] === 0x2001 && g[1] === 0xdb8) return 'documentation';
  if ((g[0]! & 0xfe00) === 0xfc00) return 'private'; // fc00::/7 unique local
  if ((g[0]! & 0xffc0) === 0xfe80) return 'link-local';
  if ((g[0]! & 0xffc0) === 0xfec0) return 'private'; // deprecated site-local
  if ((g[0]! & 0xff00) === 0xff00) return 'multicast';
  // Everything outside 2000::/3 (global unicast) is unassigned or special: ::/96 IPv4-compatible,
  // 100::/64 discard, ...
  if ((g[0]! & 0xe000) !== 0x2000) return 'reserved';
  return 'public';
}

function matches(value: number[], prefix: number[], bits: number, width: number) {
  for (let i = 0; bits > 0; i++, bits -= width) {
    const mask = bits >= width ? (1 << width) - 1 : ((1 << width) - 1) ^ ((1 << (width - bits)) - 1);
    if (((value[i] ?? 0) & mask) !== ((prefix[i] ?? 0) & mask)) return false;
  }
  return true;
}

/** Eight 16-bit groups, or null. Accepts `::` compression, an IPv4 tail and a zone (`%eth0`). */
function parseV6(address: string): number[] | null {
  let text = address.split('%')[0]!.toLowerCase();
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (tail.includes('.')) {
    if (!isIPv4(tail)) return null;
    const [a, b, c, d] = tail.split('.').map(Number) as [number, number, number, number];
    text = `${text.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const part = (s: string | undefined) => (s ? s.split(':') : []);
  const head = part(halves[0]);
  const rest = part(halves[1]);
  const fill = halves.length === 2 ? 8 - head.length - rest.length : 0;
  if (fill < 0 || (halves.length === 1 && head.length !== 8)) return null;
  const groups = [...head, ...Array<string>(fill).fill('0'), ...rest];
  if (groups.length !== 8 || !groups.every((x) => /^[0-9a-f]{1,4}$/.test(x))) return null;
  return groups.map((x) => parseInt(x, 16));
}
