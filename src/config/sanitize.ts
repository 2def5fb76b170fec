/** Output sanitizing and upstream hygiene configuration fields. */
export const sanitizeGlobalFields = {};
export const sanitizeServerFields = {};
// Upstream hygiene fields (least-privilege stdio, upstream credentials) live in upstream-hygiene.ts.
export { stdioHygieneFields, httpCredentialFields } from './upstream-hygiene.js';
