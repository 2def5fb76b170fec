/** Audit and metrics configuration fields (owned by the audit layer). */
export const auditGlobalFields = {};
