/** Identity-layer configuration fields (owned by the identity layer). */
export const authGlobalFields = {};
export const authServerFields = {};
