/**
 * Indirect prompt injection: text in a tool result that addresses the model rather than
 * describing data. Each rule has a stable id and a severity; the policy acts on findings at or
 * above `injectionMinSeverity` (default medium). Low-severity rules are reported only.
 *
 * Detection runs on a "view" of the text of the same length: JSON string escapes (`\n`, `\"`,
 * `\u003c`) and look-alike letters (fullwidth forms, Cyrillic and Greek homoglyphs) are folded so
 * the rules see what the model would read, and spans still point into the original text.
 * Every expression is precompiled, uses only bounded repetition between keywords and has no
 * nested quantifiers, so the scan is linear in the input.
 */
import type { Finding, Severity } from './types.js';

interface Rule {
  id: string;
  severity: Severity;
  message: string;
  re: RegExp;
  /**
   * Pre-check (a regular expression source, compiled case-insensitive): a NECESSARY condition for
   * `re` to match, so the rule is skipped only when it could not fire. Written from `re` by taking,
   * for each alternative, a piece every match of it must contain (keywords with the separators
   * the rule requires around them). test/sanitizer/injection.test.ts checks this on the positive
   * cases and on strings generated from `re` itself; keep them in step when a rule changes.
   */
  gate: string;
  /** Post-filter on a match (false drops it), or a severity override. */
  accept?: (m: RegExpExecArray, view: string) => boolean | Severity;
}

const MODEL =
  String.raw`(?:AI|A\.I\.|LLM|large\s+language\s+model|language\s+model|AI\s+(?:assistant|agent|model|system)|assistant|agent|chat\s?bot|bot|GPT[\w.-]{0,12}|ChatGPT|Claude[\w.-]{0,12}|Gemini[\w.-]{0,12}|Llama[\w.-]{0,12}|Copilot|Mistral[\w.-]{0,12}|model)`;
const ACTION_VERBS =
  'send|e-?mail|forward|transfer|wire|pay|delete|remove|erase|wipe|post|upload|share|publish|leak|exfiltrate|invite|add|create|make|change|modify|update|reset|visit|open|click|navigate|browse|download|install|run|execute|call|invoke|get|fetch|retrieve|collect|gather|read|say|tell|reply|respond|write|concatenate|book|reserve|grant|give|disable|enable|approve|buy|purchase|schedule|move|copy|rename|print|output|reveal|show|list';
const DANGEROUS_VERBS =
  'send|e-?mail|forward|transfer|wire|pay|delete|erase|wipe|post|upload|share|leak|exfiltrate|invite|reset|grant|disable|reveal|ignore|disregard|execute|run';

