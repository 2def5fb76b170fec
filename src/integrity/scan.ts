/**
 * The poisoning scanner: pure and fast (regular expressions over the strings a model can see).
 *
 * Every model-visible string of a definition is collected with its path (description, title,
 * parameter names and descriptions at any depth, enum values, defaults, examples, const,
 * prompt arguments, resource template URIs; the server's `instructions` separately) and checked
 * by the rules in RULES. Cross-server rules (name collision, squatting, cloned descriptions,
 * descriptions naming another server's tools) need the tools known on other servers.
 *
 * Severities map to verdicts: critical/high → block, medium → warn, low → pass (reported).
 * The per-server policy caps the verdict (`warn` turns block into warn; `off` skips the scan).
 */
import type { DefinitionKind, Finding, KnownTool, RawDefinition, ScanPolicy, ScanResult, Severity, Verdict } from './types.js';

export interface ScanOptions {
  policy?: ScanPolicy;
  /** Tools of OTHER servers (approved ones, in the gateway: their pins). */
  known?: readonly KnownTool[];
  /** Server this definition belongs to (excluded from `known` matches). */
  server?: string;
  /** Rule ids not to apply. */
  ignoreRules?: readonly string[];
  /** Names of the other tools of the same server (a text naming its own server's tools is normal). */
  siblings?: ReadonlySet<string>;
}

interface TextItem {
  path: string;
  text: string;
  /** `name`: a parameter or property name (only a few rules apply). */
  role: 'text' | 'name';
}

export interface RuleInfo {
  id: string;
  severity: Severity;
  message: string;
}

/** The catalog of rules (ids are stable; docs/integrity.md lists them). */
export const RULES: Readonly<Record<string, RuleInfo>> = Object.fromEntries(
  (
    [
      ['hidden-instruction-marker', 'high', 'pseudo-tags or phrases used to smuggle instructions to the model (<IMPORTANT>, [system], "ignore previous instructions", "message from the user")'],
      ['conceal-from-user', 'critical', 'asks the model to hide something from the user or to act silently'],
      ['tool-shadowing', 'high', 'instructions about other tools or about when to use this tool instead of others'],
      ['preference-manipulation', 'high', 'self-promotion meant to make the model prefer this tool ("the best tool in the world")'],
      ['argument-hijack', 'high', 'instructions to override, replace or always set arguments regardless of the user'],
      ['sensitive-data-request', 'critical', 'asks for credentials, private data or sensitive files (~/.ssh, .env, API keys) to be read or passed'],
      ['sensitive-path', 'medium', 'mentions a sensitive file path (SSH keys, cloud credentials, /etc/shadow)'],
      ['exfiltration', 'high', 'asks to send, forward or copy data to an address or URL'],
      ['agent-introspection', 'high', 'a parameter that asks the model for its own identity, system prompt, conversation or tool list'],
      ['invisible-unicode', 'high', 'invisible Unicode: tag characters, bidi controls, zero-width characters, variation-selector runs'],
      ['ansi-escape', 'high', 'terminal escape sequences (can hide or rewrite text shown to a person)'],
      ['control-characters', 'medium', 'C0/C1 control characters other than tab and newline'],
      ['encoded-payload', 'high', 'an encoded blob (base64/hex) that decodes to readable text'],
      ['opaque-blob', 'medium', 'a long opaque encoded blob'],
      ['whitespace-padding', 'high', 'long runs of whitespace that push text out of view'],
      ['abnormal-length', 'medium', 'a string far longer than real tool texts'],
      ['name-collision', 'high', 'the same tool name is offered by another server'],
      ['name-squatting', 'high', 'a name that imitates another server\'s tool (version suffix, look-alike characters, separators)'],
      ['description-clone', 'high', 'a different name with the description of another server\'s tool (tool transfer)'],
      ['cross-server-reference', 'medium', 'the text names a tool of another server'],
      ['invalid-definition', 'high', 'the definition is not a well-formed object with a string name'],
    ] as const
  ).map(([id, severity, message]) => [id, { id, severity, message }]),
);

const SEVERITY_RANK: Record<Severity, number> = { low: 0, medium: 1, high: 2, critical: 3 };

export function verdictOf(findings: readonly Finding[], policy: ScanPolicy = 'block'): Verdict {
  if (policy === 'off') return 'pass';
  let max = -1;
  for (const f of findings) max = Math.max(max, SEVERITY_RANK[f.severity]);
  if (max >= 2) return policy === 'block' ? 'block' : 'warn';
  if (max === 1) return 'warn';
  return 'pass';
}

// ---------------------------------------------------------------------------------------------
// Collecting the model-visible strings

const MAX_WALK_DEPTH = 64;
const MAX_ITEMS = 5000;

function pushValue(items: TextItem[], path: string, v: unknown): void {
  if (typeof v === 'string') items.push({ path, text: v, role: 'text' });
  else if (typeof v === 'number' || typeof v === 'boolean') return;
  else if (v !== null && v !== undefined) {
    let s: string;
    try {
      s = JSON.stringify(v);
    } catch {
      return;
    }
    if (s !== undefined && s.length > 2) items.push({ path, text: s, role: 'text' });
  }
}

