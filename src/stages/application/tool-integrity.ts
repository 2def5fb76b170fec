/**
 * application.tool-integrity: pins, signed manifests and the poisoning scan on the response path.
 *
 * - Responses to `tools/list`, `prompts/list`, `resources/templates/list`: each definition is
 *   hashed (RFC 8785 + SHA-256), scanned, checked against its pin and the server's signed
 *   manifest; held-back definitions (new in strict mode, changed, blocked by the scan, unsigned)
 *   are removed from the list, recorded as pending in the state store and audited
 *   (`tool.definition.changed` / `tool.definition.blocked`, with the diff). First sight in
 *   `tofu` mode pins the definition (`tool.definition.approved`, by `tofu`).
 * - `initialize` responses: the server's `instructions` are scanned; blocked instructions are
 *   removed.
 * - `notifications/{tools,prompts,resources}/list_changed`: passed on; for tools the stage
 *   re-checks the catalog at once (ctx.session.upstreamTools()) so calls to a changed tool are
 *   refused even before the client lists again.
 * - Requests: a `tools/call` of a held-back tool (or `prompts/get` of a held-back prompt) is
 *   refused with ERR_BASTION_INTEGRITY_HELD_BACK, saying which, why, and how to approve.
 *
 * Approval takes effect without restart: pins are read from the lockfile (re-read when it
 * changes on disk) and the state store at each check (cached for `cacheMs`, dropped at once on
 * the `bastion:integrity:changed` channel); a signed manifest file is looked at no more often.
 */
import { readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { KeyObject } from 'node:crypto';
import { BastionError } from '../../errors.js';
import type { AuditEvent, AuditLog } from '../../audit/types.js';
import type { StateStore } from '../../stores/types.js';
import type { MessageContext, MountRuntime, RequestContext, Stage } from '../../pipeline/context.js';
import { isNotification, isRequest, isResponse, type JsonRpcMessage, type JsonRpcResponse } from '../../pipeline/messages.js';
import { integrityServerSchema, type IntegrityServerConfig } from '../../config/integrity.js';
import { definitionHash, identityOf } from '../../integrity/canonical.js';
import { decide, approveHint, type IntegrityDecision } from '../../integrity/decide.js';
import { coverageKey, publicKeyFromPem, verifyManifest, type ManifestVerification } from '../../integrity/manifest.js';
import { PinRegistry, fileLockSource, memoryLockSource, type LockSource } from '../../integrity/registry.js';
import { lockfilePathFor } from '../../integrity/lockfile.js';
import type { LoadedConfig } from '../../config/load.js';
import { indexKnown, scanDefinition, scanInstructions, type KnownIndex } from '../../integrity/scan.js';
import { INTEGRITY_KEYS, pinKey, type DefinitionKind, type Finding, type KnownTool, type Pin, type RawDefinition } from '../../integrity/types.js';

export const TOOL_INTEGRITY_STAGE = 'application.tool-integrity';

export interface ToolIntegrityDeps {
  store: StateStore;
  audit: AuditLog;
  /** The lockfile: fileLockSource(path) in the gateway, memoryLockSource() in tests. */
  lock: LockSource;
  /** Folder that relative `trustedKeys` / `manifest` paths are resolved against (the config's). */
  baseDir?: string;
  /** Write tofu/manifest pins to the lockfile too (global `integrity.persistTofu`; default true). */
  persistTofu?: boolean;
  /**
   * Tools known on other servers, for the cross-server checks. Default: the effective pins of
   * every server in the lockfile (and the store) other than the one being checked.
   */
  knownTools?: (mount: string) => Promise<KnownTool[]>;
  /** Milliseconds since epoch. */
  now?: () => number;
  /** How long effective pins are cached per server (default 2000 ms; invalidated on publish). */
  cacheMs?: number;
}

const LIST_METHODS: Record<string, { kind: DefinitionKind; field: string }> = {
  'tools/list': { kind: 'tool', field: 'tools' },
  'prompts/list': { kind: 'prompt', field: 'prompts' },
  'resources/templates/list': { kind: 'resourceTemplate', field: 'resourceTemplates' },
};

const KIND_LABEL: Record<DefinitionKind, string> = { tool: 'Tool', prompt: 'Prompt', resourceTemplate: 'Resource template' };

interface Evaluated {
  kind: DefinitionKind;
  name: string;
  hash: string;
  definition: Record<string, unknown>;
  decision: IntegrityDecision;
}

interface ManifestState {
  fingerprint: string;
  result: ManifestVerification | undefined;
  /** When the file was last looked at (stat). */
  checkedAt: number;
}

const MAX_SESSIONS_TRACKED = 10_000;
const MAX_DEFINITIONS_TRACKED = 20_000;
const MAX_DIFF_CHARS = 8192;

function integrityConfig(mount: MountRuntime): IntegrityServerConfig {
  const c = (mount.config as { integrity?: IntegrityServerConfig }).integrity;
  return c ?? integrityServerSchema.parse({});
}

function auditFindings(findings: readonly Finding[]): Array<{ rule: string; severity: string; path: string }> {
  return findings.map((f) => ({ rule: f.rule, severity: f.severity, path: f.path }));
}

function changedFields(before: Record<string, unknown>, after: Record<string, unknown>): string[] {
  const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
  return [...keys].filter((k) => JSON.stringify(before[k]) !== JSON.stringify(after[k])).sort();
}

/**
 * The stage as the gateway wires it from its loaded configuration: the lockfile beside the
 * config file (or `integrity.lockfile`), re-read when it changes; an in-memory lockfile when the
 * config has no file. Throws at start-up on an invalid lockfile (fail closed).
 */
export function toolIntegrityStageForConfig(loaded: LoadedConfig, deps: { store: StateStore; audit: AuditLog; now?: () => number }): Stage {
  const g = (loaded.config as { integrity?: { lockfile?: string; persistTofu?: boolean } }).integrity;
  const lock = loaded.file ? fileLockSource(lockfilePathFor(loaded.file, g?.lockfile)) : memoryLockSource();
  return toolIntegrityStage({ store: deps.store, audit: deps.audit, lock, baseDir: loaded.baseDir, persistTofu: g?.persistTofu ?? true, now: deps.now });
}

export function toolIntegrityStage(deps: ToolIntegrityDeps): Stage {
  const now = deps.now ?? Date.now;
  const registry = new PinRegistry(deps.store, deps.lock);
  const cacheMs = deps.cacheMs ?? 2000;
  const pinCache = new Map<string, { at: number; pins: Map<string, Pin> }>();
  const manifests = new Map<string, ManifestState>();
  const keyCache = new Map<string, KeyObject[]>();
  const reported = new Set<string>();
  /**
   * Per session: the hash of the latest definition of each `kind:name` the session was shown
   * (list responses and list_changed re-checks, whichever came last), and the definitions by hash
   * (shared between sessions). A call is checked against what the session last saw.
   */
  const sessionSeen = new Map<string, Map<string, string>>();
  const defsByHash = new Map<string, { kind: DefinitionKind; definition: Record<string, unknown> }>();
  let subscribed: Promise<unknown> | undefined;

  const ensureSubscribed = (): void => {
    subscribed ??= deps.store
      .subscribe(INTEGRITY_KEYS.channel, (message) => {
        try {
          const { server } = JSON.parse(message) as { server?: string };
          if (typeof server === 'string') pinCache.delete(server);
          else pinCache.clear();
        } catch {
          pinCache.clear();
        }
      })
      .catch(() => undefined);
  };

  async function pinsFor(server: string): Promise<Map<string, Pin>> {
    ensureSubscribed();
    await deps.lock.refresh();
    const c = pinCache.get(server);
    // The lockfile object identity changes on reload: cache entries keyed by it stay correct.
    if (c && now() - c.at < cacheMs && lockSeen.get(server) === deps.lock.current()) return c.pins;
    const pins = await registry.pinsFor(server);
    pinCache.set(server, { at: now(), pins });
    lockSeen.set(server, deps.lock.current());
    return pins;
  }
  const lockSeen = new Map<string, unknown>();
  const knownCache = new Map<string, { at: number; index: KnownIndex | undefined }>();
  /** Decisions per effective-pins snapshot: a new snapshot (approval, revocation, reload) starts afresh. */
  const decisionCache = new WeakMap<Map<string, Pin>, Map<string, Evaluated>>();

  async function knownIndexFor(mount: string): Promise<KnownIndex | undefined> {
    const c = knownCache.get(mount);
    if (c && now() - c.at < cacheMs) return c.index;
    const known = await knownFor(mount);
    const index = known.length > 0 ? indexKnown(known) : undefined;
    knownCache.set(mount, { at: now(), index });
    return index;
  }

  async function knownFor(mount: string): Promise<KnownTool[]> {
    if (deps.knownTools) return deps.knownTools(mount);
    const out: KnownTool[] = [];
    for (const server of Object.keys(deps.lock.current().servers)) {
      if (server === mount) continue;
      for (const p of (await pinsFor(server)).values()) {
        if (p.kind === 'tool') out.push({ server, name: p.name, description: typeof p.definition.description === 'string' ? p.definition.description : undefined });
      }
    }
    return out;
  }

  function trustedKeys(mount: string, cfg: IntegrityServerConfig): KeyObject[] {
    const cached = keyCache.get(mount);
    if (cached) return cached;
    const keys = cfg.trustedKeys.map((k) => {
      const pem = k.includes('-----BEGIN') ? k : readFileSync(resolve(deps.baseDir ?? process.cwd(), k), 'utf8');
      return publicKeyFromPem(pem);
    });
    keyCache.set(mount, keys);
    return keys;
  }

  async function manifestFor(mount: MountRuntime, cfg: IntegrityServerConfig, emit: (e: AuditEvent) => void): Promise<ManifestVerification | undefined> {
    if (cfg.manifest === undefined) return undefined;
    const prev = manifests.get(mount.name);
    // The file is looked at (stat) at most once per cacheMs, not on every call.
    if (prev && now() - prev.checkedAt < cacheMs) return prev.result;
    const path = resolve(deps.baseDir ?? process.cwd(), cfg.manifest);
    let fingerprint: string;
    try {
      const s = statSync(path);
      fingerprint = `${s.mtimeMs}:${s.size}`;
    } catch {
      fingerprint = 'absent';
    }
    if (prev && prev.fingerprint === fingerprint) {
      prev.checkedAt = now();
      return prev.result;
    }
    const minVersion = await registry.manifestVersion(mount.name);
    let result: ManifestVerification;
    if (fingerprint === 'absent') {
      result = { ok: false, failure: 'malformed', message: `manifest file ${path} does not exist` };
    } else {
      try {
        result = await verifyManifest(readFileSync(path, 'utf8'), { server: mount.name, trustedKeys: trustedKeys(mount.name, cfg), minVersion });
      } catch (err) {
        result = { ok: false, failure: 'malformed', message: `manifest could not be checked: ${(err as Error).message}` };
      }
    }
    manifests.set(mount.name, { fingerprint, result, checkedAt: now() });
    if (result.ok) {
      await registry.recordManifestVersion(mount.name, result.manifest.version);
    } else {
      emit({ type: 'tool.definition.blocked', outcome: 'denied', reason: `manifest_${result.failure.replace(/-/g, '_')}`, mount: mount.name, tool: '*', kind: 'manifest', message: result.message, findings: [] });
    }
    return result;
  }

  /** Evaluate definitions of one kind for a mount. Side effects: tofu pins, pending records, audit. */
  /** Canonical form and hash per definition object (objects are not mutated after parsing). */
  const hashed = new WeakMap<object, { kind: DefinitionKind; definition: Record<string, unknown>; hash: string }>();

  async function evaluate(mount: MountRuntime, kind: DefinitionKind, defs: readonly unknown[], base: Partial<AuditEvent>): Promise<Evaluated[]> {
    const cfg = integrityConfig(mount);
    const server = mount.name;
    const emit = (e: AuditEvent): void => deps.audit.emit({ ...base, ...e });
    const pins = await pinsFor(server);
    const index = cfg.scan === 'off' ? undefined : await knownIndexFor(server);
    let cache = decisionCache.get(pins);
    if (cache === undefined) {
      cache = new Map();
      decisionCache.set(pins, cache);
    }
    const manifest = cfg.manifest !== undefined || cfg.requireSignedManifest ? await manifestFor(mount, cfg, emit) : undefined;
    const siblings = new Set<string>();
    for (const d of defs) if (d !== null && typeof d === 'object' && typeof (d as RawDefinition).name === 'string') siblings.add((d as RawDefinition).name as string);
    const out: Evaluated[] = [];
    const newPins: Pin[] = [];
    for (const raw of defs) {
      if (raw === null || typeof raw !== 'object' || Array.isArray(raw) || typeof (raw as RawDefinition).name !== 'string') {
        // Not a definition a client could use safely: drop it (fail closed).
        out.push({ kind, name: '', hash: '', definition: {}, decision: { status: 'blocked-by-scan', reason: 'malformed definition', findings: [] } });
        continue;
      }
      const def = raw as RawDefinition;
      const name = def.name as string;
      let hash: string;
      let definition: Record<string, unknown>;
      try {
        // The session's catalog hands out the same definition objects until the upstream's list
        // changes: hash each object once, not on every call.
        const known = hashed.get(def);
        if (known !== undefined && known.kind === kind) {
          definition = known.definition;
          hash = known.hash;
        } else {
          definition = identityOf(kind, def);
          hash = definitionHash(kind, def);
          hashed.set(def, { kind, definition, hash });
        }
      } catch {
        out.push({ kind, name, hash: '', definition: {}, decision: { status: 'blocked-by-scan', reason: 'the definition has no canonical JSON form', findings: [] } });
        continue;
      }
      const cacheKey = `${kind}\u0000${name}\u0000${hash}`;
      const hit = cache.get(cacheKey);
      if (hit && hit.decision.status !== 'approved') {
        out.push(hit);
        continue;
      }
      if (hit && hit.decision.status === 'approved' && hit.decision.via !== 'tofu' && hit.decision.via !== 'manifest') {
        out.push(hit);
        continue;
      }
      const scan = scanDefinition(kind, def, { policy: cfg.scan, server, siblings, ignoreRules: cfg.ignoreRules }, index);
      const decision = decide({
        kind,
        name,
        hash,
        definition,
        mode: cfg.mode,
        pin: pins.get(pinKey(kind, name)),
        scan,
        manifest:
          manifest === undefined && !cfg.requireSignedManifest
            ? undefined
            : { required: cfg.requireSignedManifest, covered: manifest?.ok === true && manifest.covered.has(coverageKey(kind, name, hash)), signer: manifest?.ok ? manifest.manifest.signer : undefined },
      });
      const ev: Evaluated = { kind, name, hash, definition, decision };
      out.push(ev);
      cache.set(cacheKey, ev);
      if (decision.status === 'approved' && (decision.via === 'tofu' || decision.via === 'manifest')) {
        const by = decision.via === 'tofu' ? 'tofu' : `manifest:${manifest?.ok ? manifest.manifest.signer : 'unknown'}`;
        newPins.push({ kind, name, hash, definition, approvedAt: new Date(now()).toISOString(), approvedBy: by });
      } else if (decision.status !== 'approved') {
        await hold(server, ev, pins.get(pinKey(kind, name)), emit);
      }
    }
    if (newPins.length > 0) await pinNew(server, newPins, emit);
    return out;
  }

  async function pinNew(server: string, pins: Pin[], emit: (e: AuditEvent) => void): Promise<void> {
    let persisted = false;
    if ((deps.persistTofu ?? true) && deps.lock.addPins) {
      try {
        await deps.lock.addPins(server, pins);
        persisted = true;
      } catch {
        persisted = false;
      }
    }
    // Not persisted to the lockfile: keep them in the state store.
    if (!persisted) for (const p of pins) await registry.approve(server, p);
    pinCache.delete(server);
    for (const p of pins) {
      emit({ type: 'tool.definition.approved', outcome: 'success', reason: p.approvedBy === 'tofu' ? 'tofu' : 'manifest', mount: server, tool: p.name, kind: p.kind, hash: p.hash, by: p.approvedBy, persisted: persisted ? 'lockfile' : 'state-store' });
    }
  }

  async function hold(server: string, ev: Evaluated, pin: Pin | undefined, emit: (e: AuditEvent) => void): Promise<void> {
    const d = ev.decision;
    if (d.status === 'approved') return;
    const key = `${server}\u0000${ev.kind}\u0000${ev.name}\u0000${ev.hash}\u0000${d.status}`;
    if (reported.has(key)) return;
    if (reported.size > 50_000) reported.clear();
    reported.add(key);
    await registry.recordPending({
      server,
      kind: ev.kind,
      name: ev.name,
      hash: ev.hash,
      definition: ev.definition,
      status: d.status,
      diff: d.diff,
      findings: d.findings,
      seenAt: new Date(now()).toISOString(),
    });
    const diff = d.diff && d.diff.length > MAX_DIFF_CHARS ? `${d.diff.slice(0, MAX_DIFF_CHARS)}\n… (truncated)` : d.diff;
    const common = { mount: server, tool: ev.name, kind: ev.kind, status: d.status, message: d.reason, findings: auditFindings(d.findings) };
    if (d.status === 'changed' || (pin !== undefined && d.status !== 'new')) {
      emit({ type: 'tool.definition.changed', outcome: 'denied', reason: d.status.replace(/-/g, '_'), ...common, pinnedHash: pin?.hash, currentHash: ev.hash, changedFields: pin ? changedFields(pin.definition, ev.definition) : [], diff });
    }
    emit({ type: 'tool.definition.blocked', outcome: 'denied', reason: d.status.replace(/-/g, '_'), ...common, hash: ev.hash, diff });
  }

  function track(sessionId: string, evaluated: readonly Evaluated[], replaceKind?: DefinitionKind): void {
    let m = sessionSeen.get(sessionId);
    if (m === undefined) {
      if (sessionSeen.size >= MAX_SESSIONS_TRACKED) sessionSeen.delete(sessionSeen.keys().next().value as string);
      m = new Map();
      sessionSeen.set(sessionId, m);
    }
    if (replaceKind) for (const k of [...m.keys()]) if (k.startsWith(`${replaceKind}:`)) m.delete(k);
    for (const e of evaluated) {
      if (!e.name || !e.hash) continue;
      m.set(pinKey(e.kind, e.name), e.hash);
      if (defsByHash.size >= MAX_DEFINITIONS_TRACKED) defsByHash.clear();
      defsByHash.set(e.hash, { kind: e.kind, definition: e.definition });
    }
  }

  function heldError(server: string, e: Evaluated): BastionError {
    const d = e.decision as Exclude<IntegrityDecision, { status: 'approved' }>;
    const why: Record<string, string> = {
      new: 'it is not pinned and this server runs in strict mode',
      changed: 'its definition changed since it was approved (possible rug pull)',
      'blocked-by-scan': d.reason,
      unsigned: 'no valid signed manifest from a trusted publisher covers it',
    };
    return new BastionError(
      'ERR_BASTION_INTEGRITY_HELD_BACK',
      `${KIND_LABEL[e.kind]} "${e.name}" of server "${server}" is held back: ${why[d.status] ?? d.reason}. An operator must ${approveHint(server, e.kind, e.name)}.`,
      { data: { server, kind: e.kind, name: e.name, status: d.status, hash: e.hash }, reason: 'integrity_held_back' },
    );
  }

  function auditBase(ctx: MessageContext | RequestContext): Partial<AuditEvent> {
    const base: Partial<AuditEvent> = { mount: ctx.mount.name };
    if (ctx.session) base.sessionId = ctx.session.id;
    if ('requestId' in ctx) base.requestId = ctx.requestId;
    else if (ctx.request) base.requestId = ctx.request.requestId;
    const p = ctx.principal;
    if (p) base.principal = { subject: p.subject, issuer: p.issuer, clientId: p.clientId, authMethod: p.authMethod, tokenId: p.tokenId };
    return base;
  }

  async function onList(ctx: MessageContext, msg: JsonRpcResponse, kind: DefinitionKind, field: string): Promise<JsonRpcMessage> {
    const result = msg.result as Record<string, unknown>;
    const list = result[field];
    if (list === undefined) return msg;
    // Not a list a client could use safely: replace it with an empty one (fail closed).
    if (!Array.isArray(list)) return { ...msg, result: { ...result, [field]: [] } };
    const evaluated = await evaluate(ctx.mount, kind, list, auditBase(ctx));
    // Only a full first page replaces what the session saw; later pages add to it.
    const params = ctx.request?.message && isRequest(ctx.request.message) ? ctx.request.message.params : undefined;
    track(ctx.session.id, evaluated, params?.cursor === undefined ? kind : undefined);
    const kept = list.filter((_, i) => evaluated[i]!.decision.status === 'approved');
    if (kept.length === list.length) return msg;
    return { ...msg, result: { ...result, [field]: kept } };
  }

  async function onInitialize(ctx: MessageContext, msg: JsonRpcResponse): Promise<JsonRpcMessage> {
    const result = msg.result as Record<string, unknown>;
    if (typeof result.instructions !== 'string') return msg;
    const cfg = integrityConfig(ctx.mount);
    const r = scanInstructions(result.instructions, { policy: cfg.scan, ignoreRules: cfg.ignoreRules });
    if (r.verdict !== 'block') return msg;
    deps.audit.emit({ ...auditBase(ctx), type: 'tool.definition.blocked', outcome: 'denied', reason: 'blocked_by_scan', tool: '*', kind: 'instructions', findings: auditFindings(r.findings) });
    const { instructions: _dropped, ...rest } = result;
    return { ...msg, result: rest };
  }

  return {
    name: TOOL_INTEGRITY_STAGE,
    phase: 'application',

    async onUpstreamMessage(ctx, msg) {
      if (isResponse(msg)) {
        if (msg.result === undefined || ctx.method === undefined) return msg;
        if (ctx.method === 'initialize') return onInitialize(ctx, msg);
        const l = LIST_METHODS[ctx.method];
        return l ? onList(ctx, msg, l.kind, l.field) : msg;
      }
      if (isNotification(msg) && msg.method === 'notifications/tools/list_changed') {
        // Re-check now: a call to a changed tool is refused even before the client lists again.
        try {
          const tools = await ctx.session.upstreamTools();
          const evaluated = await evaluate(ctx.mount, 'tool', [...tools.values()], auditBase(ctx));
          track(ctx.session.id, evaluated, 'tool');
        } catch {
          // The catalog could not be fetched: forget what this session saw, so the next call
          // is checked against a fresh catalog.
          sessionSeen.get(ctx.session.id)?.clear();
        }
      }
      return msg;
    },

    async onRequest(ctx) {
      const m = ctx.message;
      if (m === undefined || !isRequest(m) || ctx.session === undefined) return;
      if (m.method !== 'tools/call' && m.method !== 'prompts/get') return;
      const name = m.params?.name;
      if (typeof name !== 'string') return;
      const kind: DefinitionKind = m.method === 'tools/call' ? 'tool' : 'prompt';
      // What this session was last shown (a list response, or the re-check after list_changed);
      // otherwise the gateway's catalog of the upstream's tools.
      const seenHash = sessionSeen.get(ctx.session.id)?.get(pinKey(kind, name));
      let def: Record<string, unknown> | undefined = seenHash === undefined ? undefined : defsByHash.get(seenHash)?.definition;
      if (def === undefined && kind === 'tool') def = (await ctx.session.upstreamTools()).get(name);
      if (def === undefined) {
        // Seen but no longer tracked (evicted): refuse rather than guess.
        if (seenHash !== undefined) throw heldError(ctx.mount.name, { kind, name, hash: seenHash, definition: {}, decision: { status: 'new', reason: 'the definition is no longer known to the gateway; list again', findings: [] } });
        return; // unknown tool or prompt: later stages and the upstream answer
      }
      // Re-evaluated with the current pins, so an approval or a revocation takes effect at once.
      const [e] = await evaluate(ctx.mount, kind, [def], auditBase(ctx));
      if (e && e.decision.status !== 'approved') throw heldError(ctx.mount.name, e);
    },
  };
}
