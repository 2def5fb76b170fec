/** State store configuration fields. */
export const stateGlobalFields = {};
