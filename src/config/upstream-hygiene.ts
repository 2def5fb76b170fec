/**
 * Upstream hygiene configuration (issue 7 parts 4-5), re-exported by sanitize.ts and spread by
 * schema.ts into `servers.NAME.stdio` (least privilege) and `servers.NAME.http` (credentials).
 *
 * Secrets are never written in the config in clear: a credential names an environment variable
 * or a file that holds it. Fields that would hold a literal secret (`value`, `secret`, `token`,
 * `password`, `clientSecret` as a string) are rejected with a message saying what to write.
 */
import { z } from 'zod';

/**
 * Upstream request headers only the gateway writes: message framing and connection management
 * (a configured one would be a request-smuggling hazard) and the MCP transport's own. Refused in
 * `servers.NAME.http.headers` and as a credential header's name.
 */
export const UPSTREAM_RESERVED_HEADERS: ReadonlySet<string> = new Set([
  'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'te', 'trailer', 'upgrade', 'expect', 'proxy-connection',
  'content-type', 'accept', 'last-event-id', 'mcp-session-id', 'mcp-protocol-version',
]);

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** RFC 9110 field-name token. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

const NO_LITERAL = 'secrets are never written in the config in clear: name an environment variable (env: VAR_NAME) or a file (file: /path/to/secret) instead';

const envName = z.string().regex(ENV_NAME, 'an environment variable name (letters, digits, _; not starting with a digit)');

/** Keys that would carry a secret in clear: present means rejected, with a useful message. */
const forbiddenLiterals = {
  value: z.never({ error: NO_LITERAL }).optional().describe('Not allowed: a secret in clear. Use `env` or `file`.'),
  secret: z.never({ error: NO_LITERAL }).optional().describe('Not allowed: a secret in clear. Use `env` or `file`.'),
  token: z.never({ error: NO_LITERAL }).optional().describe('Not allowed: a secret in clear. Use `env` or `file`.'),
  password: z.never({ error: NO_LITERAL }).optional().describe('Not allowed: a secret in clear. Use `env` or `file`.'),
};

/** Where a secret is read from: exactly one of an environment variable or a file. */
export const secretRefSchema = z
  .object(
    {
      env: envName.optional().describe('Name of the gateway environment variable holding the secret.'),
      file: z.string().min(1).optional().describe('Path of a file holding the secret (trailing newline ignored; re-read when it changes). Relative paths resolve against the config file.'),
      ...forbiddenLiterals,
    },
    { error: (iss) => (iss.code === 'invalid_type' ? NO_LITERAL : undefined) },
  )
  .strict()
  .refine((s) => (s.env === undefined) !== (s.file === undefined), { message: 'give exactly one of `env` or `file`' })
  .describe('A secret reference: `{env: VAR_NAME}` or `{file: PATH}`, never the secret itself.');

function isHttpsOrLoopback(u: string): boolean {
  try {
    const url = new URL(u);
    if (url.protocol === 'https:') return true;
    return url.protocol === 'http:' && ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname);
  } catch {
    return false;
  }
}

const tokenUrl = z
  .string()
  .url()
  .refine(isHttpsOrLoopback, 'the token endpoint must use https (plain http only on localhost/127.0.0.1/[::1])')
  .describe('Token endpoint of the authorization server (https; http only on loopback).');

const clientAuth = {
  clientId: z.string().min(1).describe('OAuth client id of the gateway at the authorization server.'),
  clientSecret: secretRefSchema.describe('Client secret of the gateway: `{env: VAR}` or `{file: PATH}`.'),
  authMethod: z
    .enum(['client_secret_basic', 'client_secret_post'])
    .default('client_secret_basic')
    .describe('How the client authenticates at the token endpoint (RFC 6749 section 2.3.1).'),
  scope: z.string().min(1).optional().describe('Space-separated scopes to request.'),
  refreshSkewSeconds: z
    .number()
    .int()
    .min(0)
    .max(3600)
    .default(60)
    .describe('A cached token is replaced this long before it expires (at most half its lifetime).'),
  timeoutMs: z.number().int().positive().max(60_000).default(10_000).describe('Timeout of one token request.'),
};

const headerCredential = z
  .object({
    type: z.literal('header').describe('A static header whose value comes from an environment variable or a secret file.'),
    name: z
      .string()
      .regex(HEADER_NAME, 'an HTTP header name')
      .refine((n) => !UPSTREAM_RESERVED_HEADERS.has(n.toLowerCase()) && n.toLowerCase() !== 'host', { message: 'this header is set by the gateway itself and cannot carry a credential' })
      .describe('Header to send, e.g. X-Api-Key or Authorization.'),
    env: envName.optional().describe('Gateway environment variable holding the header value.'),
    file: z.string().min(1).optional().describe('File holding the header value (trailing newline ignored; re-read when it changes).'),
    prefix: z.string().max(32).optional().describe('Text put before the secret, e.g. "Bearer ".'),
    ...forbiddenLiterals,
  })
  .strict()
  .refine((s) => (s.env === undefined) !== (s.file === undefined), { message: 'give exactly one of `env` or `file`' });

