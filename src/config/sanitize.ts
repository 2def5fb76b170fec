/**
 * Output sanitizing and upstream hygiene configuration fields.
 *
 * `sanitize` (global) sets the defaults for every upstream → client message the model may read;
 * `servers.NAME.sanitize` overrides any of them for one server, and
 * `servers.NAME.sanitize.tools.TOOL` for one tool of that server. The full semantics are in
 * docs/sanitizer.md.
 */
import { z } from 'zod';

const severity = z.enum(['low', 'medium', 'high']);

/** The policy fields, each optional so a server or tool override names only what it changes. */
const sanitizePolicyFields = {
  injection: z
    .enum(['annotate', 'redact', 'block', 'off'])
    .describe(
      'Prompt-injection findings: `annotate` wraps the span as quoted data with a ⟦bastion:untrusted⟧ marker, `redact` replaces it, `block` withholds the whole result with a JSON-RPC error (ERR_BASTION_SANITIZER_BLOCKED), `off` does not scan.',
    ),
  injectionMinSeverity: severity.describe('Injection findings below this severity are reported in audit but not acted on.'),
  secrets: z
    .enum(['redact', 'block', 'off'])
    .describe('Secrets in output (keys, tokens, passwords): `redact` replaces each with [REDACTED:type], `block` withholds the result, `off` does not scan.'),
  ansi: z
    .enum(['strip', 'escape', 'off'])
    .describe('ANSI/VT escape sequences (CSI, OSC incl. OSC 8 hyperlinks, DCS, C1) and control characters other than tab/newline/CR: remove, show as visible \\xNN escapes, or leave.'),
  invisible: z
    .enum(['strip', 'escape', 'off'])
    .describe('Unicode tag characters, bidi embedding/override/isolate controls and variation-selector runs. Single emoji variation selectors and flag tag sequences are always kept.'),
  zeroWidth: z
    .enum(['strip', 'escape', 'off'])
    .describe('Zero-width characters (ZWSP, word joiner, BOM inside text, ZWJ/ZWNJ outside emoji sequences and scripts that need them).'),
  maxOutputBytes: z
    .number()
    .int()
    .min(1024)
    .describe('Largest result passed to the client, in bytes of its JSON (UTF-8).'),
  oversize: z
    .enum(['truncate', 'block'])
    .describe('Over maxOutputBytes: `truncate` cuts text content with a marker (and withholds the result when that is not enough), `block` withholds it (ERR_BASTION_SANITIZER_OUTPUT_TOO_LARGE).'),
  outputSchema: z
    .enum(['enforce', 'warn', 'off'])
    .describe("`structuredContent` of a tools/call result against the tool's outputSchema: `enforce` withholds a non-conforming result (ERR_BASTION_SANITIZER_OUTPUT_SCHEMA), `warn` audits only, `off` skips."),
};

const globalSanitize = z
  .object({
    injection: sanitizePolicyFields.injection.default('annotate'),
    injectionMinSeverity: sanitizePolicyFields.injectionMinSeverity.default('medium'),
    secrets: sanitizePolicyFields.secrets.default('redact'),
    ansi: sanitizePolicyFields.ansi.default('strip'),
    invisible: sanitizePolicyFields.invisible.default('strip'),
    zeroWidth: sanitizePolicyFields.zeroWidth.default('strip'),
    maxOutputBytes: sanitizePolicyFields.maxOutputBytes.default(1024 * 1024),
    oversize: sanitizePolicyFields.oversize.default('truncate'),
    outputSchema: sanitizePolicyFields.outputSchema.default('enforce'),
  })
  .strict();

const policyOverride = z.object({
  injection: sanitizePolicyFields.injection.optional(),
  injectionMinSeverity: sanitizePolicyFields.injectionMinSeverity.optional(),
  secrets: sanitizePolicyFields.secrets.optional(),
  ansi: sanitizePolicyFields.ansi.optional(),
  invisible: sanitizePolicyFields.invisible.optional(),
  zeroWidth: sanitizePolicyFields.zeroWidth.optional(),
  maxOutputBytes: sanitizePolicyFields.maxOutputBytes.optional(),
  oversize: sanitizePolicyFields.oversize.optional(),
  outputSchema: sanitizePolicyFields.outputSchema.optional(),
});

export const sanitizeGlobalFields = {
  sanitize: globalSanitize
    .prefault({})
    .describe('Output sanitizer defaults for every upstream → client message the model may read (tool results, resources, prompts, errors, logs, sampling requests).'),
};

export const sanitizeServerFields = {
  sanitize: policyOverride
    .extend({
      tools: z
        .record(z.string(), policyOverride.strict().describe('Overrides for one tool of this server.'))
        .default({})
        .describe('Per-tool overrides, by the upstream tool name.'),
    })
    .strict()
    .optional()
    .describe('Output sanitizer overrides for this server (any global `sanitize` field), plus per-tool overrides.'),
};

export type SanitizeGlobalConfig = z.output<typeof globalSanitize>;
export type SanitizeOverride = z.output<typeof policyOverride>;
export type SanitizeServerConfig = z.output<(typeof sanitizeServerFields)['sanitize']>;
// Upstream hygiene fields (least-privilege stdio, upstream credentials) live in upstream-hygiene.ts.
export { stdioHygieneFields, httpCredentialFields } from './upstream-hygiene.js';