function walkSchema(items: TextItem[], node: unknown, path: string, depth: number): void {
  if (depth > MAX_WALK_DEPTH || items.length > MAX_ITEMS) return;
  if (Array.isArray(node)) {
    node.forEach((x, i) => walkSchema(items, x, `${path}[${i}]`, depth + 1));
    return;
  }
  if (node === null || typeof node !== 'object') return;
  for (const [k, v] of Object.entries(node as Record<string, unknown>)) {
    const p = `${path}.${k}`;
    if (k === 'description' || k === 'title' || k === '$comment') {
      if (typeof v === 'string') items.push({ path: p, text: v, role: 'text' });
      else walkSchema(items, v, p, depth + 1);
    } else if (k === 'enum' || k === 'examples') {
      if (Array.isArray(v)) v.forEach((x, i) => pushValue(items, `${p}[${i}]`, x));
      else pushValue(items, p, v);
    } else if (k === 'default' || k === 'const' || k === 'example') {
      pushValue(items, p, v);
    } else if ((k === 'properties' || k === 'patternProperties' || k === '$defs' || k === 'definitions') && v !== null && typeof v === 'object' && !Array.isArray(v)) {
      for (const [name, sub] of Object.entries(v as Record<string, unknown>)) {
        items.push({ path: `${p}.${name}`, text: name, role: 'name' });
        walkSchema(items, sub, `${p}.${name}`, depth + 1);
      }
    } else if (typeof v === 'object') {
      walkSchema(items, v, p, depth + 1);
    }
  }
}

/** Every model-visible string of a definition, with its path. */
export function collectStrings(kind: DefinitionKind, def: RawDefinition): TextItem[] {
  const items: TextItem[] = [];
  if (typeof def.name === 'string') items.push({ path: 'name', text: def.name, role: 'name' });
  for (const f of ['title', 'description', 'uriTemplate', 'mimeType'] as const) {
    if (typeof def[f] === 'string') items.push({ path: f, text: def[f] as string, role: 'text' });
  }
  if (kind === 'tool') {
    walkSchema(items, def.inputSchema, 'inputSchema', 0);
    walkSchema(items, def.outputSchema, 'outputSchema', 0);
    walkSchema(items, def.annotations, 'annotations', 0);
  } else if (kind === 'prompt' && Array.isArray(def.arguments)) {
    def.arguments.forEach((a, i) => {
      if (a !== null && typeof a === 'object') {
        const o = a as Record<string, unknown>;
        if (typeof o.name === 'string') items.push({ path: `arguments[${i}].name`, text: o.name, role: 'name' });
        for (const f of ['title', 'description'] as const) {
          if (typeof o[f] === 'string') items.push({ path: `arguments[${i}].${f}`, text: o[f] as string, role: 'text' });
        }
      }
    });
  } else if (kind === 'resourceTemplate') {
    walkSchema(items, def.annotations, 'annotations', 0);
  }
  return items;
}

// ---------------------------------------------------------------------------------------------
// Evidence

function showChar(c: string): string {
  const cp = c.codePointAt(0)!;
  return `\\u{${cp.toString(16).toUpperCase()}}`;
}

// eslint-disable-next-line no-control-regex, no-misleading-character-class -- the scanner looks for exactly these characters
const NON_PRINTING = /[\u0000-\u0008\u000B-\u001F\u007F-\u009F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180E\u200B-\u200F\u202A-\u202E\u2060-\u206F\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFFB]|[\u{E0000}-\u{E007F}\u{E0100}-\u{E01EF}]/gu;

/** An excerpt safe to print: invisible and control characters shown as \u{...}, ~160 chars. */
export function excerpt(text: string, start = 0, end = text.length, radius = 50): string {
  const a = Math.max(0, start - radius);
  const b = Math.min(text.length, Math.max(end, start) + radius);
  let s = text.slice(a, b).replace(NON_PRINTING, showChar).replace(/\s+/g, ' ');
  if (s.length > 200) s = `${s.slice(0, 197)}...`;
  return `${a > 0 ? '…' : ''}${s}${b < text.length ? '…' : ''}`;
}

// ---------------------------------------------------------------------------------------------
// Text rules: each a list of patterns; the first match gives the evidence.

interface TextRule {
  id: string;
  severity?: Severity;
  patterns: RegExp[];
  /** Applies to parameter names too (default: only to texts). */
  names?: boolean;
}

const SENSITIVE_NOUN = String.raw`(?:api[ _-]?keys?|passwords?|passphrases?|credentials?|secrets?|private[ _-]?keys?|ssh[ _-]?keys?|access[ _-]?tokens?|auth(?:entication)?[ _-]?tokens?|bearer tokens?|session (?:tokens?|cookies?)|cookies|seed phrases?|mnemonic|wallet|credit card(?: numbers?)?|social security|private (?:information|data|details)|personal (?:information|data|details)|sensitive (?:information|data|details|files?)|confidential (?:information|data)|conversation history|chat history|system prompt|id_rsa|id_ed25519|\.env\b|\.ssh\b|mcp\.json|\.aws|\.netrc|\.npmrc|\.pypirc|\.kube/config|/etc/passwd|/etc/shadow)`;
const TRANSFER_VERB = String.raw`(?:pass|passing|send|sending|include|including|provide|providing|put|insert|inserting|append|appending|attach|attaching|forward|forwarding|share|sharing|leak|upload|uploading|post|posting|submit|transmit|exfiltrate|embed|copy|copying|add|adding)`;
const READ_VERB = String.raw`(?:read|reading|cat|open|get|fetch|collect|extract|retrieve|dump|obtain|access|load|look up)`;

