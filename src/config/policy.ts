/** Authorization-layer configuration fields (owned by the authorization layer). */
export const policyGlobalFields = {};
export const policyServerFields = {};
