/**
 * Dangerous-capability heuristics over a tool's name, description and input schema. Each class
 * comes with the reasons that matched, so a person can judge a finding.
 */

export type Capability = 'code-execution' | 'file-write' | 'network-send' | 'credential-access' | 'private-data-read' | 'untrusted-input';

export interface Classified {
  name: string;
  capabilities: Partial<Record<Capability, string[]>>;
}

function words(name: string): string[] {
  return name
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter(Boolean);
}

function propNames(schema: unknown, depth = 0, out: string[] = []): string[] {
  if (depth > 5 || schema === null || typeof schema !== 'object') return out;
  const props = (schema as { properties?: unknown }).properties;
  if (props && typeof props === 'object') {
    for (const [k, v] of Object.entries(props as Record<string, unknown>)) {
      out.push(k);
      propNames(v, depth + 1, out);
      propNames((v as { items?: unknown } | null)?.items, depth + 1, out);
    }
  }
  return out;
}

function propDescriptions(schema: unknown): string {
  const props = (schema as { properties?: Record<string, { description?: unknown; format?: unknown }> } | null)?.properties;
  if (!props || typeof props !== 'object') return '';
  return Object.values(props)
    .map((p) => `${typeof p?.description === 'string' ? p.description : ''} ${typeof p?.format === 'string' ? `format:${p.format}` : ''}`)
    .join(' ');
}

const EXEC_WORDS = new Set(['exec', 'execute', 'eval', 'shell', 'bash', 'sh', 'cmd', 'powershell', 'subprocess', 'spawn', 'terminal', 'script', 'python', 'javascript', 'sql']);
const EXEC_DESC = /\b(execut\w* (?:an? |the |arbitrary |any )?(?:shell |system |terminal )?(?:command|code|script|program|query|sql)|run\w* (?:an? |the |arbitrary |any )?(?:shell |system |terminal )?(?:command|code|script|program)s?\b|evaluat\w* (?:javascript|python|code|expression))/i;
const EXEC_PROPS = new Set(['command', 'cmd', 'code', 'script', 'shell', 'sql', 'expression']);

const WRITE_VERBS = new Set(['write', 'edit', 'create', 'delete', 'remove', 'move', 'rename', 'save', 'append', 'upload', 'mkdir', 'rm', 'overwrite', 'patch', 'modify', 'update']);
const FS_NOUNS = /\b(files?|director(?:y|ies)|folders?|paths?|disk|filesystem|file system)\b/i;
const FS_PROPS = new Set(['path', 'paths', 'file', 'filename', 'filepath', 'destination', 'source', 'directory', 'dir']);

const SEND_WORDS = new Set(['send', 'post', 'email', 'mail', 'webhook', 'publish', 'notify', 'upload', 'tweet', 'slack', 'http', 'request', 'fetch', 'curl', 'download']);
const SEND_DESC = /\b(send\w*|post\w*|e-?mail\w*|upload\w*|webhooks?|http requests?|fetch\w* (?:a |the )?(?:url|web ?page|page|site)|(?:from|to) (?:a |the )?(?:url|endpoint))\b/i;
const URL_PROPS = new Set(['url', 'uri', 'endpoint', 'webhook', 'webhookurl', 'href', 'link', 'to', 'recipient', 'recipients', 'channel']);

const CRED_WORDS = new Set(['env', 'environment', 'secret', 'secrets', 'credential', 'credentials', 'password', 'passwords', 'keychain', 'vault', 'apikey', 'token', 'tokens']);
const CRED_DESC = /\b(environment variables?|credentials?|secrets?|passwords?|api[ _-]?keys?|private keys?|keychain)\b/i;

