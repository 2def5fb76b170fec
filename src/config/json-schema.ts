/** The published JSON Schema of the configuration (schema/config.json is generated from it). */
import { z } from 'zod';
import { configSchema } from './schema.js';

export function configJsonSchema(): Record<string, unknown> {
  const s = z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  return { ...s, $id: 'https://github.com/mcp-bastion/mcp-bastion/schema/config.json', title: 'mcp-bastion configuration' };
}