const clientCredentials = z
  .object({
    type: z.literal('client_credentials').describe('OAuth 2.0 client credentials grant: the gateway gets its own token for this upstream.'),
    tokenUrl,
    ...clientAuth,
    audience: z.string().min(1).optional().describe('`audience` parameter, for authorization servers that use it.'),
    resource: z.string().url().optional().describe('RFC 8707 `resource` indicator (default: the upstream URL).'),
    ...forbiddenLiterals,
  })
  .strict();

const tokenExchange = z
  .object({
    type: z
      .literal('token_exchange')
      .describe("RFC 8693 token exchange: the client's token is exchanged for one meant for this upstream; only the exchanged token is sent."),
    tokenUrl,
    ...clientAuth,
    audience: z.string().min(1).optional().describe('`audience` of the exchanged token (default: the upstream URL).'),
    resource: z.string().url().optional().describe('RFC 8707 `resource` of the exchanged token (default: the upstream URL).'),
    requestedTokenType: z
      .string()
      .default('urn:ietf:params:oauth:token-type:access_token')
      .describe('`requested_token_type` (RFC 8693 section 3).'),
    cacheSize: z.number().int().min(0).max(100_000).default(1000).describe('Exchanged tokens kept (keyed by a hash of the client token) until shortly before they expire.'),
    ...forbiddenLiterals,
  })
  .strict();

export const httpCredentialsSchema = z
  .discriminatedUnion('type', [headerCredential, clientCredentials, tokenExchange])
  .describe(
    "The upstream's own credentials. The client's Authorization, DPoP, Cookie and session headers never reach an upstream; this is what is sent instead.",
  );

export type HttpCredentialsConfig = z.output<typeof httpCredentialsSchema>;
export type SecretRef = z.output<typeof secretRefSchema>;

export const httpCredentialFields = {
  credentials: httpCredentialsSchema.optional(),
};

const limitsSchema = z
  .object({
    memoryMb: z
      .number()
      .int()
      .positive()
      .optional()
      .describe('Cap on private writable memory in MiB (RLIMIT_DATA: heap and anonymous mappings; not address space, which V8 needs to reserve).'),
    cpuSeconds: z.number().int().positive().optional().describe('CPU time in seconds (RLIMIT_CPU); the child is killed when it is used up.'),
    openFiles: z.number().int().positive().optional().describe('Most open file descriptors (RLIMIT_NOFILE).'),
    processes: z
      .number()
      .int()
      .positive()
      .optional()
      .describe('Most processes/threads of the child user (RLIMIT_NPROC; counts every process of that uid, and root is exempt: combine with uid).'),
    fileSizeMb: z.number().int().positive().optional().describe('Largest file the child may write, in MiB (RLIMIT_FSIZE).'),
  })
  .strict()
  .describe('Resource limits, applied with prlimit(1) (util-linux) or, without it, a `sh -c ulimit` wrapper.');

const sandboxSchema = z
  .object({
    enabled: z.boolean().default(false).describe('Run the child in a bubblewrap (bwrap) sandbox.'),
    required: z
      .boolean()
      .default(true)
      .describe('When enabled and bwrap is missing or unusable: true refuses to start the upstream (fail closed); false starts it unsandboxed with a warning.'),
    network: z.boolean().default(false).describe('Allow network access. Default false: the child gets its own empty network namespace (loopback only, no route out).'),
    writablePaths: z
      .array(z.string().min(1))
      .default([])
      .describe('Paths the child may write (bind-mounted read-write). Everything else is read-only; /tmp is private and empty.'),
    hiddenPaths: z
      .array(z.string().min(1))
      .default([])
      .describe("Paths the child must not even read (an empty tmpfs over a folder, /dev/null over a file), e.g. the gateway's config and secret files."),
  })
  .strict()
  .describe('Optional bubblewrap sandbox: no network, read-only filesystem except writablePaths, private /tmp, own PID/IPC/UTS namespaces.');

export const stdioHygieneFields = {
  inheritEnv: z
    .array(envName)
    .default([])
    .describe('Gateway environment variables passed to the child besides the base allowlist (PATH, HOME, LANG, LC_ALL, LC_CTYPE, TZ). Nothing else is inherited.'),
  uid: z.number().int().min(0).optional().describe('Run the child as this user id (the gateway must be allowed to switch).'),
  gid: z.number().int().min(0).optional().describe('Run the child with this group id.'),
  limits: limitsSchema.optional(),
  sandbox: sandboxSchema.optional(),
};

const _stdioHygieneObject = z.object(stdioHygieneFields);
export type StdioHygieneConfig = z.output<typeof _stdioHygieneObject>;
export type ResourceLimitsConfig = z.output<typeof limitsSchema>;
export type SandboxConfig = z.output<typeof sandboxSchema>;
