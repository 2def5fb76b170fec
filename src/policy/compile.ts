/**
 * The policy compiled from the configuration into lookup structures: a Map from tool and prompt
 * name to its rule, exact resource URIs in a Map and prefix patterns in Maps keyed by prefix
 * length, identities in Sets. A decision costs a few Map/Set lookups whatever the number of
 * rules (no scan over rules), so 10 and 10,000 rules decide in the same time.
 *
 * `decide()` is pure: the same principal, action, target and context give the same Decision.
 * Deny wins: a deny list, a missing allow-list entry or a context rule hides the item; missing
 * scopes alone give `step-up` (unless the mount says `stepUp: hide`); Cedar, when configured,
 * must allow too.
 */
import type { Config } from '../config/schema.js';
import { CidrSet } from './cidr.js';
import { parseRate } from './rate.js';
import type {
  ArgumentConstraint,
  ArgumentLimits,
  CedarEvaluator,
  Decision,
  DecisionContext,
  PolicyPrincipal as Principal,
  PolicyAction,
  RateSpec,
  ToolRatePer,
} from './types.js';

type ServerConfig = Config['servers'][string];
type RuleConfig = NonNullable<ServerConfig['tools']>[string];
type IdentityMatchConfig = NonNullable<RuleConfig['allow']>;

/** Only non-empty lists get a Set: less memory touched per decision when rules are many. */
function setOf(xs: readonly string[] | undefined): ReadonlySet<string> | undefined {
  return xs !== undefined && xs.length > 0 ? new Set(xs) : undefined;
}

class IdentityMatcher {
  private readonly subjects: ReadonlySet<string> | undefined;
  private readonly clients: ReadonlySet<string> | undefined;
  private readonly roles: ReadonlySet<string> | undefined;
  private readonly groups: ReadonlySet<string> | undefined;
  private readonly certificates: ReadonlySet<string> | undefined;

  constructor(m: IdentityMatchConfig) {
    this.subjects = setOf(m.subjects);
    this.clients = setOf(m.clients);
    this.roles = setOf(m.roles);
    this.groups = setOf(m.groups);
    this.certificates = setOf(m.certificates);
  }

  /** True when the principal matches ANY listed identity. Cost: its roles + groups + SANs. */
  matches(p: Principal): boolean {
    if (this.subjects?.has(p.subject)) return true;
    if (this.clients !== undefined && p.clientId !== undefined && this.clients.has(p.clientId)) return true;
    if (this.roles !== undefined) for (const r of p.roles) if (this.roles.has(r)) return true;
    if (this.groups !== undefined) for (const g of p.groups) if (this.groups.has(g)) return true;
    const cs = this.certificates;
    if (cs !== undefined && p.certificate !== undefined) {
      const c = p.certificate;
      if (cs.has(c.subject) || cs.has(c.thumbprint)) return true;
      for (const u of c.uris) if (cs.has(u)) return true;
      for (const d of c.dnsNames) if (cs.has(d)) return true;
    }
    return false;
  }
}

interface CompiledRule {
  /** Config path, e.g. `servers.notes.tools.delete_note`. */
  readonly id: string;
  readonly scopes: readonly string[];
  readonly allow: IdentityMatcher | undefined;
  readonly deny: IdentityMatcher | undefined;
  readonly authMethods: ReadonlySet<string> | undefined;
  readonly maxTokenAgeSeconds: number | undefined;
  readonly sourceCidrs: CidrSet | undefined;
}

export interface ToolRate {
  readonly spec: RateSpec;
  readonly per: ToolRatePer;
}

interface CompiledTool extends CompiledRule {
  readonly rate: ToolRate | undefined;
  readonly args: Readonly<Record<string, ArgumentConstraint>> | undefined;
  readonly unknownArguments: 'refuse' | 'allow' | undefined;
}

export interface MountRates {
  readonly perToken?: RateSpec | undefined;
  readonly perSubject?: RateSpec | undefined;
  readonly perClientIp?: RateSpec | undefined;
  readonly total?: RateSpec | undefined;
}

