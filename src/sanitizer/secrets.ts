/**
 * Secret redaction with typed placeholders: `[REDACTED:aws-access-key]`.
 *
 * Two families of rules:
 * - typed formats (private keys, cloud and SaaS keys, OAuth/JWT tokens, credentials in URLs and
 *   Authorization headers): a vendor prefix or structure, plus a low-entropy check so documented
 *   placeholders (`ghp_xxxx…`, `AKIAXXXXXXXXXXXXXXXX`) pass. Two of them know a secret by its
 *   surroundings: a Google service-account key file (`"type": "service_account"`), and a key
 *   naming a vendor assigned a token-shaped value (`sourcegraph: <40 hex>`);
 * - a generic assignment rule (`API_KEY = …`, `"client_secret": "…"`, `password: …`): the name
 *   must end in a secret word, and the value must look random (entropy, character classes) and not
 *   like a placeholder, a variable reference, an identifier or a sequential test string.
 * Typed matches win over generic ones. All expressions are precompiled and linear; rules whose
 * cheap keyword hint is absent are skipped. Findings hold a masked preview, never the value.
 */
import type { Finding, Severity } from './types.js';

export interface SecretMatch {
  /** Placeholder type, e.g. `aws-access-key`. */
  type: string;
  /** Span of the secret value (what gets replaced). */
  start: number;
  end: number;
  severity: Severity;
}

interface SecretRule {
  type: string;
  re: RegExp;
  /** Index of the capture group holding the secret (needs the `d` flag); 0 = whole match. */
  group?: number;
  /** Case-sensitive substrings, one of which must occur for the rule to run. */
  hints?: readonly string[];
  /** Lower-case substrings (checked against the lower-cased text). */
  lowerHints?: readonly string[];
  minEntropy?: number;
  validate?: (value: string, m: RegExpExecArray) => boolean;
  severity?: Severity;
  /**
   * Where to try `re`: a global expression that matches inside every match of `re`, starting at
   * most `maxLead` characters after the match's start, and a cheap necessary test for a match
   * start. `re` is then tried (sticky) only at the positions before each anchor that pass the
   * test, in increasing order: the same matches as a scan of every position (proved by
   * test/sanitizer/secrets-anchors.test.ts against `findSecretsEveryPosition`), for expressions
   * whose leading name part would otherwise be retried at every character of a long text.
   */
  anchor?: { re: RegExp; maxLead: number; startOk: (text: string, p: number) => boolean };
}

const isAlnum = (c: number): boolean => (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39);
const isLetter = (c: number): boolean => (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a);

/** Shannon entropy in bits per character. */
export function entropy(s: string): number {
  if (s.length === 0) return 0;
  const counts = new Map<string, number>();
  for (const c of s) counts.set(c, (counts.get(c) ?? 0) + 1);
  let h = 0;
  const n = [...s].length;
  for (const k of counts.values()) {
    const p = k / n;
    h -= p * Math.log2(p);
  }
  return h;
}

function distinct(s: string): number {
  return new Set(s).size;
}

/** A run of `len` characters each one more (or one less) than the previous: 123456, abcdef. */
function hasSequentialRun(s: string, len: number): boolean {
  let up = 1;
  let down = 1;
  for (let i = 1; i < s.length; i++) {
    const d = s.charCodeAt(i) - s.charCodeAt(i - 1);
    up = d === 1 ? up + 1 : 1;
    down = d === -1 ? down + 1 : 1;
    if (up >= len || down >= len) return true;
  }
  return false;
}

