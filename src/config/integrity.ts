/** Tool-integrity configuration fields (owned by the integrity layer). */
export const integrityGlobalFields = {};
export const integrityServerFields = {};