const EMPTY: readonly string[] = Object.freeze([]);

function quotePathKey(k: string): string {
  return /^[A-Za-z0-9_-]+$/.test(k) ? `.${k}` : `[${JSON.stringify(k)}]`;
}

function compileRule(id: string, r: RuleConfig | undefined): CompiledRule {
  return {
    id,
    scopes: r?.scopes && r.scopes.length > 0 ? [...new Set(r.scopes)] : EMPTY,
    allow: r?.allow ? new IdentityMatcher(r.allow) : undefined,
    deny: r?.deny ? new IdentityMatcher(r.deny) : undefined,
    authMethods: r?.require?.authMethod ? new Set(r.require.authMethod) : undefined,
    maxTokenAgeSeconds: r?.require?.maxTokenAgeSeconds,
    sourceCidrs: r?.require?.sourceCidrs ? new CidrSet(r.require.sourceCidrs) : undefined,
  };
}

type Failure = { policy: string; reason: string } | undefined;

/** The non-scope checks of one rule: deny list, allow list, context rules. */
function checkRule(rule: CompiledRule, p: Principal, ctx: DecisionContext): Failure {
  if (rule.deny?.matches(p)) return { policy: `${rule.id}.deny`, reason: 'denied_by_rule' };
  if (rule.allow !== undefined && !rule.allow.matches(p)) return { policy: `${rule.id}.allow`, reason: 'not_in_allow_list' };
  if (rule.authMethods !== undefined && !rule.authMethods.has(p.authMethod)) {
    return { policy: `${rule.id}.require.authMethod`, reason: 'auth_method_not_allowed' };
  }
  if (rule.maxTokenAgeSeconds !== undefined) {
    if (p.issuedAt === undefined) return { policy: `${rule.id}.require.maxTokenAgeSeconds`, reason: 'token_age_unknown' };
    if (ctx.now / 1000 - p.issuedAt > rule.maxTokenAgeSeconds) {
      return { policy: `${rule.id}.require.maxTokenAgeSeconds`, reason: 'token_too_old' };
    }
  }
  if (rule.sourceCidrs !== undefined && !rule.sourceCidrs.has(ctx.clientIp)) {
    return { policy: `${rule.id}.require.sourceCidrs`, reason: 'source_ip_not_allowed' };
  }
  return undefined;
}

export class MountPolicy {
  readonly name: string;
  readonly stepUp: 'challenge' | 'hide';
  readonly limits: Readonly<ArgumentLimits>;
  readonly rates: MountRates;
  private readonly tools = new Map<string, CompiledTool>();
  private readonly prompts = new Map<string, CompiledRule>();
  private readonly resourcesExact = new Map<string, CompiledRule>();
  /** prefix length -> prefix -> rule. Lookup costs one Map.get per distinct length. */
  private readonly resourcePrefixes = new Map<number, Map<string, CompiledRule>>();
  private readonly prefixLengths: number[] = [];
  private readonly defaults: Record<PolicyAction, 'allow' | 'deny'>;
  private readonly cedar: CedarEvaluator | undefined;

