/**
 * `--profile`: summarize the V8 CPU profiles the processes under test wrote on exit
 * (node --cpu-prof): self time per function, summed over the processes of one kind, top N.
 * For finding where the gateway spends its time per call; the profiles themselves stay in
 * the run's work directory for Chrome DevTools.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface ProfileSummary {
  process: string;
  files: number;
  totalMs: number;
  top: Array<{ fn: string; selfMs: number; share: number }>;
}

export function summarizeProfiles(dir: string, root: string, topN = 15): ProfileSummary[] {
  if (!existsSync(dir)) return [];
  const out: ProfileSummary[] = [];
  for (const name of readdirSync(dir)) {
    const sub = join(dir, name);
    const files = readdirSync(sub).filter((f) => f.endsWith('.cpuprofile'));
    const self = new Map<string, number>();
    let total = 0;
    for (const f of files) {
      const p = JSON.parse(readFileSync(join(sub, f), 'utf8')) as CpuProfile;
      const byId = new Map(p.nodes.map((n) => [n.id, n]));
      const samples = p.samples ?? [];
      const deltas = p.timeDeltas ?? [];
      for (let i = 0; i < samples.length; i++) {
        const node = byId.get(samples[i] as number);
        if (!node) continue;
        const fn = node.callFrame.functionName || '(anonymous)';
        if (fn === '(idle)' || fn === '(program)') continue;
        const us = deltas[i] ?? 0;
        const url = node.callFrame.url.startsWith('file://') ? relative(root, node.callFrame.url.slice(7)) : node.callFrame.url;
        const key = `${fn} ${url ? `${url}:${node.callFrame.lineNumber + 1}` : ''}`.trim();
        self.set(key, (self.get(key) ?? 0) + us);
        total += us;
      }
    }
    const top = [...self.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, topN)
      .map(([fn, us]) => ({ fn, selfMs: us / 1000, share: total ? us / total : 0 }));
    out.push({ process: name, files: files.length, totalMs: total / 1000, top });
  }
  return out;
}

export function formatProfiles(summaries: ProfileSummary[]): string {
  const lines: string[] = [];
  for (const s of summaries) {
    lines.push(`CPU profile: ${s.process} (${s.files} process${s.files === 1 ? '' : 'es'}, ${s.totalMs.toFixed(0)} ms sampled, idle excluded), top self time:`);
    for (const t of s.top) lines.push(`  ${(t.share * 100).toFixed(1).padStart(5)}%  ${t.selfMs.toFixed(0).padStart(6)} ms  ${t.fn}`);
  }
  return lines.join('\n');
}
