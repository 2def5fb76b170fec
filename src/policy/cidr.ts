/**
 * IPv4 and IPv6 CIDR sets. Addresses become 128-bit BigInts (IPv4 as IPv4-mapped IPv6), so an
 * IPv4 client reaching a dual-stack listener as `::ffff:10.0.0.1` matches `10.0.0.0/8`.
 * Matching costs one mask per distinct prefix length, not one test per range.
 */
import { isIPv4, isIPv6 } from 'node:net';

const MAPPED_PREFIX = 0xffffn << 32n;

function v4ToBig(s: string): bigint {
  const p = s.split('.');
  let n = 0n;
  for (const x of p) n = (n << 8n) | BigInt(Number(x));
  return MAPPED_PREFIX | n;
}

function v6ToBig(input: string): bigint | undefined {
  let s = input;
  const zone = s.indexOf('%');
  if (zone !== -1) s = s.slice(0, zone);
  if (!isIPv6(s)) return undefined;
  let tail: number[] = [];
  const lastColon = s.lastIndexOf(':');
  const maybeV4 = s.slice(lastColon + 1);
  if (maybeV4.includes('.')) {
    const v4 = v4ToBig(maybeV4) & 0xffffffffn;
    tail = [Number(v4 >> 16n), Number(v4 & 0xffffn)];
    s = s.slice(0, lastColon + 1) + '0'; // placeholder group, replaced below
  }
  const halves = s.split('::');
  const parse = (h: string): number[] => (h === '' ? [] : h.split(':').map((g) => parseInt(g, 16)));
  let groups: number[];
  if (halves.length === 2) {
    const head = parse(halves[0]!);
    let rest = parse(halves[1]!);
    if (tail.length) rest = rest.slice(0, -1);
    const fill = 8 - head.length - rest.length - tail.length;
    groups = [...head, ...new Array<number>(fill).fill(0), ...rest, ...tail];
  } else {
    groups = parse(s);
    if (tail.length) groups = [...groups.slice(0, -1), ...tail];
  }
  if (groups.length !== 8) return undefined;
  let n = 0n;
  for (const g of groups) n = (n << 16n) | BigInt(g);
  return n;
}

let lastAddr: string | undefined;
let lastValue: bigint | undefined;

/** The address as a 128-bit number, or undefined when it is not an IP address. */
export function ipToBigInt(addr: string): bigint | undefined {
  // One-entry memo: a list filter or a request decides many rules for the same address.
  if (addr === lastAddr) return lastValue;
  const v = isIPv4(addr) ? v4ToBig(addr) : v6ToBig(addr);
  lastAddr = addr;
  lastValue = v;
  return v;
}

export class CidrSet {
  /** prefix length (in the 128-bit space) -> set of network numbers. */
  private readonly byPrefix = new Map<number, Set<bigint>>();
  private readonly masks: [number, bigint][] = [];

  constructor(cidrs: readonly string[]) {
    for (const c of cidrs) {
      const slash = c.indexOf('/');
      const addr = slash === -1 ? c : c.slice(0, slash);
      const v4 = isIPv4(addr);
      const n = ipToBigInt(addr);
      if (n === undefined) throw new Error(`not an IP address or CIDR: ${c}`);
      const bits = slash === -1 ? (v4 ? 32 : 128) : Number(c.slice(slash + 1));
      const prefix = v4 ? 96 + bits : bits;
      const mask = prefix === 0 ? 0n : ((1n << BigInt(prefix)) - 1n) << BigInt(128 - prefix);
      let set = this.byPrefix.get(prefix);
      if (set === undefined) {
        set = new Set();
        this.byPrefix.set(prefix, set);
        this.masks.push([prefix, mask]);
      }
      set.add(n & mask);
    }
  }

  has(addr: string | undefined): boolean {
    if (addr === undefined) return false;
    const n = ipToBigInt(addr);
    if (n === undefined) return false;
    for (const [prefix, mask] of this.masks) {
      if (this.byPrefix.get(prefix)!.has(n & mask)) return true;
    }
    return false;
  }
}