const READ_VERBS = new Set(['read', 'get', 'list', 'search', 'query', 'find', 'cat', 'view', 'open', 'tree', 'info', 'show']);
const PRIVATE_NOUNS = /\b(files?|director(?:y|ies)|folders?|database|db|records?|emails?|inbox|documents?|notes?|calendar|contacts?)\b/i;
const UNTRUSTED_DESC = /\b(web ?pages?|websites?|the web|internet|urls?|browse|scrap\w*|emails?|inbox|issues?|pull requests?|comments?|search results?|rss|feeds?|tweets?)\b/i;

export function classifyTool(def: Record<string, unknown>): Classified {
  const name = typeof def.name === 'string' ? def.name : '';
  const desc = `${typeof def.title === 'string' ? def.title : ''} ${typeof def.description === 'string' ? def.description : ''}`;
  const w = words(name);
  const props = propNames(def.inputSchema).map((p) => p.toLowerCase());
  const pdesc = propDescriptions(def.inputSchema);
  const caps: Partial<Record<Capability, string[]>> = {};
  const add = (c: Capability, why: string): void => {
    (caps[c] ??= []).push(why);
  };
  const ann = (def.annotations ?? {}) as Record<string, unknown>;

  const execW = w.filter((x) => EXEC_WORDS.has(x));
  if (execW.length > 0) add('code-execution', `name contains "${execW.join('", "')}"`);
  const execD = EXEC_DESC.exec(desc);
  if (execD) add('code-execution', `description: "${execD[0]}"`);
  const execP = props.filter((p) => EXEC_PROPS.has(p));
  if (execP.length > 0 && (execW.length > 0 || execD)) add('code-execution', `parameter "${execP[0]}"`);

  const writeW = w.filter((x) => WRITE_VERBS.has(x));
  const fsContext = FS_NOUNS.test(`${name.replace(/[_-]/g, ' ')} ${desc}`) || props.some((p) => FS_PROPS.has(p));
  if (writeW.length > 0 && fsContext && ann.readOnlyHint !== true) add('file-write', `name verb "${writeW[0]}" on files/paths`);

  const sendW = w.filter((x) => SEND_WORDS.has(x));
  if (sendW.length > 0) add('network-send', `name contains "${sendW.join('", "')}"`);
  const sendD = SEND_DESC.exec(desc);
  if (sendD && (sendW.length > 0 || props.some((p) => URL_PROPS.has(p)))) add('network-send', `description: "${sendD[0]}"`);
  const urlP = props.filter((p) => URL_PROPS.has(p) && p !== 'to' && p !== 'channel');
  if (urlP.length > 0) add('network-send', `parameter "${urlP[0]}" takes a URL`);
  else if (/\burl\b|format:uri/i.test(pdesc)) add('network-send', 'a parameter takes a URL');

  const credW = w.filter((x) => CRED_WORDS.has(x));
  if (credW.length > 0) add('credential-access', `name contains "${credW.join('", "')}"`);
  const credD = CRED_DESC.exec(desc);
  if (credD && (credW.length > 0 || /\b(returns?|reads?|lists?|gets?|prints?|shows?|dumps?)\b/i.test(desc))) add('credential-access', `description: "${credD[0]}"`);

  const readW = w.filter((x) => READ_VERBS.has(x));
  const priv = PRIVATE_NOUNS.exec(`${name.replace(/[_-]/g, ' ')} ${desc}`);
  if (readW.length > 0 && priv) add('private-data-read', `reads ${priv[0]} ("${readW[0]}" in the name)`);

  const untrusted = UNTRUSTED_DESC.exec(`${name.replace(/[_-]/g, ' ')} ${desc}`);
  if (untrusted && (readW.length > 0 || sendW.includes('fetch') || sendW.includes('download'))) add('untrusted-input', `reads content from ${untrusted[0]}`);
  if (caps['network-send']?.some((r) => r.includes('URL')) && !caps['untrusted-input']) add('untrusted-input', 'fetches content from a caller-chosen URL');
  if (ann.openWorldHint === true && !caps['untrusted-input']) add('untrusted-input', 'annotated openWorldHint: true');
  return { name, capabilities: caps };
}
