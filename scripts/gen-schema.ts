// Writes schema/config.json from the zod schema (npm run schema). A test fails when it is stale.
import { writeFileSync } from 'node:fs';
import { configJsonSchema } from '../src/config/json-schema.js';

writeFileSync(new URL('../schema/config.json', import.meta.url), JSON.stringify(configJsonSchema(), null, 2) + '\n');
console.log('schema/config.json written');
