/** Rate specifications: `N/second|minute|hour` with an optional burst, as token buckets. */
import { RATE_PATTERN } from '../config/policy.js';
import type { RateSpec } from './types.js';

const UNIT_SECONDS: Record<string, number> = { s: 1, sec: 1, second: 1, m: 60, min: 60, minute: 60, h: 3600, hour: 3600 };

export function parseRate(value: string | { rate: string; burst?: number | undefined }): RateSpec {
  const text = typeof value === 'string' ? value : value.rate;
  const m = RATE_PATTERN.exec(text);
  if (m === null) throw new Error(`invalid rate ${JSON.stringify(text)}: expected N/second, N/minute or N/hour`);
  const n = Number(m[1]);
  const seconds = UNIT_SECONDS[m[2]!]!;
  const burst = typeof value === 'string' || value.burst === undefined ? n : value.burst;
  return { ratePerSecond: n / seconds, burst: Math.max(burst, n === 0 ? 0 : 1), text: text.trim() };
}
