/** Output sanitizing and upstream hygiene configuration fields. */
export const sanitizeGlobalFields = {};
export const sanitizeServerFields = {};
export const stdioHygieneFields = {};
export const httpCredentialFields = {};