  constructor(name: string, s: ServerConfig | undefined, cedar: CedarEvaluator | undefined) {
    this.name = name;
    this.cedar = cedar;
    const base = `servers.${name}`;
    this.stepUp = s?.stepUp ?? 'challenge';
    this.defaults = {
      'tools/call': s?.defaultTool ?? 'deny',
      'resources/read': s?.defaultResource ?? 'deny',
      'prompts/get': s?.defaultPrompt ?? 'deny',
    };
    const l = s?.limits;
    this.limits = Object.freeze({
      maxArgumentBytes: l?.maxArgumentBytes ?? 256 * 1024,
      maxArgumentDepth: l?.maxArgumentDepth ?? 32,
      maxSchemaBytes: l?.maxSchemaBytes ?? 256 * 1024,
      maxSchemaDepth: l?.maxSchemaDepth ?? 48,
      maxSchemaCost: l?.maxSchemaCost ?? 2_000,
      unknownArguments: l?.unknownArguments ?? 'refuse',
    });
    const r = s?.rateLimit;
    this.rates = {
      perToken: r?.perToken ? parseRate(r.perToken) : undefined,
      perSubject: r?.perSubject ? parseRate(r.perSubject) : undefined,
      perClientIp: r?.perClientIp ? parseRate(r.perClientIp) : undefined,
      total: r?.total ? parseRate(r.total) : undefined,
    };
    for (const [tool, rule] of Object.entries(s?.tools ?? {})) {
      const rl = rule.rateLimit;
      this.tools.set(tool, {
        ...compileRule(`${base}.tools${quotePathKey(tool)}`, rule),
        rate: rl === undefined ? undefined : { spec: parseRate(rl), per: typeof rl === 'string' ? 'subject' : rl.per },
        args: rule.args,
        unknownArguments: rule.unknownArguments,
      });
    }
    for (const [prompt, rule] of Object.entries(s?.prompts ?? {})) {
      this.prompts.set(prompt, compileRule(`${base}.prompts${quotePathKey(prompt)}`, rule));
    }
    const lengths = new Set<number>();
    for (const [pattern, rule] of Object.entries(s?.resources ?? {})) {
      const compiled = compileRule(`${base}.resources${quotePathKey(pattern)}`, rule);
      if (pattern.endsWith('*')) {
        const prefix = pattern.slice(0, -1);
        let m = this.resourcePrefixes.get(prefix.length);
        if (m === undefined) this.resourcePrefixes.set(prefix.length, (m = new Map()));
        m.set(prefix, compiled);
        lengths.add(prefix.length);
      } else {
        this.resourcesExact.set(pattern, compiled);
      }
    }
    this.prefixLengths = [...lengths].sort((a, b) => a - b);
    const scopes = new Set<string>();
    for (const r of [...this.tools.values(), ...this.prompts.values(), ...this.resourcesExact.values()]) for (const sc of r.scopes) scopes.add(sc);
    for (const m of this.resourcePrefixes.values()) for (const r of m.values()) for (const sc of r.scopes) scopes.add(sc);
    this.scopes = Object.freeze([...scopes].sort());
  }

  /** Every scope this mount's rules name (for `scopes_supported` in the resource metadata). */
  readonly scopes: readonly string[];

  /** The tool's rate limit, argument constraints and unknown-argument mode (undefined when not listed). */
  tool(name: string): { rate: ToolRate | undefined; args: Readonly<Record<string, ArgumentConstraint>> | undefined; unknownArguments: 'refuse' | 'allow' } {
    const t = this.tools.get(name);
    return { rate: t?.rate, args: t?.args, unknownArguments: t?.unknownArguments ?? this.limits.unknownArguments };
  }

  private rulesFor(action: PolicyAction, target: string): CompiledRule[] {
    if (action === 'tools/call') {
      const t = this.tools.get(target);
      return t === undefined ? [] : [t];
    }
    if (action === 'prompts/get') {
      const r = this.prompts.get(target);
      return r === undefined ? [] : [r];
    }
    const out: CompiledRule[] = [];
    const exact = this.resourcesExact.get(target);
    if (exact !== undefined) out.push(exact);
    for (const len of this.prefixLengths) {
      if (len > target.length) break;
      const r = this.resourcePrefixes.get(len)!.get(target.slice(0, len));
      if (r !== undefined) out.push(r);
    }
    return out;
  }

