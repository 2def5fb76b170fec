/** Tool-integrity configuration fields (owned by the integrity layer). See docs/integrity.md. */
import { z } from 'zod';

export const integrityServerSchema = z
  .object({
    mode: z
      .enum(['strict', 'tofu', 'off'])
      .default('tofu')
      .describe(
        'Pinning of tool, prompt and resource-template definitions. `strict`: only definitions pinned in bastion.lock.json (or approved at runtime) pass. `tofu`: the first definition seen is pinned if the scan passes; any later change is held back until approved. `off`: no pinning (the scan still applies).',
      ),
    scan: z
      .enum(['block', 'warn', 'off'])
      .default('block')
      .describe('Poisoning scan of every model-visible string. `block`: a definition with a high or critical finding is held back. `warn`: findings are only recorded. `off`: no scan.'),
    ignoreRules: z.array(z.string()).default([]).describe('Scan rule ids not applied to this server (e.g. `name-collision`); see docs/integrity.md for the list.'),
    trustedKeys: z
      .array(z.string())
      .default([])
      .describe('Ed25519 public keys of publishers trusted to sign this server\'s manifests: inline PEM, or a path to a PEM file (relative to the config file).'),
    manifest: z.string().optional().describe('Path to the signed manifest (JWS) of this server, relative to the config file. Definitions it covers pass without a pin.'),
    requireSignedManifest: z
      .boolean()
      .default(false)
      .describe('Hold back every definition not covered by a valid manifest signed with one of `trustedKeys` (a pin alone is not enough).'),
  })
  .strict();

export const integrityServerFields = {
  integrity: integrityServerSchema.prefault({}).describe('Tool integrity: pins, signed manifests and the poisoning scan for this server.'),
};

export const integrityGlobalFields = {
  integrity: z
    .object({
      lockfile: z
        .string()
        .default('bastion.lock.json')
        .describe('Path of the lockfile holding approved definitions, relative to the config file. Reviewable in pull requests; `bastion pin` manages it.'),
      persistTofu: z
        .boolean()
        .default(true)
        .describe('Write definitions pinned on first sight (tofu) to the lockfile, so they survive a restart even with the in-memory state store.'),
    })
    .strict()
    .prefault({})
    .describe('Tool integrity settings shared by all servers.'),
};

export type IntegrityServerConfig = z.output<typeof integrityServerSchema>;