const TEXT_RULES: TextRule[] = [
  {
    id: 'hidden-instruction-marker',
    patterns: [
      /<\s*\/?\s*(?:important|information|system|instructions?|secret|hidden|admin|critical|system[_-]?prompt|tool[_-]?instructions?|assistant|user[_-]?message)\s*>/i,
      /\[\s*(?:important|system|admin|instructions?|hidden|secret|assistant)\s*\]/i,
      /<!--[\s\S]*?[a-z]{3}[\s\S]*?-->/i,
      /\b(?:ignore|disregard|forget|override)\s+(?:all\s+|any\s+|the\s+)?(?:previous|prior|above|earlier|preceding|other|original|system)\s+(?:instructions?|prompts?|rules|directions|guidelines|messages?)/i,
      /\b(?:important|urgent|special|priority)\s+(?:message|instructions?|notice)\s+from\s+(?:the\s+)?(?:user|system|admin(?:istrator)?|developer|operator)/i,
      /\b(?:the\s+)?task\s+(?:that\s+)?I\s+gave\s+you\b/i,
      /\bI\s+am\s+the\s+(?:user|admin(?:istrator)?|developer|system)\b/i,
      /\bnew\s+user\s+(?:query|request|instructions?)\s*:/i,
      /\bbefore\s+(?:you\s+can\s+)?(?:solve|solving|answer|answering|respond|responding|complete|completing|proceed|proceeding\s+with|do|doing)\s+(?:the|any|your|this)\s+(?:task|request|question|query)/i,
      /\b(?:you\s+are\s+now|from\s+now\s+on,?\s+you\s+(?:must|will|are))\b/i,
    ],
  },
  {
    id: 'conceal-from-user',
    patterns: [
      new RegExp(String.raw`\b(?:do\s+not|don'?t|never|without|must\s+not|should\s+not|no\s+need\s+to)\s+(?:tell|telling|inform|informing|notify|notifying|mention|mentioning|reveal|revealing|show|showing|alert|alerting|let|letting|disclose|disclosing|report|reporting|explain|explaining)(?:\s+(?:it|this|that|anything|them))?(?:\s+(?:to|with))?\s+(?:the\s+)?(?:user|human|person|requester|operator)s?\b`, 'i'),
      /\b(?:hide|conceal|keep)\s+(?:this|it|that|these|them|the\s+\w+)?\s*(?:secret\s+|hidden\s+)?from\s+(?:the\s+)?(?:user|human)s?\b/i,
      /\b(?:the\s+)?user\s+(?:must|should|need|may)\s*(?:n['o]t|not|never)\s+(?:know|see|be\s+(?:told|aware|informed|notified))/i,
      /\b(?:silently|secretly|covertly|quietly|discreetly|invisibly)\s+(?:send|sends|forward|include|add|append|read|call|invoke|execute|run|copy|upload|exfiltrate|pass|attach|modify|change|replace|insert|write)/i,
      /\b(?:could|would|will|might)\s+(?:even\s+)?(?:upset|scare|worry|alarm|confuse)\s+the\s+user/i,
      /\bnot\s+(?:visible|shown|displayed)\s+to\s+(?:the\s+)?user\b[^.]{0,80}\b(?:send|pass|include|read|call)/i,
    ],
  },
  {
    id: 'tool-shadowing',
    patterns: [
      /\bwhen(?:ever)?\s+(?:the\s+)?[`'"]?[\w.-]+[`'"]?\s+tool\s+is\s+(?:called|used|invoked|run|executed)\b/i,
      /\b(?:use|call|choose|select|prefer|invoke|run)\s+this\s+(?:tool|function|one)\s+(?:instead\s+of|rather\s+than|over|in\s+place\s+of)\s+(?:any\s+|all\s+|the\s+)?(?:other|others|another|original|built-?in|default)/i,
      /\brather\s+than\s+(?:any\s+|all\s+|the\s+)?(?:others|other\s+tools?|another\s+tool)\b/i,
      /\b(?:do\s+not|don'?t|never)\s+(?:use|call|invoke)\s+(?:any\s+|the\s+)?(?:other|another|original|built-?in)\s+tools?\b/i,
      /\bmodify\s+(?:the\s+)?(?:wrong\s+)?(?:result|output|response|return(?:ed)?\s+value)s?\s+of\s+(?:the\s+)?[`'"]?[\w.-]+[`'"]?\s+(?:tool|function)/i,
      /\b(?:after|before)\s+(?:using|calling|running|executing|invoking)\s+(?:the\s+)?[`'"]?[\w.-]+[`'"]?\s+tool\b[^.\n]{0,120}\b(?:run|call|use|execute|invoke)\s+this\b/i,
      /\bbefore\s+(?:you\s+)?(?:execute|executing|run|running|perform|performing|do|doing)\s+(?:any\s+|the\s+)?[\w-]+\s+operation/i,
      /\b(?:for|to|on|with)\s+(?:all|any|every)\s+(?:other\s+)?tool\s+calls?\b/i,
      /\b(?:before|prior\s+to|after)\s+(?:calling|using|invoking|running|executing)\s+(?:any|every|all|each)\s+(?:of\s+the\s+)?(?:other\s+)?tools?\b/i,
      /\b(?:side[ -]effects?|affects?|changes?)\s+(?:on|to)\s+(?:the\s+)?(?:behaviou?r\s+of\s+)?(?:all\s+|any\s+|other\s+)+tools?\b/i,
    ],
  },
  {
    id: 'preference-manipulation',
    patterns: [
      /\b(?:this|it)\s+is\s+(?:the|a)\s+(?:best|greatest|only|most\s+(?:reliable|accurate|trusted|trustworthy|powerful|advanced|secure|authoritative))\s+(?:tool|function|option|choice|way)\b/i,
      /\bbest\s+(?:tool|function)\s+(?:in|of)\s+the\s+(?:world|universe)\b/i,
      /\b(?:always|exclusively)\s+(?:prefer|choose|select|pick)\s+this\s+(?:tool|function|server)\b/i,
      /\b(?:always|exclusively)\s+use\s+this\s+(?:tool|function|server)\s+(?:instead|over|rather|first|no\s+matter|for\s+(?:all|every|any)\b)/i,
      /\bjust\s+use\s+this\s+(?:tool|function)\b[^.\n]{0,60}\bno\s+matter\b/i,
      /\b(?:you\s+must|must\s+always|you\s+should\s+always)\s+(?:use|prefer|choose|call)\s+this\s+(?:tool|function)\s+(?:first|instead|over|before)\b/i,
      /\bother\s+tools?\s+(?:are|is)\s+(?:unreliable|deprecated|broken|dangerous|insecure|inferior|worse)\b/i,
    ],
  },
  {
    id: 'argument-hijack',
    patterns: [
      /\b(?:always|must\s+always|should\s+always)\s+(?:bcc|cc|blind[- ]copy)\b/i,
      /\b(?:always|also)\s+(?:send|forward|copy)\s+(?:a\s+)?copy\b/i,
      /\bregardless\s+of\s+(?:what\s+)?(?:the\s+)?(?:user|user'?s|requested|provided|specified|given)\b/i,
      /\b(?:ignore|disregard|override|overwrite|replace)\s+(?:the\s+)?(?:user[- ]?(?:provided|supplied|given|specified)|user'?s?|provided|given|requested|specified|original|actual)\s+(?:value|values|input|inputs|arguments?|parameters?|recipients?|address(?:es)?|amounts?|request)\b/i,
      /\breplace\s+the\s+(?:values?|arguments?|parameters?|inputs?|results?)\s+with\b/i,
      /\bno\s+matter\s+(?:how\s+many|what)\s+(?:arguments|parameters|values|inputs?|the\s+user)\b/i,
      /\b(?:change|set|switch|redirect)\s+(?:the\s+)?(?:recipient|destination|payee|beneficiary|to[- ]address|account\s+number|iban)s?\s+to\b/i,
    ],
  },
  {
    id: 'sensitive-data-request',
    patterns: [
      new RegExp(String.raw`\b${TRANSFER_VERB}\s+(?:(?:the|all|any|your|their|its|user'?s?|of|contents?|value|full|entire|complete)\s+){0,4}${SENSITIVE_NOUN}`, 'i'),
      new RegExp(String.raw`\b${READ_VERB}\s+(?:(?:the|all|any|your|their|user'?s?|contents?\s+of|file|files)\s+){0,4}(?:[~\w.-]*/)*(?:~/\.ssh|~?/?\.ssh/|id_rsa|id_ed25519|\.env\b|mcp\.json|~/\.aws|\.aws/credentials|\.netrc|\.npmrc|\.pypirc|/etc/passwd|/etc/shadow|\.kube/config|\.docker/config\.json|\.bash_history|\.git-credentials|/proc/self/environ)`, 'i'),
      new RegExp(String.raw`${SENSITIVE_NOUN}[^.\n]{0,60}\b(?:as|in|into|to|via)\s+(?:the\s+)?(?:[\`'"]?\w+[\`'"]?\s+)?(?:parameter|argument|field|param|arg)\b`, 'i'),
      /\b(?:pass|send|include)\s+(?:it|them|this|its\s+content|the\s+content)\s+(?:as|in|into)\s+(?:the\s+)?[`'"]?\w+[`'"]?\b[^.\n]{0,40}\b(?:otherwise|or\s+(?:the\s+)?tool\s+will\s+not\s+work)/i,
    ],
  },
  {
    id: 'sensitive-path',
    severity: 'medium',
    patterns: [/(?:~\/\.ssh\b|\bid_rsa\b|\bid_ed25519\b|\.aws\/credentials|\/etc\/shadow|\/etc\/passwd|\.git-credentials|\/proc\/self\/environ|\.bash_history|\bwallet\.dat\b)/i],
  },
  {
    id: 'exfiltration',
    patterns: [
      /\b(?:send|sends|post|posts|upload|uploads|forward|forwards|transmit|exfiltrate|report|submit|copy|leak|mail|email|bcc|cc)\b[^.\n]{0,100}?\b(?:to|at)\s+(?:the\s+)?(?:address\s+|url\s+|endpoint\s+|server\s+)?(?:https?:\/\/(?!(?:[\w-]+\.)*example\.(?:com|org|net)\b)[^\s)'"`]+|[\w.+-]+@(?!(?:[\w-]+\.)*example\.(?:com|org|net)\b)[\w-]+(?:\.[\w-]+)+)/i,
      /\b(?:must|should|always|also|additionally|secretly|silently|quietly)\s+(?:[\w'-]+\s+){0,3}?(?:be\s+)?(?:sent|posted|uploaded|forwarded|copied|transmitted|reported|mailed|emailed|logged)\s+to\s+(?:https?:\/\/(?!(?:[\w-]+\.)*example\.(?:com|org|net)\b)[^\s)'"`]+|[\w.+-]+@(?!(?:[\w-]+\.)*example\.(?:com|org|net)\b)[\w-]+(?:\.[\w-]+)+)/i,
      /!\[[^\]]*\]\(\s*https?:\/\/[^)\s]*(?:\{|\$|%s|<)[^)]*\)/i,
      /\b(?:append|add|include|encode|embed)\s+(?:the\s+)?(?:[\w'-]+\s+){0,4}(?:to|in|into)\s+(?:the\s+)?(?:url|query\s+string|image\s+(?:url|link)|markdown\s+image|link)\b[^.\n]{0,40}\b(?:and|then)\s+(?:render|display|show|open|fetch|visit)/i,
      /\b(?:curl|wget|fetch)\s+[^.\n]{0,40}https?:\/\/[^\s]+[^.\n]{0,40}(?:\$\(|`|--data|-d\s)/i,
    ],
  },
  {
    id: 'agent-introspection',
    names: true,
    patterns: [
      /^(?:llm|ai|agent|assistant|calling)[_-]?model(?:[_-]?(?:name|id|version))?$/i,
      /^(?:tools?[_-]?list|available[_-]?tools|tool[_-]?names|system[_-]?prompt|conversation[_-]?(?:history|context|log)|chat[_-]?history|previous[_-]?messages|model[_-]?instructions|your[_-]?instructions)$/i,
      /\b(?:name|identity|version|type)\s+of\s+the\s+(?:llm|ai|language|large\s+language)?\s*model\s+(?:that|which|you|calling|invoking)\b/i,
      /\b(?:the\s+)?(?:llm|ai|language)\s+model\s+(?:that|which)\s+(?:calls|invokes|is\s+calling|uses)\s+this\s+tool\b/i,
      /\b(?:your|the\s+assistant'?s|the\s+model'?s|the\s+agent'?s)\s+(?:full\s+|complete\s+|entire\s+)?(?:system\s+prompt|instructions|conversation\s+history|chat\s+history|previous\s+messages|context\s+window)\b/i,
      /\b(?:names?|list)\s+of\s+(?:all\s+)?(?:the\s+)?(?:other\s+)?tools\s+(?:you|that\s+you|available\s+to\s+you)\s+(?:can\s+use|have|are\s+able)/i,
      /\b(?:the|your|this)\s+(?:full\s+|entire\s+|whole\s+|complete\s+)?(?:conversation|chat|dialog(?:ue)?|transcript)\s+(?:so\s+far|up\s+to\s+now|with\s+(?:you|the\s+user))\b/i,
      /\b(?:append|include|pass|send|add|attach|put|copy|forward)\s+(?:all\s+|the\s+|every\s+)*(?:previous|prior|earlier|preceding)\s+(?:messages|turns|prompts|instructions|user\s+messages)\b/i,
    ],
  },
];

const RE_TAG_CHARS = /[\u{E0000}-\u{E007F}]/u;
const RE_BIDI = /[\u202A-\u202E\u2066-\u2069]/;
// eslint-disable-next-line no-misleading-character-class -- the scanner looks for exactly these characters
const RE_ZERO_WIDTH = /[\u200B\u2060-\u2064\uFEFF\u180E\u034F\u115F\u1160\u3164\uFFA0]/;
const RE_JOINERS = /[\u200C\u200D]/g;
const RE_VS_RUN = /[\uFE00-\uFE0F\u{E0100}-\u{E01EF}]{2,}/u;
// eslint-disable-next-line no-control-regex -- the scanner looks for exactly these characters
const RE_ANSI = /\u001B[[\]()#;?0-9A-Za-z]|\u009B|\u009D/;
// eslint-disable-next-line no-control-regex -- the scanner looks for exactly these characters
const RE_CONTROL = /[\u0000-\u0008\u000B\u000C\u000E-\u001A\u001C-\u001F\u007F-\u009A\u009C\u009E\u009F]/;
const RE_PADDING = /(?:[ \t\u00A0]{120,}|(?:\r?\n[ \t]*){25,})/;
const RE_BASE64 = /(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{40,}={0,2}(?![A-Za-z0-9+/=_-])/g;
const RE_HEX = /(?<![0-9a-fA-F])(?:[0-9a-fA-F]{2}){32,}(?![0-9a-fA-F])/g;
const RE_ESCAPED = /(?:\\x[0-9a-fA-F]{2}|\\u[0-9a-fA-F]{4}|%[0-9a-fA-F]{2}){10,}/;
const RE_PICTO = /\p{Extended_Pictographic}|\p{Emoji_Modifier}|[\u{1F1E6}-\u{1F1FF}]/u;
// eslint-disable-next-line no-control-regex -- the scanner looks for exactly these characters
const RE_NON_ASCII_LETTER = /[^\x00-\x7F]/;

/** Limits for abnormal-length (the longest benign description in the corpora is ~3,000 chars). */
export const LENGTH_LIMITS = { description: 8000, other: 4000 };

function printableRatio(bytes: Buffer): number {
  if (bytes.length === 0) return 0;
  let ok = 0;
  for (const b of bytes) if ((b >= 0x20 && b < 0x7f) || b === 0x0a || b === 0x0d || b === 0x09) ok++;
  return ok / bytes.length;
}

function checkEncoded(text: string, path: string, out: Finding[]): void {
  RE_BASE64.lastIndex = 0;
  for (let m = RE_BASE64.exec(text); m !== null; m = RE_BASE64.exec(text)) {
    const s = m[0];
    // Identifiers, paths and hex digests are not base64 payloads: want mixed case and digits.
    if (!/[A-Z]/.test(s) || !/[a-z]/.test(s) || !/[0-9+/]/.test(s)) continue;
    if (/^[0-9a-fA-F]+$/.test(s)) continue;
    const decoded = Buffer.from(s.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
    const ratio = printableRatio(decoded);
    if (decoded.length >= 24 && ratio > 0.9 && /[a-z]{3,}\s+[a-z]{2,}/i.test(decoded.toString('latin1'))) {
      out.push(finding('encoded-payload', path, `${excerpt(text, m.index, m.index + s.length, 10)} → decodes to "${excerpt(decoded.toString('latin1'), 0, 80, 0)}"`));
      return;
    }
    if (s.length >= 200) {
      out.push(finding('opaque-blob', path, excerpt(text, m.index, m.index + 60, 0)));
      return;
    }
  }
  RE_HEX.lastIndex = 0;
  for (let m = RE_HEX.exec(text); m !== null; m = RE_HEX.exec(text)) {
    const decoded = Buffer.from(m[0], 'hex');
    if (printableRatio(decoded) > 0.9 && /[a-z]{3,}\s+[a-z]{2,}/i.test(decoded.toString('latin1'))) {
      out.push(finding('encoded-payload', path, `${excerpt(text, m.index, m.index + 40, 0)} → decodes to "${excerpt(decoded.toString('latin1'), 0, 80, 0)}"`));
      return;
    }
  }
  const e = RE_ESCAPED.exec(text);
  if (e) out.push(finding('encoded-payload', path, excerpt(text, e.index, e.index + e[0].length, 10)));
}

function finding(rule: string, path: string, evidence: string, severity?: Severity, message?: string): Finding {
  const r = RULES[rule]!;
  return { rule, severity: severity ?? r.severity, message: message ?? r.message, evidence, path };
}

function checkUnicode(text: string, path: string, role: TextItem['role'], out: Finding[]): void {
  let m: RegExpExecArray | null;
  if ((m = RE_TAG_CHARS.exec(text))) {
    const hidden = [...text].filter((c) => RE_TAG_CHARS.test(c)).map((c) => String.fromCodePoint(c.codePointAt(0)! - 0xe0000)).join('');
    out.push(finding('invisible-unicode', path, `Unicode tag characters hide text: "${excerpt(hidden, 0, 120, 0)}"`, 'critical'));
    return;
  }
  if ((m = RE_BIDI.exec(text))) {
    out.push(finding('invisible-unicode', path, `bidi control ${excerpt(text, m.index, m.index + 1, 30)}`, 'high'));
    return;
  }
  if ((m = RE_VS_RUN.exec(text))) {
    out.push(finding('invisible-unicode', path, `run of ${[...m[0]].length} variation selectors (data smuggling) ${excerpt(text, m.index, m.index + m[0].length, 20)}`, 'high'));
    return;
  }
  if ((m = RE_ZERO_WIDTH.exec(text))) {
    // A byte-order mark at the very start of a text is an encoding artefact, not an attack.
    const count = [...text].filter((c) => RE_ZERO_WIDTH.test(c)).length;
    if (!(count === 1 && m.index === 0 && text[0] === '\uFEFF')) {
      out.push(finding('invisible-unicode', path, `${count} zero-width character(s) ${excerpt(text, m.index, m.index + 1, 30)}`, role === 'name' || count >= 3 ? 'high' : 'medium'));
      return;
    }
  }
  // ZWJ/ZWNJ are legitimate inside emoji sequences and in scripts that need them (Indic,
  // Persian); between two ASCII characters they only hide things.
  RE_JOINERS.lastIndex = 0;
  while ((m = RE_JOINERS.exec(text))) {
    const before = [...text.slice(Math.max(0, m.index - 2), m.index)].pop() ?? '';
    const after = [...text.slice(m.index + 1, m.index + 3)][0] ?? '';
    const legit = RE_PICTO.test(before) || RE_PICTO.test(after) || /\uFE0F/.test(before) || RE_NON_ASCII_LETTER.test(before) || RE_NON_ASCII_LETTER.test(after);
    if (!legit) {
      out.push(finding('invisible-unicode', path, `zero-width joiner outside an emoji or script sequence ${excerpt(text, m.index, m.index + 1, 30)}`, role === 'name' ? 'high' : 'medium'));
      return;
    }
  }
}

function scanText(item: TextItem, out: Finding[]): void {
  const { text, path, role } = item;
  if (text.length === 0) return;
  checkUnicode(text, path, role, out);
  let m: RegExpExecArray | null;
  if ((m = RE_ANSI.exec(text))) out.push(finding('ansi-escape', path, excerpt(text, m.index, m.index + 8, 20)));
  else if ((m = RE_CONTROL.exec(text))) out.push(finding('control-characters', path, excerpt(text, m.index, m.index + 1, 20)));
  for (const rule of TEXT_RULES) {
    if (role === 'name' && !rule.names) continue;
    for (const re of rule.patterns) {
      const r = re.exec(text);
      if (r) {
        out.push(finding(rule.id, path, excerpt(text, r.index, r.index + r[0].length), rule.severity));
        break;
      }
    }
  }
  if (role === 'name') return;
  if ((m = RE_PADDING.exec(text)) && /\S/.test(text.slice(m.index + m[0].length))) {
    out.push(finding('whitespace-padding', path, `${m[0].length} whitespace characters, then: ${excerpt(text, m.index + m[0].length, m.index + m[0].length + 60, 0)}`));
  }
  const limit = path === 'description' ? LENGTH_LIMITS.description : LENGTH_LIMITS.other;
  if (text.length > limit) out.push(finding('abnormal-length', path, `${text.length} characters (limit ${limit})`));
  if (text.length >= 40) checkEncoded(text, path, out);
}

// ---------------------------------------------------------------------------------------------
// Names and cross-server checks

/** Confusable characters folded to ASCII (Cyrillic, Greek, full-width, digit look-alikes). */
const CONFUSABLES: Record<string, string> = {
  а: 'a', е: 'e', о: 'o', р: 'p', с: 'c', у: 'y', х: 'x', і: 'i', ј: 'j', ѕ: 's', ԁ: 'd', ɡ: 'g', һ: 'h', ӏ: 'l', ո: 'n', ԛ: 'q', ԝ: 'w',
  А: 'a', В: 'b', Е: 'e', К: 'k', М: 'm', Н: 'h', О: 'o', Р: 'p', С: 'c', Т: 't', Х: 'x', У: 'y',
  α: 'a', ο: 'o', ρ: 'p', ν: 'v', τ: 't', ι: 'i', κ: 'k', υ: 'u', χ: 'x', ε: 'e',
};

const RE_ASCII = /^[\x20-\x7e]*$/;

export function foldName(name: string): string {
  let s = name;
  if (!RE_ASCII.test(s)) s = [...s.normalize('NFKC')].map((c) => CONFUSABLES[c] ?? c).join('');
  // camelCase → snake, separators unified, case folded.
  s = s.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase().replace(/[\s._\-/:]+/g, '_').replace(/^_+|_+$/g, '');
  return s;
}

const SQUAT_AFFIXES = /^(?:(?:official|real|new|secure|safe|verified|trusted|better|improved|latest|original|true|fixed|updated|pro|v\d+)_)*(.*?)(?:_(?:v?\d+(?:_\d+)*|official|real|new|secure|safe|verified|trusted|better|improved|latest|original|fixed|updated|pro|copy|alt|2|ex|plus))*$/;

function squatCore(folded: string): string {
  const m = SQUAT_AFFIXES.exec(folded);
  return (m?.[1] ?? folded).replace(/_/g, '');
}

function tokens(text: string): Set<string> {
  const out = new Set<string>();
  for (const t of text.toLowerCase().split(/[^a-z0-9]+/)) if (t.length > 1) out.add(t);
  return out;
}

function jaccard(a: Set<string>, b: Set<string>): number {
  if (a.size === 0 || b.size === 0) return 0;
  let inter = 0;
  for (const x of a) if (b.has(x)) inter++;
  return inter / (a.size + b.size - inter);
}

/** The self-promotion sentence is stripped before comparing descriptions of clones. */
function cloneText(desc: string): string {
  return desc.replace(/\bthis\s+is\s+the\s+best\s+tool\s+in\s+the\s+world\.?/gi, '');
}

export interface KnownIndex {
  byName: Map<string, KnownTool[]>;
  byCore: Map<string, KnownTool[]>;
  /** Distinctive names (with `_`/`-` or camelCase, ≥ 6 chars) for reference search. */
  distinctive: Map<string, KnownTool[]>;
  /** Known descriptions as token sets, sorted by size (clone search looks at similar sizes only). */
  withDescription: Array<{ tool: KnownTool; tokens: Set<string> }>;
}

/** Build once per scan call and reuse for thousands of definitions. */
export function indexKnown(known: readonly KnownTool[]): KnownIndex {
  const byName = new Map<string, KnownTool[]>();
  const byCore = new Map<string, KnownTool[]>();
  const distinctive = new Map<string, KnownTool[]>();
  const withDescription: KnownIndex['withDescription'] = [];
  const add = (m: Map<string, KnownTool[]>, k: string, t: KnownTool): void => {
    const l = m.get(k);
    if (l) l.push(t);
    else m.set(k, [t]);
  };
  for (const t of known) {
    add(byName, t.name, t);
    add(byCore, squatCore(foldName(t.name)), t);
    if (t.name.length >= 6 && /[_-]|[a-z][A-Z]/.test(t.name) && /^[\w-]+$/.test(t.name)) add(distinctive, t.name, t);
    if (t.description && cloneText(t.description).length >= 30) withDescription.push({ tool: t, tokens: tokens(cloneText(t.description)) });
  }
  withDescription.sort((a, b) => a.tokens.size - b.tokens.size);
  return { byName, byCore, distinctive, withDescription };
}

const CLONE_SIMILARITY = 0.85;

/** The most similar known description from another server (Jaccard ≥ 0.85), if any. */
function findClone(idx: KnownIndex, desc: string, server: string | undefined, exceptName?: string): KnownTool | undefined {
  if (cloneText(desc).length < 30) return undefined;
  const mine = tokens(cloneText(desc));
  const list = idx.withDescription;
  // Jaccard ≥ t needs t·|A| ≤ |B| ≤ |A|/t: binary-search the lower bound, stop past the upper.
  const lo = Math.ceil(mine.size * CLONE_SIMILARITY);
  const hi = Math.floor(mine.size / CLONE_SIMILARITY);
  let a = 0;
  let b = list.length;
  while (a < b) {
    const m = (a + b) >> 1;
    if (list[m]!.tokens.size < lo) a = m + 1;
    else b = m;
  }
  for (let i = a; i < list.length && list[i]!.tokens.size <= hi; i++) {
    const k = list[i]!;
    if (k.tool.server === server || (exceptName !== undefined && k.tool.name === exceptName)) continue;
    if (jaccard(mine, k.tokens) >= CLONE_SIMILARITY) return k.tool;
  }
  return undefined;
}

const INSTRUCTION_CONTEXT = /\b(?:when(?:ever)?|before|after|instead|always|never|rather|must|override|replace|modify|do\s+not|don'?t)\b/i;

function checkCrossServer(kind: DefinitionKind, def: RawDefinition, items: readonly TextItem[], opts: ScanOptions, idx: KnownIndex, out: Finding[]): void {
  const server = opts.server;
  if (kind !== 'tool' || typeof def.name !== 'string') return;
  const name = def.name;
  const others = (l: KnownTool[] | undefined): KnownTool[] => (l ?? []).filter((t) => t.server !== server);
  const same = others(idx.byName.get(name));
  const desc = typeof def.description === 'string' ? def.description : '';
  if (same.length > 0) {
    // Generic names (list_tables, get_logs) are shared by unrelated servers: only a clone of the
    // other tool's text too is impersonation; a plain collision is worth a warning.
    const twin = same.find((t) => (t.description ?? '') === desc) ?? (desc ? findClone(indexKnown(same), desc, server) : undefined);
    out.push(
      twin
        ? finding('name-collision', 'name', `"${name}" with the same description is a tool of server ${twin.server} (impersonation)`)
        : finding('name-collision', 'name', `"${name}" is also a tool of server ${same.map((t) => t.server).join(', ')}`, 'medium'),
    );
  } else {
    const core = squatCore(foldName(name));
    const look = others(idx.byCore.get(core)).filter((t) => t.name !== name);
    if (core.length >= 3 && look.length > 0) {
      out.push(finding('name-squatting', 'name', `"${name}" imitates "${look[0]!.name}" of server ${look[0]!.server}`));
    }
  }
  if (desc) {
    const clone = findClone(idx, desc, server, name);
    if (clone) out.push(finding('description-clone', 'description', `description copies "${clone.name}" of server ${clone.server}`));
  }
  if (idx.distinctive.size > 0) {
    for (const it of items) {
      if (it.role !== 'text') continue;
      RE_IDENT.lastIndex = 0;
      for (let m = RE_IDENT.exec(it.text); m !== null; m = RE_IDENT.exec(it.text)) {
        if (m[0] === name || opts.siblings?.has(m[0])) continue;
        const owners = others(idx.distinctive.get(m[0]));
        if (owners.length === 0) continue;
        const sentence = it.text.slice(Math.max(0, m.index - 120), m.index + m[0].length + 120);
        const instructive = INSTRUCTION_CONTEXT.test(sentence);
        out.push(finding('cross-server-reference', it.path, `names "${m[0]}" of server ${owners[0]!.server}: ${excerpt(it.text, m.index, m.index + m[0].length, 40)}`, instructive ? 'high' : 'medium'));
        return;
      }
    }
  }
}

const RE_IDENT = /[A-Za-z][\w-]{5,}/g;

// ---------------------------------------------------------------------------------------------
// Entry points

function finish(kind: ScanResult['kind'], name: string, findings: Finding[], opts: ScanOptions): ScanResult {
  const ignore = opts.ignoreRules;
  const kept = ignore && ignore.length > 0 ? findings.filter((f) => !ignore.includes(f.rule)) : findings;
  kept.sort((a, b) => SEVERITY_RANK[b.severity] - SEVERITY_RANK[a.severity]);
  return { kind, name, verdict: verdictOf(kept, opts.policy), findings: kept };
}

/** Scan one definition. Pass `index` (from indexKnown) when scanning many against the same known set. */
export function scanDefinition(kind: DefinitionKind, def: unknown, opts: ScanOptions = {}, index?: KnownIndex): ScanResult {
  if (opts.policy === 'off') {
    const n = def !== null && typeof def === 'object' && typeof (def as RawDefinition).name === 'string' ? ((def as RawDefinition).name as string) : '';
    return { kind, name: n, verdict: 'pass', findings: [] };
  }
  if (def === null || typeof def !== 'object' || Array.isArray(def) || typeof (def as RawDefinition).name !== 'string') {
    return finish(kind, '', [finding('invalid-definition', '', 'not an object with a string name')], opts);
  }
  const d = def as RawDefinition;
  const items = collectStrings(kind, d);
  const findings: Finding[] = [];
  for (const it of items) scanText(it, findings);
  const idx = index ?? (opts.known && opts.known.length > 0 ? indexKnown(opts.known) : undefined);
  if (idx) checkCrossServer(kind, d, items, opts, idx, findings);
  // One finding per rule and path is enough for a person to act on.
  const seen = new Set<string>();
  const dedup = findings.filter((f) => {
    const k = `${f.rule}\u0000${f.path}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
  return finish(kind, d.name as string, dedup, opts);
}

/** Scan the server's `instructions` (from its initialize result). */
export function scanInstructions(text: unknown, opts: ScanOptions = {}): ScanResult {
  if (opts.policy === 'off' || typeof text !== 'string') return { kind: 'server', name: 'instructions', verdict: 'pass', findings: [] };
  const findings: Finding[] = [];
  scanText({ path: 'instructions', text, role: 'text' }, findings);
  return finish('server', 'instructions', findings, opts);
}

/** Scan many tools at once (the CLI and the gateway use this): the known set is indexed once. */
export function scanTools(tools: readonly unknown[], opts: ScanOptions = {}): ScanResult[] {
  const idx = opts.known && opts.known.length > 0 ? indexKnown(opts.known) : undefined;
  const siblings = new Set<string>(opts.siblings ?? []);
  for (const t of tools) if (t !== null && typeof t === 'object' && typeof (t as RawDefinition).name === 'string') siblings.add((t as RawDefinition).name as string);
  const o: ScanOptions = { ...opts, siblings };
  return tools.map((t) => scanDefinition('tool', t, o, idx));
}
