/** Shared fixtures for the authorization tests: principals built directly, configs parsed for real. */
import { parseConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { ANONYMOUS, type Principal } from '../../src/identity/types.js';

export const NOW = Date.UTC(2026, 0, 1, 12, 0, 0);

export function principal(over: Partial<Omit<Principal, 'scopes'>> & { scopes?: string[] } = {}): Principal {
  const { scopes, ...rest } = over;
  return {
    ...ANONYMOUS,
    subject: 'alice',
    issuer: 'https://as.example',
    clientId: 'client-1',
    authMethod: 'bearer',
    tokenId: 'jti-1',
    expiresAt: NOW / 1000 + 600,
    issuedAt: NOW / 1000 - 10,
    tokenHash: 'hash-alice',
    roles: [],
    groups: [],
    ...rest,
    scopes: new Set(scopes ?? []),
  };
}

/** Parse a config through the real schema (so the contract keys are what is tested). */
export function config(servers: Record<string, Record<string, unknown>>, global: Record<string, unknown> = {}): Config {
  const s: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(servers)) s[k] = { stdio: { command: 'node' }, ...v };
  return parseConfig({ servers: s, ...global }).config as Config;
}
