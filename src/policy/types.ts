/**
 * The authorization layer's contract: what is decided on, and what a decision says.
 * Pure data; the decision functions are in decide.ts and compile.ts.
 */

/**
 * What a decision needs to know about the caller. The identity layer's `Principal`
 * (src/identity/types.ts) has this shape; it is restated here because domain rooms do not
 * import each other (the compiler checks the two stay compatible where the stages pass one in).
 */
export interface PolicyPrincipal {
  readonly subject: string;
  readonly issuer: string;
  readonly clientId: string | undefined;
  readonly scopes: ReadonlySet<string>;
  readonly roles: readonly string[];
  readonly groups: readonly string[];
  /** `none`, `bearer`, `dpop`, `mtls`, `mtls+bearer`, `mtls+dpop`, `api-key`. */
  readonly authMethod: string;
  /** `iat` of the token, seconds since epoch. */
  readonly issuedAt: number | undefined;
  readonly certificate:
    | { readonly subject: string; readonly uris: readonly string[]; readonly dnsNames: readonly string[]; readonly thumbprint: string }
    | undefined;
}

/** The MCP methods a policy decides on. List methods are filtered with the same decision. */
export type PolicyAction = 'tools/call' | 'resources/read' | 'prompts/get';

export interface DecisionContext {
  /** Client IP as seen by the gateway (IPv4, IPv6 or IPv4-mapped IPv6). */
  clientIp: string | undefined;
  /** Milliseconds since epoch (injected: decisions are pure). */
  now: number;
  /** tools/call arguments, for Cedar conditions; undefined when filtering a list. */
  arguments?: Readonly<Record<string, unknown>> | undefined;
}

/**
 * `allow`: go ahead. `step-up`: refused only for missing scopes; the item stays listed and the
 * call gets 403 insufficient_scope. `hide`: refused for anything else; the item is absent from
 * lists and its call is answered exactly like a call to something that does not exist.
 */
export type DecisionOutcome = 'allow' | 'step-up' | 'hide';

export interface Decision {
  readonly outcome: DecisionOutcome;
  /** Which rule decided, as a config path or engine id: `servers.notes.tools.delete_note`, `cedar:policy0`. */
  readonly policy: string;
  /**
   * Machine-readable reason: `allowed`, `scope_missing`, `denied_by_rule`, `not_in_allow_list`,
   * `default_deny`, `auth_method_not_allowed`, `token_too_old`, `token_age_unknown`,
   * `source_ip_not_allowed`, `cedar_denied`, `cedar_error`.
   */
  readonly reason: string;
  /** Every scope the item needs (all matching rules). */
  readonly requiredScopes: readonly string[];
  /** Required scopes the principal lacks. */
  readonly missingScopes: readonly string[];
  /** Public details for audit (Cedar policy ids, errors). */
  readonly detail?: Readonly<Record<string, unknown>>;
}

/** True when a list should show the item (allowed, or refused only for scopes with step-up on). */
export function isVisible(d: Decision): boolean {
  return d.outcome !== 'hide';
}

/** The request given to a Cedar engine (entity model in docs/policy.md). */
export interface CedarRequest {
  principal: PolicyPrincipal;
  action: PolicyAction;
  mount: string;
  /** Tool or prompt name, or resource URI. */
  target: string;
  context: DecisionContext;
}

export interface CedarResult {
  allowed: boolean;
  /** Ids of the policies that determined the result (permits when allowed, forbids when denied). */
  policies: readonly string[];
  /** Evaluation errors (a policy that errored is skipped by Cedar; the gateway then denies). */
  errors: readonly string[];
}

/** A loaded Cedar policy set. Synchronous once loaded. */
export interface CedarEvaluator {
  readonly file: string;
  authorize(req: CedarRequest): CedarResult;
}

export interface RateSpec {
  ratePerSecond: number;
  burst: number;
  /** The configured text, for messages (`10/minute`). */
  text: string;
}

export type ToolRatePer = 'subject' | 'token' | 'client-ip' | 'all';

export interface ArgumentLimits {
  maxArgumentBytes: number;
  maxArgumentDepth: number;
  maxSchemaBytes: number;
  maxSchemaDepth: number;
  maxSchemaCost: number;
  unknownArguments: 'refuse' | 'allow';
}

export interface ArgumentConstraint {
  pattern?: string | undefined;
  maxLength?: number | undefined;
  minLength?: number | undefined;
  maximum?: number | undefined;
  minimum?: number | undefined;
  enum?: readonly (string | number | boolean | null)[] | undefined;
  maxItems?: number | undefined;
  required?: boolean | undefined;
}
