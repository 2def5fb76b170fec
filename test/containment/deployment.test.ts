/**
 * Deployment files: the Kubernetes manifests parse, say what the docs promise (3 replicas,
 * non-root, read-only root filesystem, all capabilities dropped, probes on /readyz and /healthz,
 * secrets from a Secret, Redis reachable only from the gateway), and the gateway config in the
 * ConfigMap is valid for the config schema. The Dockerfile is checked for its promises too
 * (Docker itself cannot run here).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments, parse } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import { ROOT } from '../helpers/gateway.js';

const K8S = join(ROOT, 'deploy/k8s');

function docs(): Array<Record<string, any>> {
  const out: Array<Record<string, any>> = [];
  for (const f of readdirSync(K8S).filter((x) => x.endsWith('.yaml'))) {
    for (const d of parseAllDocuments(readFileSync(join(K8S, f), 'utf8'))) {
      assert.deepEqual(d.errors, [], `${f} parses`);
      const v = d.toJSON() as Record<string, any> | null;
      if (v) out.push(v);
    }
  }
  return out;
}

test('Kubernetes manifests parse and keep their security promises', () => {
  const all = docs();
  const byKind = (kind: string, name: string) => all.find((d) => d.kind === kind && d.metadata?.name === name);
  const dep = byKind('Deployment', 'mcp-bastion')!;
  assert.equal(dep.spec.replicas, 3);
  const pod = dep.spec.template.spec;
  assert.equal(pod.securityContext.runAsNonRoot, true);
  assert.equal(pod.automountServiceAccountToken, false);
  const c = pod.containers[0];
  assert.equal(c.securityContext.readOnlyRootFilesystem, true);
  assert.equal(c.securityContext.allowPrivilegeEscalation, false);
  assert.deepEqual(c.securityContext.capabilities.drop, ['ALL']);
  assert.equal(c.readinessProbe.httpGet.path, '/readyz');
  assert.equal(c.livenessProbe.httpGet.path, '/healthz');
  assert.ok(pod.volumes.some((v: any) => v.secret?.secretName === 'mcp-bastion-secrets'));
  assert.ok(byKind('StatefulSet', 'mcp-bastion-redis'), 'Redis');
  const np = byKind('NetworkPolicy', 'mcp-bastion')!;
  assert.deepEqual(np.spec.policyTypes, ['Ingress', 'Egress']);
  const rnp = byKind('NetworkPolicy', 'mcp-bastion-redis')!;
  assert.deepEqual(rnp.spec.ingress[0].from[0].podSelector.matchLabels, { 'app.kubernetes.io/name': 'mcp-bastion' });
  assert.ok(byKind('Secret', 'mcp-bastion-secrets'));
});

test('the ConfigMap holds a valid gateway config: Redis state, admin on loopback with a token', () => {
  const cm = docs().find((d) => d.kind === 'ConfigMap')!;
  const input = parse(cm.data['bastion.yaml']);
  const { config } = parseConfig(input, 'deploy/k8s/configmap.yaml', ROOT);
  assert.equal(config.state.type, 'redis');
  assert.equal(config.admin?.listen.host, '127.0.0.1');
  assert.ok(config.admin?.token);
  assert.equal(config.listen.host, '0.0.0.0');
  assert.ok(config.publicUrl);
});

test('Dockerfile: multi-stage, npm ci + build, production dependencies only, non-root, healthcheck, entrypoint', () => {
  const d = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
  assert.equal((d.match(/^FROM /gm) ?? []).length, 2);
  assert.match(d, /RUN npm ci --no-audit/);
  assert.match(d, /RUN npm run build/);
  assert.match(d, /npm ci --omit=dev/);
  assert.match(d, /^USER 1000:1000$/m);
  assert.match(d, /^HEALTHCHECK .*\n.*\/healthz/m);
  assert.match(d, /^ENTRYPOINT \["bastion", "serve", "--config", "\/etc\/bastion\/bastion.yaml"\]$/m);
  const ignore = readFileSync(join(ROOT, '.dockerignore'), 'utf8');
  for (const p of ['node_modules', '.git', '.env', '**/*.key']) assert.ok(ignore.split('\n').includes(p), `.dockerignore has ${p}`);
});
