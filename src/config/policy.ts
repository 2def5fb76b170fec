/**
 * Authorization-layer configuration fields (owned by the authorization layer): which principal
 * may call which tool, read which resource and get which prompt, argument constraints and
 * limits, and rate limits. The key names in the issue are a contract:
 * `servers.NAME.tools.TOOL.{scopes,allow,deny,require,rateLimit,args}`, `defaultTool`,
 * `resources`, `prompts`, `stepUp`, `rateLimit`, `limits`; global `policy.cedar`, `rateLimit`.
 * The semantics are in docs/policy.md.
 */
import { isIP } from 'node:net';
import { RE2JS } from 're2js';
import { z } from 'zod';

export const AUTH_METHODS = ['none', 'bearer', 'dpop', 'mtls', 'mtls+bearer', 'mtls+dpop', 'api-key'] as const;

/** `N/second|minute|hour` (also `s`, `m`, `h`, `sec`, `min`). */
export const RATE_PATTERN = /^\s*(\d{1,9})\s*\/\s*(s|sec|second|m|min|minute|h|hour)\s*$/;

/** RFC 6749 §3.3 scope-token: printable ASCII except space, `"` and `\`. */
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/;

function validCidr(s: string): boolean {
  const slash = s.indexOf('/');
  const addr = slash === -1 ? s : s.slice(0, slash);
  const v = isIP(addr);
  if (v === 0) return false;
  if (slash === -1) return true;
  const bitsText = s.slice(slash + 1);
  if (!/^\d{1,3}$/.test(bitsText)) return false;
  const bits = Number(bitsText);
  return bits <= (v === 4 ? 32 : 128);
}

function re2Compiles(p: string): boolean {
  try {
    RE2JS.compile(p);
    return true;
  } catch {
    return false;
  }
}

const scopeList = z
  .array(z.string().regex(SCOPE_TOKEN, 'a scope is printable ASCII without spaces, quotes or backslashes (RFC 6749 §3.3)'))
  .describe('Scopes the access token must all carry. Missing only these: the item stays listed and a call gets 403 insufficient_scope (step-up) unless `stepUp: hide`.');

const identityMatch = z
  .object({
    subjects: z.array(z.string().min(1)).optional().describe('Token subjects (`sub`), exact match.'),
    clients: z.array(z.string().min(1)).optional().describe('OAuth client ids (`client_id`/`azp`), exact match.'),
    roles: z.array(z.string().min(1)).optional().describe('Roles from the token (claim mapping is configured by the identity layer).'),
    groups: z.array(z.string().min(1)).optional().describe('Groups from the token.'),
    certificates: z
      .array(z.string().min(1))
      .optional()
      .describe('Client certificate identities, each matched exactly against the certificate subject DN, a SAN URI (e.g. a SPIFFE ID), a SAN DNS name or the SHA-256 thumbprint (base64url).'),
  })
  .strict();

const requireRule = z
  .object({
    authMethod: z
      .array(z.enum(AUTH_METHODS))
      .min(1)
      .optional()
      .describe('Authentication methods accepted, e.g. [mtls+bearer, dpop]. Any other method: refused (hidden).'),
    maxTokenAgeSeconds: z
      .number()
      .int()
      .positive()
      .optional()
      .describe('Largest age of the access token (now - iat). A token without `iat` is refused.'),
    sourceCidrs: z
      .array(z.string().refine(validCidr, 'expected an IPv4 or IPv6 address or CIDR, e.g. 10.0.0.0/8 or fd00::/8'))
      .min(1)
      .optional()
      .describe('Client IP ranges (IPv4 and IPv6 CIDR). IPv4-mapped IPv6 addresses match their IPv4 range.'),
  })
  .strict()
  .describe('Context rules: every one listed must hold, otherwise the item is refused and hidden.');

const accessFields = {
  scopes: scopeList.optional(),
  allow: identityMatch
    .optional()
    .describe('When present, only principals matching ANY of these lists pass (otherwise: hidden). Deny wins over allow.'),
  deny: identityMatch.optional().describe('Principals matching ANY of these lists are refused (hidden).'),
  require: requireRule.optional(),
};

const rateString = z
  .string()
  .regex(RATE_PATTERN, 'a rate is N/second, N/minute or N/hour, e.g. 10/minute')
  .describe('N/second|minute|hour. The burst defaults to N.');

const rateValue = z.union([
  rateString,
  z
    .object({
      rate: rateString,
      burst: z.number().int().positive().optional().describe('Largest burst (bucket size). Default: N of the rate.'),
    })
    .strict(),
]);

const toolRate = z
  .union([
    rateString,
    z
      .object({
        rate: rateString,
        burst: z.number().int().positive().optional().describe('Largest burst (bucket size). Default: N of the rate.'),
        per: z
          .enum(['subject', 'token', 'client-ip', 'all'])
          .default('subject')
          .describe('Who shares one bucket: each subject (default), each token, each client IP, or all callers together.'),
      })
      .strict(),
  ])
  .describe('Rate limit of calls to this tool, e.g. 10/minute (per subject unless `per` says otherwise). Over it: HTTP 429 with Retry-After.');