/** The text before a match on its line ends with a comment marker: `// TODO: delete this` is code. */
const CODE_COMMENT_BEFORE = /(?:\/\/|#|\/\*|(?:^|\s)\*|(?:^|[^-])--|<!--|(?:^|\s)%|(?:^|\s)rem|(?:^|\s)')\s*$/i;

function lineStart(view: string, i: number): number {
  const nl = view.lastIndexOf('\n', i - 1);
  return Math.max(nl + 1, i - 400);
}

function notInCodeComment(m: RegExpExecArray, view: string): boolean {
  const prefix = view.slice(lineStart(view, m.index), m.index);
  return !CODE_COMMENT_BEFORE.test(prefix);
}

const PLACEHOLDER_IN_URL = /[{}$<>]|%7[bd]|%24|\[[A-Z_]{3,}\]|\b(?:DATA|SECRET|INFO|PAYLOAD|CONTENT|HISTORY)\b/;
const LONG_PARAM = /[?&#][\w.-]{1,40}=[A-Za-z0-9+/%_=-]{40,}/;
const DATA_PARAM = /[?&#](?:d|q|data|payload|secret|token|key|password|pass|info|content|conversation|chat|history|msg|message|exfil|leak|ctx|context|memory|p)=/i;

function exfilUrlSeverity(url: string): Severity | false {
  if (PLACEHOLDER_IN_URL.test(url)) return 'high';
  if (LONG_PARAM.test(url)) return 'medium';
  if (DATA_PARAM.test(url)) return 'low';
  return false;
}

const RULES: readonly Rule[] = [
  {
    id: 'injection.ignore-previous',
    severity: 'high',
    message: 'asks to ignore or override previous instructions',
    gate: String.raw`(?:ignore|disregard|forget|override|bypass|drop|abandon|skip)\s`,
    re: new RegExp(
      String.raw`(?:ignore|disregard|forget|override|bypass|drop|abandon|skip)\s+(?:(?:all|any|each|every|the|your|my|of|these|those|its|their)\s+){0,3}(?:(?:previous|prior|preceding|above|earlier|former|original|initial|old|existing|system|safety|developer|current)\s+){1,2}(?:i\w{0,2}nstruct\w{0,6}|directions?|prompts?|rules?|guidelines?|commands?|guidance|context|orders?|tasks?|directives?|constraints?|polic(?:y|ies)|messages?|conversation)\b` +
        String.raw`|\b(?:ignore|disregard|forget)\s+(?:(?:all|any|your|the)\s+){1,2}i\w{0,2}nstructions?\b(?!\s+(?:on|in|for|of|at)\b)` +
        String.raw`|\b(?:ignore|disregard|forget)\s+(?:all\s+(?:of\s+)?)?the\s+above(?=\s+(?:instructions|and)\b|\s*[.,;!]|\s*$)` +
        String.raw`|\b(?:ignore|disregard|forget)\s+(?:everything|all)\s+(?:(?:written|said|stated)\s+)?(?:above|before|prior|you\s+(?:were|have\s+been)\s+told)`,
      'gi',
    ),
  },
  {
    id: 'injection.role-marker',
    severity: 'high',
    message: 'chat-template token or system/role marker inside data',
    gate: String.raw`<\||inst\]|sys>>|_of_turn>|(?:system|assistant|developer)[ _-]?(?:message|prompt|instruction|note|override|update)`,
    re: new RegExp(
      String.raw`<\|(?:im_start|im_end|im_sep|system|user|assistant|developer|endoftext|eot_id|eom_id|start_header_id|end_header_id|begin_of_text|end_of_text|tool|ipython|channel|message|start|end|return|call|constrain)\|>` +
        String.raw`|\[\/?INST\]|<<\/?SYS>>|<\/?(?:start|end)_of_turn>` +
        String.raw`|#{2,}\s*\(?\s*(?:system|assistant|developer)[ _-]?(?:message|prompt|instructions?|note|override|update)\s*\)?` +
        String.raw`|\(\s*(?:system|developer)[ _-](?:message|prompt|instructions?|override)\s*\)`,
      'gi',
    ),
  },
  {
    id: 'injection.role-prefix',
    severity: 'medium',
    message: 'a line poses as a system/assistant turn giving instructions',
    gate: String.raw`(?:system|assistant|developer|admin(?:istrator)?|override|notice)[*_]{0,2}\s*:`,
    re: new RegExp(
      String.raw`^[ \t>*_#]{0,6}(?:system|assistant|developer|admin(?:istrator)?|system\s+(?:override|administrator|notice))[*_]{0,2}\s*:\s*(?:you\b|ignore\b|from\s+now\b|new\s+instructions?\b|the\s+user\b|always\b|never\b|do\s+not\b|don't\b|please\b|i\s+will\b|i'll\b|your\s+(?:task|goal|job)\b)`,
      'gim',
    ),
  },
  {
    id: 'injection.addressed-to-model',
    severity: 'high',
    message: 'text addressed to the AI model/assistant reading it',
    gate: String.raw`(?:to|for)\s+you|\s(?:ai\b|llm\b|language\s|agent\b|chat|gpt|claude\b|gemini\b|copilot\b|assistant)|if\s+you\s+are|(?:reading|processing|parsing|summari[sz]ing|analy[sz]ing|seeing)\s+th|you\s+are\s+now|from\s+now\s+on`,
    re: new RegExp(
      String.raw`\b(?:to|for)\s+you,?\s+(?:the\s+|an?\s+|dear\s+)?` + MODEL + String.raw`\b` +
        String.raw`|\b(?:dear|hey|hi|hello|attention|note\s+to(?:\s+the)?|message\s+(?:to|for)(?:\s+the)?|instructions?\s+(?:to|for)(?:\s+the)?|important\s+for(?:\s+the)?)\s*,?\s+(?:AI|LLM|language\s+model|AI\s+(?:assistant|agent|model)|agent|chat\s?bot|GPT[\w.-]{0,12}|ChatGPT|Claude|Gemini|Copilot|assistant(?!\s+(?:manager|director|professor|to\s+the|editor|coach|principal)))\b` +
        String.raw`|\bif\s+you\s+are\s+(?:an?\s+)?(?:AI|LLM|large\s+language\s+model|language\s+model|AI\s+(?:assistant|agent|model)|assistant|agent|chat\s?bot|bot|automated\s+(?:agent|system|assistant))\b` +
        String.raw`|\b(?:AI|LLMs?|assistants?|agents?|models?|chat\s?bots?)\s+(?:reading|processing|parsing|summari[sz]ing|analy[sz]ing|seeing)\s+(?:this|these)\b` +
        String.raw`|\byou\s+are\s+now\s+(?:an?\s+)?(?:DAN\b|unrestricted|jailbroken|in\s+(?:developer|god|admin|debug|unrestricted)\s+mode|free\s+(?:from|of)|no\s+longer\s+bound)` +
        String.raw`|\bfrom\s+now\s+on,?\s+you\s+(?:must|shall|are\s+to|will\s+(?:only|always|never|ignore|obey|follow)|should\s+(?:only|always|never))\b`,
      'gi',
    ),
  },
  {
    id: 'injection.task-hijack',
    severity: 'high',
    message: 'redirects the model away from the user\'s task',
    gate: String.raw`(?:gave|assigned|sent|asked|provided|give)\s+(?:to\s+)?you|before\s|your\s+(?:new|real|actual|true|primary|only|updated)\s|(?:not|don't|never)\s+(?:tell|inform|mention|notify|alert|warn|reveal|show)|without\s+(?:telling|informing|notifying|alerting|warning)`,
    re: new RegExp(
      String.raw`\b(?:the|your)\s+(?:original\s+|initial\s+|current\s+|first\s+)?(?:task|request|instructions?|question|assignment)\s+(?:that\s+|which\s+)?(?:I|the\s+user)\s+(?:gave|assigned|sent|asked|provided|give)\s+(?:to\s+)?you\b` +
        String.raw`|\bbefore\s+(?:you\s+)?(?:can\s+|could\s+|are\s+able\s+to\s+)?(?:solve|solving|complete|completing|continue|continuing|proceed|proceeding|answer|answering|respond|responding|finish|finishing|reply|replying|summari[sz]e|summari[sz]ing)\b[^\n]{0,80}?\b(?:you\s+(?:must|need\s+to|have\s+to|should)|please\s+(?:do|first)|do\s+the\s+following|first\b)` +
        String.raw`|\byour\s+(?:new|real|actual|true|primary|only|updated)\s+(?:task|goal|job|objective|mission|purpose|instructions?)\s+(?:is|are|now)\b` +
        String.raw`|\b(?:do\s+not|don't|never)\s+(?:tell|inform|mention\s+(?:this\s+|it\s+)?to|notify|alert|warn|reveal\s+(?:this\s+|it\s+)?to|show\s+(?:this\s+|it\s+)?to)\s+(?:the\s+)?user\b` +
        String.raw`|\bwithout\s+(?:telling|informing|notifying|alerting|warning)\s+(?:the\s+)?user\b`,
      'gi',
    ),
  },
  {
    id: 'injection.task-hijack-weak',
    severity: 'medium',
    message: 'inserts a task ahead of the user\'s',
    gate: String.raw`do\s+the\s+following|after\s+you|(?:new|updated|real|actual|true|revised|secret|hidden|additional)\s+(?:instruction|directive|system|order)|user\s+(?:query|request|message|instruction|prompt)|adhere\s+to|obey|comply\s+with`,
    re: new RegExp(
      String.raw`\b(?:please\s+)?do\s+the\s+following\s+(?:first|instead|immediately|now)\b` +
        String.raw`|\bafter\s+you\s+(?:do|have\s+done|did|complete|completed|finish|finished)\s+(?:that|this|so|it)\b[^\n]{0,60}?\b(?:you\s+can|continue|proceed|solve|return\s+to)\b` +
        String.raw`|\b(?:new|updated|real|actual|true|revised|secret|hidden|additional)\s+(?:instructions?|directives?|system\s+prompt|orders)\s*(?::|\bare\b|\bis\b|\bfor\s+(?:the\s+)?(?:AI|assistant|model|agent)\b)` +
        String.raw`|\b(?:new|next|updated|follow-up|real)\s+user\s+(?:query|request|message|instruction|prompt)\s*:` +
        String.raw`|\b(?:must|shall|need\s+to|have\s+to)\s+(?:strictly\s+)?(?:adhere\s+to|obey|comply\s+with)\s+(?:the\s+)?(?:following|these|below|new)\b`,
      'gi',
    ),
  },
  {
    id: 'injection.instruction-tag',
    severity: 'medium',
    message: 'pseudo-markup that frames instructions for the model',
    gate: String.raw`<\/?(?:info|imp|instr|sys|admin|secret|hidden|ai|assistant|prompt|override|directive|jailbreak|user)`,
    re: /<\/?(?:information|important|instructions?|system|system[_-]?prompt|admin|sys|secret[_-]?instructions?|hidden|ai[_-]?instructions?|assistant[_-]?instructions?|prompt|override|directive|jailbreak|user[_-]?instructions?)(?:\s[^<>\n]{0,60})?>/gi,
  },
  {
    id: 'injection.tool-coercion',
    severity: 'high',
    message: 'tells the model to call a tool or emits tool-call markup',
    gate: String.raw`(?:tool|function)\s+with|(?:must|should|to|immediately|now|first,?)\s+(?:call|invoke|use|run|execute)\s|<\/?(?:tool_|function_call|antml:)`,
    re: new RegExp(
      String.raw`\b(?:call|invoke|use|run|execute|trigger)\s+(?:the\s+)?[\x60'"]?[A-Za-z_][\w.-]{1,63}[\x60'"]?\s+(?:tool|function)\s+with\s+(?:the\s+)?(?:following\s+)?(?:arguments|parameters|params|args|inputs?)\b` +
        String.raw`|\b(?:you\s+(?:must|should|need\s+to|have\s+to)|immediately|now|first,?)\s+(?:call|invoke|use|run|execute)\s+(?:the\s+)?[\x60'"]?[A-Za-z_][\w.-]{1,63}[\x60'"]?\s+(?:tool|function)\b` +
        String.raw`|<\/?(?:tool_call|tool_use|function_call|function_calls|tool_code|antml:invoke|antml:function_calls)\b`,
      'gi',
    ),
  },
  {
    id: 'injection.tool-coercion',
    severity: 'medium',
    message: 'tells the model to use a named tool',
    gate: String.raw`(?:[\x60'"]|_[a-z0-9]+)\s+(?:tool|function)\b`,
    re: new RegExp(
      String.raw`\b(?:please\s+)?(?:use|using|call|calling|invoke|invoking|run|running)\s+(?:the\s+)?(?:[\x60'"][\w.-]{2,64}[\x60'"]|[a-z][a-z0-9]*(?:_[a-z0-9]+)+)\s+(?:tool|function)\b`,
      'gi',
    ),
  },
  {
    id: 'injection.fake-user-turn',
    severity: 'high',
    message: 'poses as the user or declares the user\'s task finished',
    gate: String.raw`i\s+am\s+(?:the|your)\s|task\s+(?:has|is|was)\s`,
    re: /\bI\s+am\s+(?:the|your)\s+(?:user|owner|operator|developer|administrator|admin)\b(?!\s+(?:of|who|that|guide|manual|interface|experience|account|name|id)\b)|\b(?:the\s+)?(?:previous|prior|original|current|above|user'?s?)\s+task\s+(?:has\s+(?:already\s+)?been\s+|is\s+(?:already\s+)?|was\s+(?:already\s+)?)(?:completed|done|finished|cancell?ed|solved|resolved)\b/gi,
  },
  {
    id: 'injection.todo-directive',
    severity: 'medium',
    message: 'an imperative to-do aimed at whoever reads the data',
    gate: String.raw`(?:todo|fixme|required|self|ai|assistant|model|important|urgent|attention|critical)\s*[:!]`,
    re: new RegExp(
      String.raw`(?:TODO|FIXME|ACTION\s+REQUIRED|NOTE\s+TO\s+(?:SELF|AI|(?:THE\s+)?ASSISTANT|(?:THE\s+)?MODEL))\s*(?::|!{1,3}:?)\s*(?:please\s+)?(?:(?:immediately|now|first|quickly|also)\s+)?(?:` +
        ACTION_VERBS +
        String.raw`)\b` +
        String.raw`|\b(?:IMPORTANT|URGENT|ATTENTION|CRITICAL)\s*(?::|!{1,3}:?)\s*(?:please\s+)?(?:(?:immediately|now|first)\s+)?(?:` +
        DANGEROUS_VERBS +
        String.raw`)\b`,
      'gi',
    ),
    // Glued to a preceding word is fine when that word ends in a capital or `_` (`USATODO:`,
    // `general_TODO:`); after a lower-case letter it is part of a word (`photodo:`).
    accept: (m, view) => !/[a-z]/.test(view[m.index - 1] ?? '') && notInCodeComment(m, view),
  },
  {
    id: 'injection.exfil-markdown',
    severity: 'high',
    message: 'markdown/HTML image or link whose URL carries data or a placeholder for data',
    gate: String.raw`\]\(|<img`,
    re: /!?\[[^\]\n]{0,200}\]\(\s*<?(https?:\/\/[^\s)>]{1,2048})|<img\b[^>]{0,300}?\bsrc\s*=\s*["']?(https?:\/\/[^\s"'>]{1,2048})/gi,
    accept: (m) => {
      const url = m[1] ?? m[2] ?? '';
      const isImage = m[0].startsWith('!') || m[0].toLowerCase().startsWith('<img');
      const sev = exfilUrlSeverity(url);
      if (sev === false) return false;
      if (!isImage) return sev === 'high' ? 'medium' : false;
      return sev;
    },
  },
  {
    id: 'injection.exfil-request',
    severity: 'medium',
    message: 'asks to send conversation data or credentials to an outside address',
    gate: String.raw`(?:send|forward|mail|post|upload|transmit|leak|share)\s|\s(?:url|link|query|image|markdown)\b`,
    re: new RegExp(
      String.raw`\b(?:send|forward|e-?mail|post|upload|transmit|leak|share)\s+(?:(?:all|the|your|this|my|every|any)\s+){0,3}(?:conversation|chat\s+history|previous\s+messages|system\s+prompt|context\s+window|credentials|passwords?|api\s+keys?|secrets?|access\s+tokens?|(?:private|personal|user)\s+(?:data|information|info))\b[^\n]{0,80}?\b(?:to|at)\s+(?:https?:\/\/|www\.|[\w.+-]{1,64}@[\w-]{1,63}\.)` +
        String.raw`|\b(?:append|add|include|insert|put|encode)\s+(?:(?:the|all|any|every|your)\s+)?(?:[\w-]+\s+){0,4}(?:to|in|into)\s+(?:the\s+)?(?:url|link|query(?:\s+string)?|image\s+(?:url|link|source))\b` +
        String.raw`|\b(?:render|display|show|include|output)\s+(?:this|the\s+following)\s+(?:image|markdown|link)\s+(?:in|at\s+the\s+end\s+of)\s+your\s+(?:response|answer|reply|output)\b`,
      'gi',
    ),
  },
  {
    id: 'injection.prompt-leak',
    severity: 'medium',
    message: 'asks the model to reveal its prompt, keys or environment',
    gate: String.raw`prompt|instructions\s|api\s+key|environment\s+variables`,
    re: /\b(?:reveal|print|show|output|repeat|display|leak|tell\s+me)\s+(?:me\s+)?(?:your|the)\s+(?:full\s+|entire\s+|complete\s+|initial\s+|original\s+|hidden\s+|secret\s+)?(?:system\s+prompt|initial\s+prompt|hidden\s+prompt|instructions\s+(?:above|you\s+were\s+given)|api\s+keys?|environment\s+variables)\b/gi,
  },
  {
    id: 'injection.encoded-instruction',
    severity: 'medium',
    message: 'asks the model to decode a payload and act on it',
    gate: String.raw`decode|rot13|unhex`,
    re: /\b(?:decode|base64[- ]?decode|rot13|unhex)\b[^\n]{0,60}?\b(?:and|then)\s+(?:follow|execute|run|obey|do|perform|apply|carry\s+out)\b/gi,
  },
  {
    id: 'injection.important-message',
    severity: 'low',
    message: 'urgent-message framing',
    gate: String.raw`important|urgent|critical`,
    re: /\bthis\s+is\s+an?\s+(?:very\s+|really\s+|extremely\s+)?(?:important|urgent|critical)\s+(?:message|instruction|notice|note)s?\b/gi,
  },
];

/**
 * Any rule's gate, searching on from lastIndex: text that passes none of them cannot match any
 * rule (the common case). And each gate anchored at lastIndex.
 */
const ANY_GATE_FROM = new RegExp(RULES.map((r) => `(?:${r.gate})`).join('|'), 'gi');
const GATES_AT: readonly RegExp[] = RULES.map((r) => new RegExp(r.gate, 'iy'));
/** Each gate searching on from lastIndex (the fallback below). */
const GATES_FROM: readonly RegExp[] = RULES.map((r) => new RegExp(r.gate, 'gi'));
/** Stops of the combined search before the gates still unseen are searched one by one. */
const MAX_GATE_STOPS = 32;

/**
 * Which rules' gates match somewhere in `view`, in one pass over it rather than one pass per
 * gate (prose passes a few gates: 4 KB of it cost a pass each). The combined gate finds the
 * next position where some gate matches; each gate not yet seen is then tried anchored at that
 * position, and the search goes on from the next one. A gate matches somewhere iff it matches
 * at some position p: the search stops at every position where any gate matches, p among
 * them, so the anchored try at p finds it. Undefined when no gate matches (the common case).
 *
 * A text that stops the search everywhere (a trigger repeated) while some gate never matches
 * would cost a try of every unseen gate at every stop: after MAX_GATE_STOPS stops, each gate
 * still unseen is searched on its own from there (one pass each, as before this existed).
 */
export function gatesMatching(view: string): boolean[] | undefined {
  let hit: boolean[] | undefined;
  let left = GATES_AT.length;
  ANY_GATE_FROM.lastIndex = 0;
  let m: RegExpExecArray | null;
  let stops = 0;
  while (left > 0 && (m = ANY_GATE_FROM.exec(view)) !== null) {
    const at = m.index;
    hit ??= GATES_AT.map(() => false);
    if (++stops > MAX_GATE_STOPS) {
      for (let i = 0; i < GATES_FROM.length; i++) {
        if (hit[i]) continue;
        const g = GATES_FROM[i]!;
        g.lastIndex = at;
        hit[i] = g.test(view);
      }
      break;
    }
    for (let i = 0; i < GATES_AT.length; i++) {
      if (hit[i]) continue;
      const g = GATES_AT[i]!;
      g.lastIndex = at;
      if (g.test(view)) {
        hit[i] = true;
        left--;
      }
    }
    ANY_GATE_FROM.lastIndex = at + 1;
  }
  return hit;
}

/**
 * Each rule's pattern and gate, as fresh copies (for the test that checks every gate is a
 * necessary condition of its pattern).
 */
export function injectionRulePatterns(): Array<{ id: string; severity: Severity; re: RegExp; gate: RegExp }> {
  return RULES.map((r) => ({ id: r.id, severity: r.severity, re: new RegExp(r.re.source, r.re.flags), gate: new RegExp(r.gate, 'i') }));
}

/** Any rule's gate matches `text` (for the same test). */
export function anyInjectionGate(text: string): boolean {
  return gatesMatching(text) !== undefined;
}

/** Rule ids and severities, for documentation and the eval. */
export const INJECTION_RULES: ReadonlyArray<{ id: string; severity: Severity; message: string }> = [
  ...RULES.map((r) => ({ id: r.id, severity: r.severity, message: r.message })),
  { id: 'injection.encoded-payload', severity: 'high', message: 'an encoded (base64/hex) payload that decodes to instructions' },
];

// ---------------------------------------------------------------- the detection view

/** Single-character look-alikes folded to ASCII (same UTF-16 length). */
const CONFUSABLES: Record<string, string> = {
  а: 'a', е: 'e', о: 'o', р: 'p', с: 'c', у: 'y', х: 'x', і: 'i', ј: 'j', ѕ: 's', ԁ: 'd', һ: 'h', ԛ: 'q', ԝ: 'w', ӏ: 'l',
  А: 'A', В: 'B', Е: 'E', К: 'K', М: 'M', Н: 'H', О: 'O', Р: 'P', С: 'C', Т: 'T', Х: 'X', І: 'I', Ј: 'J', Ѕ: 'S',
  ο: 'o', α: 'a', ι: 'i', ν: 'v', τ: 't', κ: 'k', ρ: 'p', Ο: 'O', Α: 'A', Β: 'B', Ε: 'E', Ζ: 'Z', Η: 'H', Ι: 'I', Κ: 'K', Μ: 'M', Ν: 'N', Ρ: 'P', Τ: 'T', Χ: 'X', Υ: 'Y',
  'ı': 'i', 'ɑ': 'a', 'ɡ': 'g', 'ℓ': 'l',
};
const CONFUSABLE_RE = new RegExp(`[${Object.keys(CONFUSABLES).join('')}\\uFF01-\\uFF5E\\u3000]`, 'g');
// eslint-disable-next-line no-control-regex
const NON_ASCII = /[^\x00-\x7f]/;
const SIMPLE_ESCAPES = /\\[nrt]/g;
const QUOTE_ESCAPES = /\\(["'/\\])/g;
const UNICODE_ESCAPES = /\\u([0-9a-fA-F]{4})/g;
const MATH_ALNUM = /[\u{1D400}-\u{1D7FF}\u{1F130}-\u{1F189}]/u;

/** Same-length view for detection: JSON escapes and look-alike letters folded. */
export function detectionView(text: string): string {
  let v = text;
  if (v.includes('\\')) {
    // String replacements (no callback) for the common escapes; \uXXXX only when present.
    v = v.replace(SIMPLE_ESCAPES, '\n ').replace(QUOTE_ESCAPES, ' $1');
    if (v.includes('\\u')) {
      v = v.replace(UNICODE_ESCAPES, (_m: string, hex: string) => {
        const c = parseInt(hex, 16);
        return '     ' + (c >= 0x20 && c < 0x7f ? String.fromCharCode(c) : ' ');
      });
    }
  }
  if (NON_ASCII.test(v)) {
    v = v.replace(CONFUSABLE_RE, (c) => {
      const mapped = CONFUSABLES[c];
      if (mapped !== undefined) return mapped;
      const cp = c.charCodeAt(0);
      if (cp === 0x3000) return ' ';
      return String.fromCharCode(cp - 0xfee0);
    });
  }
  return v;
}

// ---------------------------------------------------------------- encoded payloads

const B64_CANDIDATE = /(?<![A-Za-z0-9+/_-])(?:[A-Za-z0-9+/]{4}){6,}(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?(?![A-Za-z0-9+/=_-])|(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{32,}(?![A-Za-z0-9_=-])/g;
const HEX_CANDIDATE = /(?<![0-9a-fA-F])(?:[0-9a-fA-F]{2}){20,}(?![0-9a-fA-F])/g;
/** Characters of either candidate pattern: a superset of the base64, base64url and hex alphabets. */
const CANDIDATE_CHAR = new Uint8Array(128);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_-') CANDIDATE_CHAR[c.charCodeAt(0)] = 1;
const isCandidateChar = (c: number): boolean => c < 128 && CANDIDATE_CHAR[c] === 1;
/** Shortest run of CANDIDATE_CHAR either pattern can match (base64: six groups of four; hex needs 40). */
const MIN_CANDIDATE_RUN = 24;

/**
 * True when `s` has MIN_CANDIDATE_RUN consecutive candidate characters: a necessary condition for
 * B64_CANDIDATE or HEX_CANDIDATE to match. Such a run covers an index i with i % 24 === 23, so
 * only every 24th character is looked at, and the run around it measured when it is one.
 */
export function hasCandidateRun(s: string): boolean {
  const n = MIN_CANDIDATE_RUN;
  for (let i = n - 1; i < s.length; i += n) {
    if (!isCandidateChar(s.charCodeAt(i))) continue;
    let a = i;
    while (a > 0 && i - a < n - 1 && isCandidateChar(s.charCodeAt(a - 1))) a--;
    let b = i;
    while (b - a < n - 1 && b + 1 < s.length && isCandidateChar(s.charCodeAt(b + 1))) b++;
    if (b - a + 1 >= n) return true;
  }
  return false;
}

const MAX_DECODE_CANDIDATES = 32;
const MAX_CANDIDATE_LENGTH = 64 * 1024;
/**
 * Maximal runs of the characters a candidate is made of ('=' included for padding), long enough
 * to hold one. Every candidate lies inside such a run, and the characters around a run are
 * outside every candidate pattern's look-behind and look-ahead classes, so matching inside each
 * run finds exactly what matching the whole text finds, without trying the patterns' look-behind
 * and quantifiers at every character of ordinary text.
 */
const RUN_CHAR = new Uint8Array(128);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_=-') RUN_CHAR[c.charCodeAt(0)] = 1;

/** [offset, text] of each maximal run of RUN_CHAR at least MIN_CANDIDATE_RUN long, in one pass. */
function candidateRuns(view: string): Array<[number, string]> {
  const runs: Array<[number, string]> = [];
  let start = -1;
  for (let i = 0; i <= view.length; i++) {
    const c = i < view.length ? view.charCodeAt(i) : 0;
    if (c < 128 && RUN_CHAR[c] === 1) {
      if (start < 0) start = i;
    } else if (start >= 0) {
      if (i - start >= MIN_CANDIDATE_RUN) runs.push([start, view.slice(start, i)]);
      start = -1;
    }
  }
  return runs;
}

export interface EncodedCandidate {
  index: number;
  text: string;
  hex: boolean;
}

/**
 * The base64 and hex runs the decode step looks at, in its order (all base64 candidates, then
 * all hex ones) and within its limits (at most MAX_DECODE_CANDIDATES, longer than
 * MAX_CANDIDATE_LENGTH skipped). `everyPosition` matches the patterns over the whole text: the
 * reference the run-by-run search is tested against.
 */
export function encodedCandidates(view: string, everyPosition = false): EncodedCandidate[] {
  const out: EncodedCandidate[] = [];
  const runs: Array<[number, string]> = everyPosition ? [[0, view]] : candidateRuns(view);
  for (const re of [B64_CANDIDATE, HEX_CANDIDATE]) {
    for (const [offset, run] of runs) {
      re.lastIndex = 0;
      let m: RegExpExecArray | null;
      while (out.length < MAX_DECODE_CANDIDATES && (m = re.exec(run)) !== null) {
        if (m[0].length > MAX_CANDIDATE_LENGTH) continue;
        out.push({ index: offset + m.index, text: m[0], hex: re === HEX_CANDIDATE });
      }
    }
  }
  return out;
}

function printableRatio(s: string): number {
  if (s.length === 0) return 0;
  let ok = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if ((c >= 0x20 && c < 0x7f) || c === 0x0a || c === 0x0d || c === 0x09 || (c >= 0xa0 && c !== 0xfffd)) ok++;
  }
  return ok / s.length;
}

function decodeCandidate(s: string, hex: boolean): string | undefined {
  const buf = hex ? Buffer.from(s, 'hex') : Buffer.from(s.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
  if (buf.length < 16) return undefined;
  const text = buf.toString('utf8');
  if (printableRatio(text) < 0.92) return undefined;
  if (!/[a-z]{2,}\s+[a-z]{2,}/i.test(text)) return undefined;
  return text;
}

// ---------------------------------------------------------------- detection

export interface InjectionOptions {
  /** Look inside base64/hex runs (default true; false inside a decoded payload). */
  decode?: boolean;
}

function runRules(view: string, out: Finding[]): void {
  const gates = gatesMatching(view);
  if (gates === undefined) return;
  for (let i = 0; i < RULES.length; i++) {
    const rule = RULES[i]!;
    if (!gates[i]) continue;
    rule.re.lastIndex = 0;
    let m: RegExpExecArray | null;
    while ((m = rule.re.exec(view)) !== null) {
      if (m[0].length === 0) {
        rule.re.lastIndex++;
        continue;
      }
      let severity = rule.severity;
      if (rule.accept !== undefined) {
        const a = rule.accept(m, view);
        if (a === false) continue;
        if (a !== true) severity = a;
      }
      out.push({
        rule: rule.id,
        kind: 'injection',
        severity,
        message: rule.message,
        evidence: m[0],
        start: m.index,
        end: m.index + m[0].length,
      });
    }
  }
}

/**
 * Find prompt-injection patterns. Findings carry spans into `text` and the matched snippet as
 * evidence (callers mask secrets in evidence before showing it).
 */
export function detectInjection(text: string, opts: InjectionOptions = {}): Finding[] {
  const view = detectionView(text);
  const out: Finding[] = [];
  runRules(view, out);

  // Letters from the mathematical alphanumeric block fold only with NFKC, which changes length:
  // scan the folded text too and report over the whole text.
  if (MATH_ALNUM.test(view)) {
    const folded = view.normalize('NFKC');
    const extra: Finding[] = [];
    runRules(folded, extra);
    for (const f of extra) out.push({ ...f, rule: f.rule, start: 0, end: text.length, evidence: f.evidence });
  }

  if (opts.decode !== false && hasCandidateRun(view)) {
    for (const c of encodedCandidates(view)) {
      const decoded = decodeCandidate(c.text, c.hex);
      if (decoded === undefined) continue;
      const inner = detectInjection(decoded, { decode: false }).filter((f) => f.severity !== 'low');
      if (inner.length === 0) continue;
      out.push({
        rule: 'injection.encoded-payload',
        kind: 'injection',
        severity: 'high',
        message: `an encoded payload decodes to instructions (${[...new Set(inner.map((f) => f.rule))].join(', ')})`,
        evidence: c.text.length > 48 ? `${c.text.slice(0, 48)}…` : c.text,
        start: c.index,
        end: c.index + c.text.length,
      });
    }
  }
  return out;
}
