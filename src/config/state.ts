/**
 * State store and admin (incident containment) configuration fields (owned by the replicas /
 * containment layer).
 *
 * `state: {type: memory | redis, url, keyPrefix, tls, failOpen: {rateLimits}}` and
 * `admin: {listen: {host, port}}` are a contract other tools rely on (issue 9): the `bastion
 * revoke|sessions|quarantine|release` commands find the admin listener from `admin.listen`.
 */
import { z } from 'zod';
import { isLoopbackHost } from './loopback.js';
import { secretRefSchema } from './auth.js';

export { isLoopbackHost };

const stateSchema = z
  .object({
    type: z
      .enum(['memory', 'redis'])
      .default('memory')
      .describe('`memory`: in-process, exact for ONE gateway process (not shared). `redis`: shared by every replica (rate limits, DPoP replay cache, pins, deny-list, quarantine).'),
    url: z
      .string()
      .min(1)
      .optional()
      .describe(
        'Redis location (type redis): `redis://[user:password@]host:port[/db]`, `rediss://…` for TLS, `redis+sentinel://[:password@]host:26379,host2:26379/MASTER[/db]` for Sentinel, `redis+cluster://host:6379,host2:6379` for Redis Cluster. Prefer `passwordFile`/`password` over a password in the URL.',
      ),
    password: secretRefSchema.optional().describe('Redis password as an env/file reference (overrides one in the URL).'),
    keyPrefix: z
      .string()
      .regex(/^[A-Za-z0-9:_.-]{0,64}$/)
      .default('bastion:')
      .describe('Prefix of every key and pub/sub channel the gateway uses, so several gateways (or environments) can share one Redis.'),
    tls: z
      .union([
        z.boolean(),
        z
          .object({
            ca: z.string().optional().describe('PEM CA file that signs the Redis server certificate (relative to the config file). Default: the system store.'),
            cert: z.string().optional().describe('PEM client certificate file, when Redis requires client certificates.'),
            key: z.string().optional().describe('PEM private key file of `cert`.'),
            servername: z.string().optional().describe('Name checked in the server certificate (default: the host of the URL).'),
          })
          .strict(),
      ])
      .optional()
      .describe('Connect to Redis over TLS (`true`, or CA/client certificate files). Implied by a `rediss://` URL. The server certificate is always verified.'),
    commandTimeoutMs: z
      .number()
      .int()
      .positive()
      .default(1000)
      .describe('A Redis command with no answer after this long fails (the request gets 503, or follows failOpen for rate limits): requests never hang on a dead Redis.'),
    cacheStaleAfterMs: z
      .number()
      .int()
      .positive()
      .default(1500)
      .describe('The local copy of the deny-list and quarantine list is trusted this long after its last successful check against the store; past it (store unreachable) revocation and quarantine checks answer 503.'),
    failOpen: z
      .object({
        rateLimits: z
          .boolean()
          .default(false)
          .describe('When the store is unreachable, let requests through rate limits (true) or refuse them with 503 (false, the default). Revocation, DPoP replay, quarantine and pins always fail closed.'),
      })
      .strict()
      .prefault({})
      .describe('What may go ahead without the store.'),
  })
  .strict()
  .superRefine((s, ctx) => {
    if (s.type === 'redis' && !s.url) ctx.addIssue({ code: 'custom', path: ['url'], message: 'state.url is required when state.type is redis (e.g. redis://127.0.0.1:6379)' });
    if (s.url && !/^(rediss?|redis\+sentinel|rediss\+sentinel|redis\+cluster|rediss\+cluster):\/\//.test(s.url)) {
      ctx.addIssue({ code: 'custom', path: ['url'], message: 'state.url must start with redis://, rediss://, redis+sentinel:// or redis+cluster://' });
    }
  });

const tokenRevocationSchema = z
  .object({
    issuer: z.string().url().describe('Issuer whose tokens this endpoint revokes (compared with the token `iss`, or the `issuer` given to `bastion revoke`).'),
    endpoint: z.string().url().describe('RFC 7009 token revocation endpoint.'),
    clientId: z.string().min(1).describe('Client id the gateway authenticates with (HTTP Basic).'),
    clientSecret: secretRefSchema.describe('Client secret, as an env/file reference.'),
    timeoutMs: z.number().int().positive().default(5000).describe('Timeout of the call (best effort: the deny-list entry is written whatever the answer).'),
  })
  .strict();

const adminSchema = z
  .object({
    listen: z
      .object({
        host: z.string().default('127.0.0.1').describe('Address of the admin listener. Default loopback; anything else needs `token` or `tls.clientCa`.'),
        port: z.number().int().min(0).max(65535).default(9091).describe('Port of the admin listener (0 picks a free port).'),
      })
      .strict()
      .prefault({})
      .describe('The admin listener (its own port, never the MCP listener).'),
    token: secretRefSchema
      .optional()
      .describe('Admin bearer token (env/file reference). When set, every admin request needs `Authorization: Bearer TOKEN` (compared in constant time), on loopback too.'),
    tls: z
      .object({
        cert: z.string().describe('PEM server certificate file of the admin listener.'),
        key: z.string().describe('PEM private key file.'),
        clientCa: z.string().optional().describe('PEM CA file: when set, a client certificate signed by it is required (mTLS).'),
      })
      .strict()
      .optional()
      .describe('Serve the admin API over HTTPS; with `clientCa`, only clients holding a certificate from that CA get in.'),
    tokenRevocation: z
      .array(tokenRevocationSchema)
      .default([])
      .describe('RFC 7009 revocation endpoints by issuer: `bastion revoke --token` also revokes the token at its authorization server (best effort).'),
  })
  .strict()
  .superRefine((a, ctx) => {
    if (!isLoopbackHost(a.listen.host) && !a.token && !a.tls?.clientCa) {
      ctx.addIssue({
        code: 'custom',
        path: ['listen', 'host'],
        message: `the admin API would listen on ${a.listen.host || '(all interfaces)'} without authentication: set admin.token (an env/file reference) or admin.tls.clientCa (mTLS), or listen on 127.0.0.1`,
      });
    }
  });

export type StateConfig = z.output<typeof stateSchema>;
export type AdminConfig = z.output<typeof adminSchema>;

/** State store configuration fields. */
export const stateGlobalFields = {
  state: stateSchema.prefault({}).describe('Where shared state lives (rate limits, DPoP replay cache, pins, deny-list, quarantine). Use `redis` when running several replicas.'),
  admin: adminSchema
    .optional()
    .describe('Admin API for incident containment (revoke, sessions, quarantine) on its own listener; off when absent. Used by `bastion revoke|sessions|quarantine|release`.'),
};