const PLACEHOLDER_VALUE =
  /^(?:x+|X+|\*+|\.+|-+|_+|0+|#+|null|none|nil|true|false|undefined|changeme|change[_-]?me|password|passwd|secret|example|sample|dummy|test|testing|redacted|hidden|placeholder|your[_\-.\s].*|my[_-]?(?:password|secret|token|key).*|<[^>]*>|\[[^\]]*\]|\{[^}]*\}|\.\.\..*)$/i;
const PLACEHOLDER_PARTS = /x{4,}|X{4,}|\*{3,}|\.{3}|…|<[^>]{0,40}>|\$\{|\$\(|\{\{|%[A-Z_]+%|(?:^|[_-])(?:YOUR|REPLACE|INSERT|PUT)[_-]|your[_-](?:api|secret|token|key|password)|example|_here\b|\bhere$/i;

function looksPlaceholder(v: string): boolean {
  if (PLACEHOLDER_VALUE.test(v) || PLACEHOLDER_PARTS.test(v)) return true;
  if (v.startsWith('$') || v.startsWith('%') || v.startsWith('@') || v.startsWith('&')) return true;
  const top = Math.max(...[...new Set(v)].map((c) => v.split(c).length - 1));
  return top / v.length > 0.6;
}

/** A value that is code (a call, an attribute path, an env lookup) rather than data. */
function looksLikeCode(v: string): boolean {
  if (/[()[\]]/.test(v)) return true;
  if (/^(?:process\.env|os\.environ|env\.|self\.|this\.|config\.|settings\.|params\.|args\.|props\.|secrets\.|vars\.|inputs\.)/i.test(v)) return true;
  if (/^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+$/.test(v) && !/\d/.test(v)) return true;
  if (/^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$/.test(v) && !/\d{3}/.test(v)) return true;
  return false;
}

const GENERIC_NAME_REJECT = /public|\bpub_|pubkey|csrf|xsrf|nonce|captcha|recaptcha|sitekey|site_key|publishable|_pk\b|page_?token|next_?token|continuation|cursor|sync_?token/i;
/** Names of values that are random but not secret: identifiers, digests, references, media. */
const NOT_SECRET_NAME =
  /(?:^|[_.\-\s]|[a-z](?=[A-Z]))(?:id|ids|uuid|guid|hash|hashes|sha\d*|md5|checksum|digest|etag|version|ver|rev|revision|commit|ref|signature|sig|fingerprint|thumbprint|integrity|url|uri|href|src|link|path|file|filename|name|type|kind|salt|iv|kid|jti|x5t|data|content|body|blob|image|img|icon|avatar|thumbnail|preview|title|label|description|message|text|value|example|sample|mime|format|encoding|color|colour|style|class|slug|handle|username|user|email|host|hostname|domain|region|zone|key_?id|keyid)$/i;
const PASSWORD_NAME = /(?:passwd|password|passphrase|pwd|pass)$/i;

function genericValueOk(name: string, value: string): boolean {
  if (GENERIC_NAME_REJECT.test(name)) return false;
  if (looksPlaceholder(value) || looksLikeCode(value)) return false;
  if (value.endsWith('=') && /=$/.test(value) && value.length < 12) return false;
  if (PASSWORD_NAME.test(name)) {
    if (value.length < 6) return false;
    if (/^[a-z]+$/i.test(value) && value.length < 10) return false;
    return entropy(value) >= 2.2;
  }
  if (value.length < 12) return false;
  if (hasSequentialRun(value, 6)) return false;
  if (/^\d+$/.test(value)) return false;
  if (/^[a-z]+(?:[-_.][a-z]+)*$/i.test(value)) return false;
  const classes = (/[a-z]/.test(value) ? 1 : 0) + (/[A-Z]/.test(value) ? 1 : 0) + (/\d/.test(value) ? 1 : 0) + (/[^A-Za-z0-9]/.test(value) ? 1 : 0);
  if (classes < 2) return false;
  return entropy(value) >= 3.2;
}

/** An assignment of a random-looking value, whatever the name: `X=gX69YO4CvBsVjzAwYxdGyDd30t5+9ez3`. */
function highEntropyOk(name: string, value: string): boolean {
  if (GENERIC_NAME_REJECT.test(name) || NOT_SECRET_NAME.test(name)) return false;
  if (looksPlaceholder(value) || hasSequentialRun(value, 6)) return false;
  if (!/[a-z]/.test(value) || !/[A-Z]/.test(value) || !/\d/.test(value)) return false;
  if ((value.match(/[/.]/g) ?? []).length > 2) return false;
  if (/^eyJ/.test(value)) return false;
  // A dotted path of identifiers is code: `Ed25519.BlindKeySignatures`, `config.Values.Default`.
  if (/^[A-Za-z_]\w*(?:\.[A-Za-z_]\w{2,})+$/.test(value)) return false;
  // Words glued in CamelCase are identifiers, not keys: `SponsoredProductsRemoteSearch`.
  if ((value.match(/[A-Z][a-z]{3,}/g) ?? []).length >= 3) return false;
  return entropy(value) >= 4.3;
}

/**
 * Vendors whose credentials are stored under the vendor's name (`sourcegraph: <40 hex>`,
 * `DISCORD_TOKEN=…`, `"datadog": {"app_key": …}`), like gitleaks' keyword-gated rules: the
 * vendors the typed rules above know, gitleaks' keyword vendors and common SaaS/cloud services.
 * Names that are also ordinary words or data fields (box, square, segment, linear, vault, docker,
 * snowflake, zoom, harness, age…) are left out: with them a key would say nothing about a credential.
 */
const VENDORS: readonly string[] = [
  // cloud and hosting
  'aws', 'amazon', 'gcp', 'gcloud', 'google', 'firebase', 'azure', 'microsoft', 'alibaba', 'aliyun', 'tencent', 'yandex',
  'digital ocean', 'linode', 'vultr', 'hetzner', 'scaleway', 'heroku', 'netlify', 'vercel', 'cloudflare', 'fastly', 'akamai',
  'fly io', 'supabase', 'planetscale', 'scalingo', 'openshift', 'ngrok', 'tailscale',
  // code, packages, CI
  'github', 'gitlab', 'bitbucket', 'gitter', 'sourcegraph', 'npm', 'npmjs', 'pypi', 'nuget', 'rubygems', 'clojars', 'jfrog',
  'artifactory', 'dockerhub', 'circle ci', 'travis', 'travis ci', 'buildkite', 'drone ci', 'jenkins', 'codecov', 'coveralls',
  'sonarqube', 'sonarcloud', 'snyk', 'pulumi', 'hashicorp', 'doppler', 'infracost', 'prefect', 'postman', 'rapid api',
  // AI
  'open ai', 'anthropic', 'claude', 'gemini', 'cohere', 'mistral', 'groq', 'perplexity', 'hugging face', 'deep seek', 'open router',
  'eleven labs', 'pinecone', 'private ai',
  // messaging, mail
  'slack', 'discord', 'telegram', 'twilio', 'sendgrid', 'sendinblue', 'brevo', 'mailgun', 'mailchimp', 'mailjet', 'postmark',
  'messagebird', 'sendbird', 'mattermost', 'twitch', 'twitter', 'facebook', 'instagram', 'linkedin', 'flickr',
  // payments, finance
  'stripe', 'paypal', 'braintree', 'plaid', 'adyen', 'razorpay', 'gocardless', 'flutterwave', 'coinbase', 'binance', 'bittrex',
  'kucoin', 'finicity', 'finnhub', 'shopify', 'squarespace', 'etsy', 'easypost', 'shippo', 'duffel', 'freshbooks',
  // productivity, CRM, support
  'atlassian', 'jira', 'confluence', 'asana', 'trello', 'clickup', 'notion', 'airtable', 'figma', 'miro', 'typeform', 'hubspot',
  'salesforce', 'zendesk', 'freshdesk', 'intercom', 'dropbox', 'contentful', 'algolia', 'mapbox', 'frame io', 'adobe',
  // observability, security, identity
  'datadog', 'new relic', 'dynatrace', 'grafana', 'sentry', 'bugsnag', 'rollbar', 'honeycomb', 'pager duty', 'opsgenie', 'splunk',
  'sumo logic', 'loggly', 'logdna', 'papertrail', 'mixpanel', 'post hog', 'launch darkly', 'okta', 'auth0', 'onelogin', 'authress',
  'one password', 'last pass', 'bitwarden', 'meraki', 'cisco', 'databricks', 'confluent', 'clickhouse', 'maxmind', 'beamer',
];
/** Names written as two words may be split in a key (`NEW_RELIC_LICENSE_KEY`, `HuggingFaceToken`) or not. */
const VENDOR_SET: ReadonlySet<string> = new Set(VENDORS.map((v) => v.replace(/ /g, '')));
/** Other parts a vendor credential's name may have: what it is, its scope, its environment. */
const VENDOR_KEY_QUALIFIERS: ReadonlySet<string> = new Set([
  'token', 'tokens', 'key', 'keys', 'apikey', 'api', 'secret', 'secrets', 'pat', 'auth', 'oauth', 'oauth2', 'access', 'password',
  'passwd', 'pass', 'pwd', 'credential', 'credentials', 'cred', 'creds', 'bearer', 'sk', 'sdk', 'hub', 'private', 'personal', 'bot', 'app',
  'admin', 'service', 'session', 'license', 'master', 'signing', 'legacy', 'global', 'deploy', 'publish', 'upload', 'read', 'write', 'rw',
  'ro', 'prod', 'production', 'dev', 'development', 'staging', 'stage', 'test', 'testing', 'live', 'sandbox', 'default',
  'local', 'ci', 'cloud', 'enterprise', 'my', 'org', 'com',
]);
/**
 * Finds the vendor names in one linear pass; everything else runs only where one occurs. Two-word
 * names are listed joined and split (an optional separator inside would make the scan slower).
 */
const VENDOR_HINT = new RegExp(
  [...VENDOR_SET, ...VENDORS.filter((v) => v.includes(' ')).map((v) => v.replace(/ /g, '[_.-]'))].join('|'),
  'gi',
);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/**
 * Where an assignment's key may start: a line (after indentation, a declaration word, a list dash)
 * or an object member; or a command-line option (`--sourcegraph-token=…`).
 */
const KEY_CONTEXT =
  /(?:[\n\r{,;([][ \t]*(?:(?:export|set|setx|const|let|var|readonly|local|declare|val|final|static|private|public|protected|String|string)[ \t]+){0,3}(?:-[ \t]+|--)?[$@]?|[ \t]--)$/;
/** From the end of the key: the assignment and a token-shaped value. Sticky: anchored at the key's end. */
const VENDOR_ASSIGN = /\\{0,3}["'`]?[ \t]{0,3}(?::=|=>|=|:(?=[ \t"'`\\]))[ \t]{0,3}\\{0,3}["'`]?([A-Za-z0-9+/_=~.-]{20,512})(?![A-Za-z0-9+/_=~.:@-])/dy;
const MAX_KEY = 60;

function isKeyChar(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c === 0x5f || c === 0x2e || c === 0x2d;
}

/** `SOURCEGRAPH`, `sourcegraphToken`, `github.com`, `new_relic_license_key` → whether it names a vendor credential. */
function vendorKey(name: string): boolean {
  const parts = name.split(/[_.-]+/).flatMap((p) => p.match(/[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+/g) ?? []).map((p) => p.toLowerCase());
  if (parts.length === 0 || parts.length > 8) return false;
  let vendor = false;
  for (let i = 0; i < parts.length; ) {
    // Vendor names written in two or three parts: GitHub, new_relic, HuggingFace, digital-ocean.
    const len = [3, 2, 1].find((n) => i + n <= parts.length && VENDOR_SET.has(parts.slice(i, i + n).join('')));
    if (len !== undefined) {
      vendor = true;
      i += len;
    } else if (VENDOR_KEY_QUALIFIERS.has(parts[i]!) || /^\d+$/.test(parts[i]!)) i++;
    else return false;
  }
  return vendor;
}

/** A value shaped like a token: ≥ 32 hex characters, or ≥ 20 random-looking characters with digits. */
function tokenShaped(v: string): boolean {
  if (looksPlaceholder(v) || looksLikeCode(v) || hasSequentialRun(v, 6) || UUID.test(v)) return false;
  // Digests labelled with their algorithm: `sha256-…` (SRI), `sha256~…` (OpenShift), `md5-…`.
  if (/^(?:sha\d*|md5|blake\d*)[-~_]/i.test(v)) return false;
  if (!/\d/.test(v) || !/[A-Za-z]/.test(v)) return false;
  if (/^[0-9a-f]+$/i.test(v)) return v.length >= 32 && entropy(v) >= 3.0;
  if ((v.match(/[/.]/g) ?? []).length > 2) return false;
  if ((v.match(/[A-Z][a-z]{3,}/g) ?? []).length >= 3) return false;
  return entropy(v) >= 3.5;
}

/**
 * `sourcegraph: 6d2f…`, `"discord": "…"`, `export MERAKI_KEY=…`: a key made of a vendor name and
 * credential or environment words (`token`, `api`, `prod`…), at the start of a line or object
 * member, assigned a token-shaped value. Anchored on the vendor name: text that names no vendor
 * costs one scan for the names.
 */
function findVendorTokens(text: string, out: SecretMatch[]): void {
  VENDOR_HINT.lastIndex = 0;
  let h: RegExpExecArray | null;
  while ((h = VENDOR_HINT.exec(text)) !== null) {
    let start = h.index;
    while (start > 0 && h.index - start < MAX_KEY && isKeyChar(text.charCodeAt(start - 1))) start--;
    let end = h.index + h[0].length;
    while (end < text.length && end - h.index < MAX_KEY && isKeyChar(text.charCodeAt(end))) end++;
    VENDOR_HINT.lastIndex = end;
    if (start > 0 && isKeyChar(text.charCodeAt(start - 1))) continue; // key longer than MAX_KEY
    // `--sourcegraph-token=…`: the dashes belong to the context, not to the name.
    let keyStart = start;
    while (keyStart < end && !/[A-Za-z]/.test(text[keyStart]!)) keyStart++;
    if (keyStart > h.index) continue;
    VENDOR_ASSIGN.lastIndex = end;
    const a = VENDOR_ASSIGN.exec(text);
    const span = a?.indices?.[1];
    if (a === null || span === undefined) continue;
    VENDOR_HINT.lastIndex = span[1];
    if (!vendorKey(text.slice(keyStart, end))) continue;
    // The key starts a line or an object member: `GitHub: 6d2f…` inside a sentence is prose.
    let ctxEnd = start;
    if (/["'`]/.test(text[ctxEnd - 1] ?? '')) ctxEnd--;
    while (ctxEnd > 0 && start - ctxEnd < 4 && text[ctxEnd - 1] === '\\') ctxEnd--; // JSON inside a JSON string
    const before = (ctxEnd <= 120 ? '\n' : '') + text.slice(Math.max(0, ctxEnd - 120), ctxEnd) + text.slice(start, keyStart);
    if (!KEY_CONTEXT.test(before) || !tokenShaped(a[1]!)) continue;
    out.push({ type: 'vendor-token', start: span[0], end: span[1], severity: 'medium' });
  }
}

const TYPED: readonly SecretRule[] = [
  {
    type: 'aws-access-key',
    re: /\b(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16}\b/g,
    hints: ['AKIA', 'ASIA', 'ABIA', 'ACCA', 'A3T'],
    validate: (v) => distinct(v.slice(4)) >= 7,
  },
  {
    type: 'aws-secret-key',
    re: /(?:aws|amazon)[\w.-]{0,20}?(?:secret|sk)[\w.-]{0,20}?["']?[ \t]{0,3}(?::=|=>|=|:)[ \t]{0,3}["']?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])/dgi,
    group: 1,
    lowerHints: ['aws', 'amazon'],
    minEntropy: 3.5,
  },
  {
    type: 'aws-bedrock-key',
    re: /\bABSK[A-Za-z0-9+/]{109,269}={0,2}(?![A-Za-z0-9+/=])/g,
    hints: ['ABSK'],
    minEntropy: 3.0,
  },
  { type: 'gcp-api-key', re: /\bAIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])/g, hints: ['AIza'], minEntropy: 3.0 },
  {
    type: 'azure-storage-key',
    re: /\bAccountKey=([A-Za-z0-9+/]{86}==)/dg,
    group: 1,
    hints: ['AccountKey='],
  },
  { type: 'github-token', re: /\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b/g, hints: ['gh', 'github_pat_'], minEntropy: 3.0 },
  {
    type: 'gitlab-token',
    re: /\bgl(?:pat|ptt|rt|dt|ft|oas|cbt|soat|imt|agent|ffct)-[A-Za-z0-9_-]{20,}(?:\.[A-Za-z0-9_-]{2,})?\b/g,
    hints: ['gl'],
    minEntropy: 3.0,
  },
  {
    type: 'slack-token',
    re: /\bxox[abposr]-\d{8,14}-\d{8,14}(?:-\d{8,14})?-[A-Za-z0-9]{24,34}\b|\bxoxe\.xox[bp]-\d-[A-Za-z0-9]{140,170}\b|\bxoxe-\d-[A-Za-z0-9]{140,170}\b|\bxox[os]-\d+-\d+-\d+-[a-fA-F\d]{20,}\b/g,
    hints: ['xox'],
    minEntropy: 3.0,
  },
  { type: 'slack-webhook', re: /(?:https?:\/\/)?hooks\.slack\.com\/(?:services|workflows|triggers)\/[A-Za-z0-9+/]{43,56}/g, hints: ['hooks.slack.com'] },
  { type: 'stripe-key', re: /\b(?:sk|rk)_(?:live|test|prod)_[A-Za-z0-9]{20,247}\b|\bwhsec_[A-Za-z0-9]{32,}\b/g, hints: ['sk_', 'rk_', 'whsec_'], minEntropy: 3.0 },
  {
    type: 'openai-api-key',
    re: /\bsk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,}|\bsk-[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}\b|\bsk-[A-Za-z0-9]{48}\b/g,
    hints: ['sk-'],
    minEntropy: 3.5,
  },
  { type: 'anthropic-api-key', re: /\bsk-ant-(?:api|admin|oat|ort)\d{2}-[A-Za-z0-9_-]{80,100}AA(?![A-Za-z0-9_-])/g, hints: ['sk-ant-'], minEntropy: 3.5 },
  { type: 'huggingface-token', re: /\b(?:hf_|api_org_)[A-Za-z]{34}\b/g, hints: ['hf_', 'api_org_'], minEntropy: 3.5 },
  { type: 'npm-token', re: /\bnpm_[A-Za-z0-9]{36}\b/g, hints: ['npm_'], minEntropy: 3.5 },
  { type: 'pypi-token', re: /\bpypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,}/g, hints: ['pypi-'] },
  { type: 'sendgrid-api-key', re: /\bSG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}\b/g, hints: ['SG.'], minEntropy: 3.5 },
  { type: 'twilio-api-key', re: /\bSK[0-9a-fA-F]{32}\b/g, hints: ['SK'], minEntropy: 3.2 },
  { type: 'shopify-token', re: /\bshp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}\b/g, hints: ['shp'], minEntropy: 3.0 },
  { type: 'digitalocean-token', re: /\bdo[por]_v1_[a-f0-9]{64}\b/g, hints: ['_v1_'], minEntropy: 3.0 },
  { type: 'databricks-token', re: /\bdapi[a-f0-9]{32}(?:-\d)?\b/g, hints: ['dapi'], minEntropy: 3.0 },
  { type: 'atlassian-api-token', re: /\bATATT3[A-Za-z0-9_=-]{150,}/g, hints: ['ATATT3'], minEntropy: 3.5 },
  { type: 'linear-api-key', re: /\blin_api_[A-Za-z0-9]{40}\b/g, hints: ['lin_api_'], minEntropy: 3.5 },
  { type: 'mailchimp-api-key', re: /\b[0-9a-f]{32}-us\d{1,2}\b/g, hints: ['-us'], minEntropy: 3.0 },
  { type: 'onepassword-token', re: /\bops_eyJ[A-Za-z0-9+/]{250,}={0,3}/g, hints: ['ops_eyJ'], minEntropy: 4.0 },
  { type: 'notion-token', re: /\bntn_\d{11}[A-Za-z0-9]{35}\b/g, hints: ['ntn_'], minEntropy: 3.5 },
  { type: 'sourcegraph-token', re: /\bsgp_(?:[a-fA-F0-9]{16}_|local_)?[a-fA-F0-9]{40}\b/g, hints: ['sgp_'], minEntropy: 3.2 },
  {
    type: 'vault-token',
    re: /\bhv[sb]\.[A-Za-z0-9_-]{90,}|\b[sb]\.[A-Za-z0-9]{24}\b/g,
    hints: ['s.', 'b.'],
    minEntropy: 3.5,
    validate: (v) => v.startsWith('hv') || (/[a-z]/.test(v.slice(2)) && /[A-Z]/.test(v) && /\d/.test(v)),
  },
  { type: 'facebook-token', re: /\bEAA[MC][A-Za-z0-9]{100,}\b/g, hints: ['EAA'], minEntropy: 3.5 },
  { type: 'octopus-deploy-key', re: /\bAPI-[A-Z0-9]{26}\b/g, hints: ['API-'], minEntropy: 3.5 },
  { type: 'intra42-secret', re: /\bs-s4t2(?:ud|af)-[a-f0-9]{64}\b/g, hints: ['s-s4t2'] },
  {
    type: 'jwt',
    re: /\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.(?:[A-Za-z0-9_-]{16,})?/g,
    hints: ['eyJ'],
    validate: (v) => !/^eyJ[A-Za-z0-9_-]*\.eyJ[A-Za-z0-9_-]*\.$/.test(v) || v.length > 40,
  },
  {
    type: 'authorization-header',
    re: /\b(?:proxy-)?authorization["']?[ \t]{0,3}[:=][ \t]{0,3}["']?[ \t]{0,3}(?:(?:bearer|basic|token|api-token|apikey|api-key|digest|dpop|negotiate|ntlm|sso-key|key)[ \t]{1,3})?([A-Za-z0-9._~+/=:-]{8,4096})/dgi,
    group: 1,
    lowerHints: ['authorization'],
    validate: (v) => !looksPlaceholder(v) && entropy(v) >= 2.5,
  },
  {
    type: 'basic-auth-password',
    re: /\bcurl\b[^\n]{0,400}?\s(?:-u|--user)[ \t=]{0,3}["']?([^\s"':$]{1,128}):["']?([^\s"']{1,256})/dgi,
    group: 2,
    lowerHints: ['curl'],
    validate: (v, m) => !looksPlaceholder(v) && !v.includes('${') && !v.includes('$(') && v !== m[1] && entropy(v) >= 2.0 && v.length >= 4,
  },
  {
    type: 'connection-string-password',
    re: /\b[a-zA-Z][a-zA-Z0-9+.-]{1,20}:\/\/([^\s:/@"'<>]{1,128}):([^\s@/"'<>]{1,256})@[A-Za-z0-9[.-]/dg,
    group: 2,
    hints: ['://'],
    // `://` ends a scheme of 2 to 21 characters that starts with a letter at a word boundary.
    anchor: { re: /:\/\//g, maxLead: 21, startOk: (t, p) => isLetter(t.charCodeAt(p)) && (p === 0 || !(isAlnum(t.charCodeAt(p - 1)) || t.charCodeAt(p - 1) === 0x5f)) },
    validate: (v) => !looksPlaceholder(v) && !/^(?:pass|pwd|password|passwd|secret|pw|p@ss|pass123)$/i.test(v) && v.length >= 3,
  },
];

const GENERIC: SecretRule = {
  type: 'generic-secret',
  re: /(?<![A-Za-z0-9])([A-Za-z0-9_.-]{0,40}?(?:api[_.-]?key|apikey|secret[_.-]?key|secret|client[_.-]?secret|access[_.-]?key|access[_.-]?token|auth[_.-]?token|refresh[_.-]?token|id[_.-]?token|bearer[_.-]?token|session[_.-]?token|token|passwd|password|passphrase|pwd|pass|private[_.-]?key|credentials?|auth|api[_.-]?secret|signing[_.-]?key|encryption[_.-]?key|master[_.-]?key))["']?[ \t]{0,3}(?::=|=>|==?|:(?=[ \t"'`]))[ \t]{0,3}(?:!!binary[ \t]+)?["'`]?([^\s"'`,;<>]{6,256})/dgi,
  group: 2,
  lowerHints: ['key', 'secret', 'token', 'pass', 'pwd', 'auth', 'credential'],
  validate: (v, m) => genericValueOk(m[1] ?? '', v),
  severity: 'medium',
  // Every secret word contains one of these, at most 11 characters in (`encryption_key`), after a
  // name of at most 40; the match starts where no letter or digit precedes.
  anchor: { re: /key|secret|token|pass|pwd|auth|credential/gi, maxLead: 51, startOk: (t, p) => p === 0 || !isAlnum(t.charCodeAt(p - 1)) },
};

const HIGH_ENTROPY: SecretRule = {
  type: 'high-entropy-secret',
  re: /(?<![A-Za-z0-9_.-])([A-Za-z_][A-Za-z0-9_.-]{0,40})["']?[ \t]{0,3}(?::=|=>|=|:(?=[ \t"'`]))[ \t]{0,3}["'`]?([A-Za-z0-9+/_=~.-]{20,256})(?![A-Za-z0-9+/_=~.-])/dg,
  group: 2,
  hints: ['=', ':'],
  // Not a URL query parameter (`?q=…`): those are handled by the keyword rule when named like secrets.
  validate: (v, m) => !/[?&#/]/.test(m.input[m.index - 1] ?? '') && highEntropyOk(m[1] ?? '', v),
  severity: 'medium',
};

const PRIVATE_KEY_BEGIN = /-----BEGIN[ A-Z0-9]{0,30}PRIVATE KEY(?: BLOCK)?-----/g;
const END_MARK = /-----END[ A-Z0-9]{0,30}PRIVATE KEY(?: BLOCK)?-----/g;
const MAX_KEY_BODY = 32 * 1024;

function findPrivateKeys(text: string, out: SecretMatch[]): void {
  if (!text.includes('PRIVATE KEY')) return;
  PRIVATE_KEY_BEGIN.lastIndex = 0;
  let m: RegExpExecArray | null;
  let nextEnd = -1;
  let nextEndLen = 0;
  while ((m = PRIVATE_KEY_BEGIN.exec(text)) !== null) {
    const bodyStart = m.index + m[0].length;
    if (nextEnd < bodyStart) {
      END_MARK.lastIndex = bodyStart;
      const e = END_MARK.exec(text);
      nextEnd = e === null ? Number.MAX_SAFE_INTEGER : e.index;
      nextEndLen = e === null ? 0 : e[0].length;
    }
    let end: number;
    let body: string;
    if (nextEnd !== Number.MAX_SAFE_INTEGER && nextEnd - bodyStart <= MAX_KEY_BODY) {
      body = text.slice(bodyStart, nextEnd);
      end = nextEnd + nextEndLen;
    } else {
      // No end marker (cut output): take the base64 lines that follow.
      const tail = /^(?:\s|\\n|\\r|[A-Za-z0-9+/=:,.-])*/.exec(text.slice(bodyStart, bodyStart + MAX_KEY_BODY));
      body = tail?.[0] ?? '';
      end = bodyStart + body.length;
    }
    const material = body.replace(/\\[nr]|\s/g, '').replace(/^(?:Proc-Type|DEK-Info|Comment|Version):[^\n]*/gm, '');
    if (material.replace(/[^A-Za-z0-9+/]/g, '').length < 32 || entropy(material) < 3.0) continue;
    out.push({ type: 'private-key', start: m.index, end, severity: 'high' });
    PRIVATE_KEY_BEGIN.lastIndex = Math.max(PRIVATE_KEY_BEGIN.lastIndex, end);
  }
}

/**
 * A Google service-account key file (JSON, also JSON-escaped inside another string): the marker
 * `"type": "service_account"` (lower case, as Google writes it; `SERVICE_ACCOUNT` principal kinds
 * in API listings do not match), plus the key material fields of the same object. The marker value
 * is replaced so the output says a key file was there even when the material itself was cut off;
 * `private_key_id` is replaced too. `client_email`, `project_id` and `client_id` are left visible:
 * they name the account to rotate and are not credentials. A PEM `private_key` is the private-key
 * rule's; a `private_key` field holding anything else non-trivial is redacted here.
 */
const SA_MARKER = /\\{0,3}["']type\\{0,3}["'][ \t]{0,3}:[ \t]{0,3}\\{0,3}["'](service_account)\\{0,3}["']/dg;
const SA_FIELD = /\\{0,3}["'](private_key(?:_id)?)\\{0,3}["'][ \t]{0,3}:[ \t]{0,3}\\{0,3}["']((?:[^"'\\]|\\{1,2}[nr/+=])*)/dg;
/** How far from the marker the rest of the key file is looked for (a key file is about 2.4 KB). */
const SA_REACH = 8 * 1024;

function findServiceAccountKeys(text: string, out: SecretMatch[]): void {
  if (!text.includes('service_account')) return;
  SA_MARKER.lastIndex = 0;
  let m: RegExpExecArray | null;
  // The last object looked at: a second marker inside it shares its verdict (and is not rescanned).
  let objectEnd = -1;
  let flag = false;
  let material = false;
  while ((m = SA_MARKER.exec(text)) !== null) {
    const marker = m.indices?.[1];
    if (marker === undefined) continue;
    if (marker[1] > objectEnd) {
      // The enclosing object: key files hold no nested objects, so the nearest braces bound it
      // (the key order may put `type` anywhere, e.g. after `jq -S`). Both searches are bounded and
      // start after the previous object, so the work stays linear in the text.
      const backFrom = Math.max(objectEnd + 1, m.index - SA_REACH);
      const open = text.slice(backFrom, m.index).lastIndexOf('{');
      const from = open >= 0 ? backFrom + open : backFrom;
      const close = text.slice(marker[1], marker[1] + SA_REACH).indexOf('}');
      objectEnd = close >= 0 ? marker[1] + close : Math.min(text.length, marker[1] + SA_REACH);
      const object = text.slice(from, objectEnd);
      let fields = 0;
      material = false;
      SA_FIELD.lastIndex = 0;
      let f: RegExpExecArray | null;
      while ((f = SA_FIELD.exec(object)) !== null) {
        fields++;
        const span = f.indices?.[2];
        const value = f[2] ?? '';
        if (value.includes('PRIVATE KEY')) {
          const body = value.replace(/-----[A-Z ]{0,40}-----|\\{1,2}[nr]/g, '').replace(/[^A-Za-z0-9+/]/g, '');
          if (body.length >= 32 && entropy(body) >= 3.0) material = true;
          continue;
        }
        const min = f[1] === 'private_key' ? 32 : 16;
        if (span === undefined || value.length < min || looksPlaceholder(value) || entropy(value) < 3.0) continue;
        material = true;
        out.push({ type: 'gcp-service-account', start: from + span[0], end: from + span[1], severity: 'high' });
      }
      // Key fields that are all placeholders (`"private_key_id": "…"`) make a documentation example.
      flag = fields === 0 || material;
    }
    if (flag) out.push({ type: 'gcp-service-account', start: marker[0], end: marker[1], severity: material ? 'high' : 'medium' });
  }
}

function runRule(rule: SecretRule, text: string, lower: string, out: SecretMatch[], everyPosition = false, present?: HintsPresent): void {
  if (rule.hints !== undefined && !rule.hints.some((h) => (present ? present.cased.has(h) : text.includes(h)))) return;
  if (rule.lowerHints !== undefined && !rule.lowerHints.some((h) => (present ? present.lower.has(h) : lower.includes(h)))) return;
  if (rule.anchor !== undefined && !everyPosition) {
    runAnchored(rule, rule.anchor, text, out);
    return;
  }
  rule.re.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = rule.re.exec(text)) !== null) {
    if (m[0].length === 0) {
      rule.re.lastIndex++;
      continue;
    }
    accept(rule, m, out);
  }
}

/** A match of a rule's expression: its secret span, when the value passes the rule's checks. */
function accept(rule: SecretRule, m: RegExpExecArray, out: SecretMatch[]): void {
  const g = rule.group ?? 0;
  const value = m[g];
  const idx: readonly [number, number] | undefined = g === 0 ? [m.index, m.index + m[0].length] : m.indices?.[g];
  if (value === undefined || idx === undefined) return;
  if (rule.minEntropy !== undefined && entropy(value) < rule.minEntropy) return;
  if (rule.validate !== undefined && !rule.validate(value, m)) return;
  out.push({ type: rule.type, start: idx[0], end: idx[1], severity: rule.severity ?? 'high' });
}

const STICKY = new WeakMap<RegExp, RegExp>();

/**
 * The matches a global scan of `rule.re` finds, found by trying it only where a match can start:
 * at most `maxLead` characters before an anchor occurrence (every occurrence, overlapping ones
 * included), at positions passing `startOk`, in increasing order, from the end of the last match.
 * A position in no anchor's window cannot start a match, so the first success is the leftmost
 * match, as in the global scan.
 */
function runAnchored(rule: SecretRule, anchor: NonNullable<SecretRule['anchor']>, text: string, out: SecretMatch[]): void {
  let sticky = STICKY.get(rule.re);
  if (sticky === undefined) {
    sticky = new RegExp(rule.re.source, `${rule.re.flags.replace('g', '')}y`);
    STICKY.set(rule.re, sticky);
  }
  const a = anchor.re;
  a.lastIndex = 0;
  /** Positions below this are settled: tried, or inside a match already taken. */
  let next = 0;
  let h: RegExpExecArray | null;
  while ((h = a.exec(text)) !== null) {
    const k = h.index;
    let p = Math.max(next, k - anchor.maxLead);
    while (p <= k) {
      if (!anchor.startOk(text, p)) {
        p++;
        continue;
      }
      sticky.lastIndex = p;
      const m = sticky.exec(text);
      // No match here, or an empty one (the global scan steps over those too).
      if (m === null || m[0].length === 0) {
        p++;
        continue;
      }
      accept(rule, m, out);
      p += m[0].length;
    }
    if (p > next) next = p;
    // Anchors whose window lies wholly before `next` cannot start a match: skip them.
    a.lastIndex = Math.max(k + 1, next - anchor.maxLead);
  }
}

/** All secrets in `text`, non-overlapping, in order. Typed formats win over the generic rule. */
export function findSecrets(text: string): SecretMatch[] {
  return find(text, false);
}

/**
 * `findSecrets` with every rule's expression tried at every position (no anchors): slower on
 * long texts, the same result. The reference the anchored search is tested against.
 */
export function findSecretsEveryPosition(text: string): SecretMatch[] {
  return find(text, true);
}

/**
 * A necessary condition for both the vendor-token and the high-entropy rule: an assignment
 * (`=`, `:=`, `=>`, or `:` before a space, tab, quote or backslash, so not the `:` of a URL)
 * followed, after at most 3 spaces or tabs, 3 backslashes and a quote, by 20 value characters.
 * Both expressions require exactly that, so text without it skips them.
 */
const ASSIGNED_VALUE = /(?::=|=>|=|:(?=[ \t"'`\\]))[ \t]{0,3}\\{0,3}["'`]?[A-Za-z0-9+/_=~.-]{20}/;

/** A literal as a RegExp source. */
function literal(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');
}

for (const r of [...TYPED, GENERIC]) {
  if (r.hints === undefined && r.lowerHints === undefined) throw new Error(`secret rule ${r.type} has no hints: the first test in find() would skip it`);
}

/** Which rules' hints occur in a text (`cased` in the text, `lower` in its lower-case form). */
interface HintsPresent {
  cased: ReadonlySet<string>;
  lower: ReadonlySet<string>;
}

/**
 * Finds which of `hints` occur in a text in one scan, rather than one `includes` per hint per
 * rule (about a hundred passes over a long text). The scan stops at every position where some
 * hint starts and reports the longest hint there (alternatives longest first); every hint that
 * starts there is a prefix of that one, so each is credited with its prefixes. After
 * `maxStops` stops (a text full of a short hint), the hints not yet seen are looked for one by
 * one from there, as before.
 */
export class HintScan {
  private readonly scan: RegExp;
  private readonly anyHint: RegExp;
  private readonly prefixes = new Map<string, readonly string[]>();
  private readonly hints: readonly string[];
  constructor(hints: readonly string[], private readonly maxStops = 64) {
    this.hints = [...new Set(hints)].sort((a, b) => b.length - a.length);
    this.scan = new RegExp(this.hints.map(literal).join('|'), 'g');
    this.anyHint = new RegExp(this.scan.source);
    for (const h of this.hints) this.prefixes.set(h, this.hints.filter((p) => h.startsWith(p)));
  }

  /** Some hint occurs in `s` (stops at the first). */
  any(s: string): boolean {
    return this.anyHint.test(s);
  }

  list(): string[] {
    return [...this.hints].sort();
  }

  present(s: string): Set<string> {
    const found = new Set<string>();
    const scan = this.scan;
    scan.lastIndex = 0;
    let m: RegExpExecArray | null;
    let stops = 0;
    while (found.size < this.hints.length && (m = scan.exec(s)) !== null) {
      if (++stops > this.maxStops) {
        for (const h of this.hints) if (!found.has(h) && s.includes(h, m.index)) found.add(h);
        break;
      }
      for (const h of this.prefixes.get(m[0])!) found.add(h);
      scan.lastIndex = m.index + 1;
    }
    return found;
  }
}
/**
 * The typed rules' and the generic rule's hints, with the private-key and service-account
 * markers (in the text as given, and in its lower-case form). Not the high-entropy rule's `=` and
 * `:`: in JSON and code they are everywhere (that rule keeps `includes`, behind ASSIGNED_VALUE).
 * Built from the rules, so a new rule's hints are in.
 */
const CASED_SCAN = new HintScan([...[...TYPED, GENERIC].flatMap((r) => r.hints ?? []), 'PRIVATE KEY', 'service_account']);
const LOWER_SCAN = new HintScan([...TYPED, GENERIC].flatMap((r) => r.lowerHints ?? []));

/** Test hook: the hints the one-scan search finds in a text, and every hint it looks for. */
export function secretHintsPresent(text: string): { cased: string[]; lower: string[]; all: { cased: string[]; lower: string[] } } {
  return {
    cased: [...CASED_SCAN.present(text)].sort(),
    lower: [...LOWER_SCAN.present(text.toLowerCase())].sort(),
    all: { cased: CASED_SCAN.list(), lower: LOWER_SCAN.list() },
  };
}

function find(text: string, everyPosition: boolean): SecretMatch[] {
  const lower = text.toLowerCase();
  // Long texts: which hints occur, in one scan each; short ones: a few `includes` per rule cost
  // less. (The every-position reference keeps `includes`: it is what the scan is compared with.)
  const present: HintsPresent | undefined = !everyPosition && text.length > 256 ? { cased: CASED_SCAN.present(text), lower: LOWER_SCAN.present(lower) } : undefined;
  // The first test: a rule can only match where one of its hints occurs, and the vendor and
  // high-entropy rules only where ASSIGNED_VALUE does. Text with none of them (most short values:
  // names, ids, prose snippets) has no secret.
  if (!everyPosition && !ASSIGNED_VALUE.test(text)) {
    const hinted = present ? present.cased.size > 0 || present.lower.size > 0 : CASED_SCAN.any(text) || LOWER_SCAN.any(lower);
    if (!hinted) return [];
  }
  const typed: SecretMatch[] = [];
  findPrivateKeys(text, typed);
  findServiceAccountKeys(text, typed);
  for (const rule of TYPED) runRule(rule, text, lower, typed, everyPosition, present);
  const assigned = everyPosition || ASSIGNED_VALUE.test(text);
  // After the typed rules: a vendor's own format wins on the same span.
  if (assigned) findVendorTokens(text, typed);
  const generic: SecretMatch[] = [];
  runRule(GENERIC, text, lower, generic, everyPosition, present);
  const entropic: SecretMatch[] = [];
  if (assigned) runRule(HIGH_ENTROPY, text, lower, entropic, everyPosition);
  const pick = (list: SecretMatch[], taken: SecretMatch[]): SecretMatch[] => {
    list.sort((a, b) => a.start - b.start || b.end - a.end);
    const kept: SecretMatch[] = [];
    for (const s of list) {
      if (taken.some((t) => s.start < t.end && t.start < s.end)) continue;
      if (kept.length > 0 && s.start < kept[kept.length - 1]!.end) continue;
      kept.push(s);
    }
    return kept;
  };
  const t = pick(typed, []);
  const g = pick(generic, t);
  const e = pick(entropic, [...t, ...g]);
  return [...t, ...g, ...e].sort((a, b) => a.start - b.start);
}

/** A preview safe to print: a few leading characters and the length. */
export function maskSecret(value: string): string {
  const show = Math.min(4, Math.floor(value.length / 5));
  return `${value.slice(0, show)}…(${value.length} chars)`;
}

export function placeholder(type: string): string {
  return `[REDACTED:${type}]`;
}

export interface RedactResult {
  text: string;
  matches: SecretMatch[];
  findings: Finding[];
}

/** The finding for one match: the rule, and evidence with the secret masked (never in clear). */
export function secretFinding(text: string, s: SecretMatch): Finding {
  return {
    rule: `secret.${s.type}`,
    kind: 'secret',
    severity: s.severity,
    message: `secret found: ${s.type.replace(/-/g, ' ')}`,
    evidence: maskSecret(text.slice(s.start, s.end)),
    start: s.start,
    end: s.end,
  };
}

/** Replace every secret with its typed placeholder, in one pass over the matches. */
export function redactSecrets(text: string, matches: SecretMatch[] = findSecrets(text)): RedactResult {
  if (matches.length === 0) return { text, matches, findings: [] };
  let out = '';
  let last = 0;
  const findings: Finding[] = [];
  for (const s of matches) {
    out += text.slice(last, s.start) + placeholder(s.type);
    last = s.end;
    findings.push(secretFinding(text, s));
  }
  out += text.slice(last);
  return { text: out, matches, findings };
}

/** Types the redactor knows, for documentation. */
export const SECRET_TYPES: readonly string[] = ['private-key', 'gcp-service-account', ...TYPED.map((r) => r.type), 'vendor-token', GENERIC.type, HIGH_ENTROPY.type];
