/**
 * Whether a host names this machine only: `localhost`, an address in 127.0.0.0/8, or `::1` in any
 * IPv6 spelling (`0:0:0:0:0:0:0:1`, IPv4-mapped `::ffff:127.0.0.1`); brackets and case ignored.
 * One definition for every check that relaxes something on loopback (metrics without a token,
 * the dev authorization server, warnings), so none of them can be talked into it by a name such
 * as `127.example.com`, which is a DNS name, not a loopback address.
 */
import { BlockList, isIP } from 'node:net';

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (h === 'localhost') return true;
  const family = isIP(h);
  if (family === 0) return false;
  return LOOPBACK.check(h, family === 6 ? 'ipv6' : 'ipv4');
}
