/**
 * Cedar (`@cedar-policy/cedar-wasm`) as a second policy engine, evaluated in addition to the YAML
 * rules: both must allow. Loaded lazily (the wasm is only imported when `policy.cedar` is set).
 *
 * Entity model (docs/policy.md has examples):
 * - principal `User::"<sub>"` with attributes issuer, authMethod, scopes (Set<String>), roles,
 *   groups, and clientId / certificate {subject, uris, dnsNames, thumbprint} when known; its
 *   parents are `Role::"<role>"` and `Group::"<group>"`, so `principal in Role::"editor"` works.
 * - action `Action::"tools/call"`, `Action::"resources/read"`, `Action::"prompts/get"` (list
 *   filtering asks the same question without arguments).
 * - resource `Tool::"<mount>/<name>"`, `Resource::"<mount>/<uri>"`, `Prompt::"<mount>/<name>"`,
 *   with attributes name (or uri) and mount, and parent `Mount::"<mount>"`.
 * - context: mount, authMethod, clientIp (String), sourceIp (ipaddr), tokenAgeSeconds (Long),
 *   hasArguments (Bool) and arguments (Record; only on tools/call).
 *
 * Fail closed: a request Cedar cannot evaluate, or any policy that errors during evaluation,
 * counts as a deny (Cedar itself skips an erroring forbid, which would fail open).
 */
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { BastionError } from '../errors.js';
import type { CedarEvaluator, CedarRequest, CedarResult, PolicyAction } from './types.js';

type CedarModule = typeof import('@cedar-policy/cedar-wasm/nodejs');
type CedarValue = import('@cedar-policy/cedar-wasm/nodejs').CedarValueJson;
type EntityJson = import('@cedar-policy/cedar-wasm/nodejs').EntityJson;

let modulePromise: Promise<CedarModule> | undefined;
let setCounter = 0;

function loadModule(): Promise<CedarModule> {
  modulePromise ??= import('@cedar-policy/cedar-wasm/nodejs');
  return modulePromise;
}

const RESERVED_KEYS = new Set(['__entity', '__extn', '__expr']);
const MAX_DEPTH = 32;

/**
 * Client arguments as a Cedar record. Hostile input: keys Cedar's JSON format treats as escapes
 * (`__entity`, `__extn`) are dropped so arguments cannot smuggle entity references; non-integer
 * numbers become strings (Cedar has only 64-bit integers); null is dropped.
 */
export function toCedarValue(v: unknown, depth = 0): CedarValue | undefined {
  if (depth > MAX_DEPTH) return undefined;
  switch (typeof v) {
    case 'string':
    case 'boolean':
      return v;
    case 'number':
      return Number.isSafeInteger(v) ? v : String(v);
    case 'object': {
      if (v === null) return undefined;
      if (Array.isArray(v)) {
        const out: CedarValue[] = [];
        for (const x of v) {
          const c = toCedarValue(x, depth + 1);
          if (c !== undefined) out.push(c);
        }
        return out;
      }
      const out: Record<string, CedarValue> = {};
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
        if (RESERVED_KEYS.has(k)) continue;
        const c = toCedarValue(x, depth + 1);
        if (c !== undefined) out[k] = c;
      }
      return out;
    }
    default:
      return undefined;
  }
}

const RESOURCE_TYPE: Record<PolicyAction, string> = { 'tools/call': 'Tool', 'resources/read': 'Resource', 'prompts/get': 'Prompt' };