const argConstraint = z
  .object({
    pattern: z
      .string()
      .refine(re2Compiles, 'the pattern is not valid RE2 syntax (no lookaround or backreferences)')
      .optional()
      .describe('Regular expression (RE2 syntax, linear time) a string argument must match (unanchored: add ^ and $).'),
    maxLength: z.number().int().min(0).optional().describe('Longest string.'),
    minLength: z.number().int().min(0).optional().describe('Shortest string.'),
    maximum: z.number().optional().describe('Largest number.'),
    minimum: z.number().optional().describe('Smallest number.'),
    enum: z.array(z.union([z.string(), z.number(), z.boolean(), z.null()])).min(1).optional().describe('Allowed values.'),
    maxItems: z.number().int().min(0).optional().describe('Longest array.'),
    required: z.boolean().optional().describe('The argument must be present.'),
  })
  .strict();

const toolRule = z
  .object({
    ...accessFields,
    rateLimit: toolRate.optional(),
    args: z
      .record(z.string(), argConstraint)
      .optional()
      .describe('Operator constraints on top of the upstream inputSchema, per top-level argument, e.g. {path: {pattern: "^/srv/notes/"}, limit: {maximum: 100}}.'),
    unknownArguments: z
      .enum(['refuse', 'allow'])
      .optional()
      .describe('Overrides `limits.unknownArguments` for this tool.'),
  })
  .strict();

const promptRule = z.object({ ...accessFields }).strict();

const resourceRule = z.object({ ...accessFields }).strict();

const limits = z
  .object({
    maxArgumentBytes: z.number().int().positive().default(256 * 1024).describe('Largest tools/call `arguments` (UTF-8 JSON bytes).'),
    maxArgumentDepth: z.number().int().positive().default(32).describe('Deepest nesting of objects/arrays in `arguments`.'),
    maxSchemaBytes: z
      .number()
      .int()
      .positive()
      .default(256 * 1024)
      .describe('Largest upstream inputSchema the gateway compiles; a larger one makes calls to that tool fail closed.'),
    maxSchemaDepth: z.number().int().positive().default(48).describe('Deepest upstream inputSchema the gateway compiles.'),
    maxSchemaCost: z
      .number()
      .int()
      .positive()
      .default(2_000)
      .describe('Largest number of subschemas that may apply to one value (after following $ref): bounds schemas built to blow up.'),
    unknownArguments: z
      .enum(['refuse', 'allow'])
      .default('refuse')
      .describe('Top-level arguments not declared by the tool inputSchema (or `args`): refused (default) even if the schema allows them, or left to the schema.'),
  })
  .strict();

const mountRate = z
  .object({
    perToken: rateValue.optional().describe('Each access token, at this mount.'),
    perSubject: rateValue.optional().describe('Each subject, at this mount.'),
    perClientIp: rateValue.optional().describe('Each client IP, at this mount.'),
    total: rateValue.optional().describe('All requests to this mount together.'),
  })
  .strict();

const globalRate = z
  .object({
    perToken: rateValue.optional().describe('Each access token, across all mounts.'),
    perSubject: rateValue.optional().describe('Each subject, across all mounts.'),
    perClientIp: rateValue.optional().describe('Each client IP, across all mounts.'),
  })
  .strict();

export const policyServerFields = {
  tools: z
    .record(z.string().min(1), toolRule)
    .optional()
    .describe('Per-tool policy, keyed by tool name. Tools not listed follow `defaultTool`.'),
  defaultTool: z
    .enum(['deny', 'allow'])
    .default('deny')
    .describe('Tools not listed in `tools`: deny (default: hidden from tools/list, calls answered as unknown tool) or allow.'),
  resources: z
    .record(z.string().min(1), resourceRule)
    .optional()
    .describe('Policy for resources/read and resources/subscribe, keyed by URI pattern: an exact URI, or a prefix ending in `*` (e.g. file:///srv/notes/*). Every matching rule must pass.'),
  defaultResource: z.enum(['deny', 'allow']).default('deny').describe('Resources no `resources` pattern matches: deny (default) or allow.'),
  prompts: z.record(z.string().min(1), promptRule).optional().describe('Per-prompt policy for prompts/get, keyed by prompt name.'),
  defaultPrompt: z.enum(['deny', 'allow']).default('deny').describe('Prompts not listed in `prompts`: deny (default) or allow.'),
  stepUp: z
    .enum(['challenge', 'hide'])
    .default('challenge')
    .describe('challenge (default): an item refused only for missing scopes stays listed and its call gets 403 insufficient_scope; hide: treated like any other refusal.'),
  rateLimit: mountRate.optional().describe('Rate limits of this mount (N/second|minute|hour, or {rate, burst}).'),
  limits: limits.prefault({}).describe('Argument validation limits of this mount.'),
};

export const policyGlobalFields = {
  policy: z
    .object({
      cedar: z
        .string()
        .min(1)
        .optional()
        .describe('Cedar policy file (relative to the config file), evaluated in addition to the YAML rules: both must allow. A policy that does not parse stops start-up.'),
    })
    .strict()
    .optional()
    .describe('Policy engines beyond the YAML rules.'),
  rateLimit: globalRate.optional().describe('Rate limits across all mounts (N/second|minute|hour, or {rate, burst}).'),
};