  /**
   * The one decision function: used to filter lists and to enforce calls, so they always agree.
   * `target` is the tool or prompt name, or the resource URI (or URI template when filtering
   * resources/templates/list).
   */
  decide(principal: Principal, action: PolicyAction, target: string, context: DecisionContext): Decision {
    const rules = this.rulesFor(action, target);
    const base = `servers.${this.name}`;
    if (rules.length === 0 && this.defaults[action] === 'deny') {
      const key = action === 'tools/call' ? 'defaultTool' : action === 'prompts/get' ? 'defaultPrompt' : 'defaultResource';
      return { outcome: 'hide', policy: `${base}.${key}`, reason: 'default_deny', requiredScopes: EMPTY, missingScopes: EMPTY };
    }
    let required: string[] | undefined;
    let missing: string[] | undefined;
    let scopePolicy = '';
    for (const rule of rules) {
      const f = checkRule(rule, principal, context);
      if (f !== undefined) return { outcome: 'hide', policy: f.policy, reason: f.reason, requiredScopes: EMPTY, missingScopes: EMPTY };
      for (const sc of rule.scopes) {
        (required ??= []).push(sc);
        if (!principal.scopes.has(sc)) {
          (missing ??= []).push(sc);
          if (scopePolicy === '') scopePolicy = `${rule.id}.scopes`;
        }
      }
    }
    if (this.cedar !== undefined) {
      const res = this.cedar.authorize({ principal, action, mount: this.name, target, context });
      if (!res.allowed || res.errors.length > 0) {
        return {
          outcome: 'hide',
          policy: `cedar:${res.policies.length > 0 ? res.policies.join(',') : 'no-permit'}`,
          reason: res.errors.length > 0 ? 'cedar_error' : 'cedar_denied',
          requiredScopes: EMPTY,
          missingScopes: EMPTY,
          detail: { file: this.cedar.file, policies: res.policies, errors: res.errors },
        };
      }
    }
    const requiredScopes = required ? [...new Set(required)] : EMPTY;
    if (missing !== undefined) {
      return {
        // Nobody to re-authorize without authentication: an anonymous caller cannot step up.
        outcome: this.stepUp === 'hide' || principal.authMethod === 'none' ? 'hide' : 'step-up',
        policy: scopePolicy,
        reason: 'scope_missing',
        requiredScopes,
        missingScopes: [...new Set(missing)],
      };
    }
    const policy = rules.length === 0 ? `${base}.${action === 'tools/call' ? 'defaultTool' : action === 'prompts/get' ? 'defaultPrompt' : 'defaultResource'}` : rules[0]!.id;
    return { outcome: 'allow', policy, reason: 'allowed', requiredScopes, missingScopes: EMPTY };
  }
}

export interface CompiledPolicy {
  /** The mount's policy; an unknown mount gets a deny-everything policy (fail closed). */
  forMount(name: string): MountPolicy;
  readonly globalRates: { perToken?: RateSpec | undefined; perSubject?: RateSpec | undefined; perClientIp?: RateSpec | undefined };
  readonly cedar: CedarEvaluator | undefined;
}

export interface CompileOptions {
  /** A loaded Cedar policy set (see loadCedar); required when `policy.cedar` is configured. */
  cedar?: CedarEvaluator | undefined;
}

/** Compile the whole configuration. Pure apart from building objects; throws on an invalid rate. */
export function compilePolicy(config: Pick<Config, 'servers'> & Partial<Pick<Config, 'rateLimit' | 'policy'>>, options: CompileOptions = {}): CompiledPolicy {
  if (config.policy?.cedar !== undefined && options.cedar === undefined) {
    throw new Error('policy.cedar is configured: load it with loadCedar() (or loadPolicy()) before compiling');
  }
  const mounts = new Map<string, MountPolicy>();
  for (const [name, s] of Object.entries(config.servers)) mounts.set(name, new MountPolicy(name, s, options.cedar));
  const g = config.rateLimit;
  return {
    forMount(name) {
      // Unknown mount: everything defaults to deny (not cached: names are not trusted).
      return mounts.get(name) ?? new MountPolicy(name, undefined, options.cedar);
    },
    globalRates: {
      perToken: g?.perToken ? parseRate(g.perToken) : undefined,
      perSubject: g?.perSubject ? parseRate(g.perSubject) : undefined,
      perClientIp: g?.perClientIp ? parseRate(g.perClientIp) : undefined,
    },
    cedar: options.cedar,
  };
}