function buildRequest(req: CedarRequest): {
  principal: { type: string; id: string };
  action: { type: string; id: string };
  resource: { type: string; id: string };
  context: Record<string, CedarValue>;
  entities: EntityJson[];
} {
  const p = req.principal;
  const principalUid = { type: 'User', id: p.subject };
  const attrs: Record<string, CedarValue> = {
    issuer: p.issuer,
    authMethod: p.authMethod,
    scopes: [...p.scopes],
    roles: [...p.roles],
    groups: [...p.groups],
  };
  if (p.clientId !== undefined) attrs.clientId = p.clientId;
  if (p.certificate !== undefined) {
    attrs.certificate = {
      subject: p.certificate.subject,
      uris: [...p.certificate.uris],
      dnsNames: [...p.certificate.dnsNames],
      thumbprint: p.certificate.thumbprint,
    };
  }
  const parents = [...p.roles.map((r) => ({ type: 'Role', id: r })), ...p.groups.map((g) => ({ type: 'Group', id: g }))];
  const resourceType = RESOURCE_TYPE[req.action];
  const resourceUid = { type: resourceType, id: `${req.mount}/${req.target}` };
  const resourceAttrs: Record<string, CedarValue> =
    req.action === 'resources/read' ? { uri: req.target, mount: req.mount } : { name: req.target, mount: req.mount };
  const ctx = req.context;
  const context: Record<string, CedarValue> = { mount: req.mount, authMethod: p.authMethod, hasArguments: ctx.arguments !== undefined };
  if (ctx.clientIp !== undefined) {
    context.clientIp = ctx.clientIp;
    const bare = ctx.clientIp.split('%')[0]!;
    if (isIP(bare) !== 0) context.sourceIp = { __extn: { fn: 'ip', arg: bare } };
  }
  if (p.issuedAt !== undefined) context.tokenAgeSeconds = Math.max(0, Math.floor(ctx.now / 1000 - p.issuedAt));
  if (ctx.arguments !== undefined) context.arguments = toCedarValue(ctx.arguments) ?? {};
  const entities: EntityJson[] = [
    { uid: principalUid, attrs, parents },
    { uid: resourceUid, attrs: resourceAttrs, parents: [{ type: 'Mount', id: req.mount }] },
  ];
  return { principal: principalUid, action: { type: 'Action', id: req.action }, resource: resourceUid, context, entities };
}

function describeErrors(errors: readonly { message: string }[]): string {
  return errors.map((e) => e.message).join('; ');
}

/**
 * Load and parse a Cedar policy file. A policy that does not parse throws
 * ERR_BASTION_CONFIG_INVALID with Cedar's message: start-up stops.
 */
export async function loadCedar(file: string, baseDir = process.cwd()): Promise<CedarEvaluator> {
  const path = resolve(baseDir, file);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new BastionError('ERR_BASTION_CONFIG_UNREADABLE', `Cannot read the Cedar policy file ${path} (policy.cedar): ${String(code ?? err)}`);
  }
  const cedar = await loadModule();
  const check = cedar.checkParsePolicySet({ staticPolicies: text });
  if (check.type === 'failure') {
    throw new BastionError('ERR_BASTION_CONFIG_INVALID', `Invalid Cedar policy in ${path} (policy.cedar): ${describeErrors(check.errors)}`);
  }
  const id = `bastion-${++setCounter}`;
  const pre = cedar.preparsePolicySet(id, { staticPolicies: text });
  if (pre.type === 'failure') {
    throw new BastionError('ERR_BASTION_CONFIG_INVALID', `Invalid Cedar policy in ${path} (policy.cedar): ${describeErrors(pre.errors)}`);
  }
  return {
    file: path,
    authorize(req: CedarRequest): CedarResult {
      let answer;
      try {
        const r = buildRequest(req);
        answer = cedar.statefulIsAuthorized({ ...r, preparsedPolicySetId: id });
      } catch (err) {
        return { allowed: false, policies: [], errors: [`cedar evaluation threw: ${(err as Error).message}`] };
      }
      if (answer.type === 'failure') return { allowed: false, policies: [], errors: answer.errors.map((e) => e.message) };
      const d = answer.response.diagnostics;
      return {
        allowed: answer.response.decision === 'allow',
        policies: d.reason,
        errors: d.errors.map((e) => `${e.policyId}: ${e.error.message}`),
      };
    },
  };
}
