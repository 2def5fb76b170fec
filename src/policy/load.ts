/**
 * Build the compiled policy at start-up: loads Cedar (lazily, only when `policy.cedar` is set)
 * and compiles the YAML rules. Throws ERR_BASTION_CONFIG_INVALID on a bad Cedar policy.
 */
import type { Config } from '../config/schema.js';
import { compilePolicy, type CompiledPolicy } from './compile.js';

export async function loadPolicy(
  config: Pick<Config, 'servers'> & Partial<Pick<Config, 'rateLimit' | 'policy'>>,
  baseDir: string = process.cwd(),
): Promise<CompiledPolicy> {
  const file = config.policy?.cedar;
  if (file === undefined) return compilePolicy(config);
  const { loadCedar } = await import('./cedar.js');
  return compilePolicy(config, { cedar: await loadCedar(file, baseDir) });
}
