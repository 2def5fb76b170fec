/**
 * Test PKI made with the openssl CLI into a temp folder: a CA, a server certificate for
 * 127.0.0.1/localhost, two client certificates (one with a SPIFFE URI SAN), and a CRL that can
 * be regenerated after revoking a client.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestPki {
  dir: string;
  caCert: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
  client1Cert: string;
  client1Key: string;
  client2Cert: string;
  client2Key: string;
  crl: string;
  /** Revoke a certificate file and rewrite the CRL. */
  revoke(certFile: string): void;
  /** Issue another server certificate (for reload tests); returns [cert, key] PEM paths. */
  issueServer(name: string, cn: string, san?: string): [string, string];
  cleanup(): void;
}

function ossl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

export function makePki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'bastion-pki-'));
  const p = (f: string): string => join(dir, f);
  ossl(dir, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=Bastion Test CA/O=Test']);
  writeFileSync(p('index.txt'), '');
  writeFileSync(p('crlnumber'), '1000\n');
  writeFileSync(
    p('ca.cnf'),
    `[ ca ]\ndefault_ca = CA_default\n[ CA_default ]\ndir = ${dir}\ndatabase = $dir/index.txt\ncrlnumber = $dir/crlnumber\ndefault_md = sha256\ndefault_crl_days = 2\ncertificate = $dir/ca.pem\nprivate_key = $dir/ca.key\n`,
  );
  let serial = 100;
  const issue = (name: string, subj: string, san: string): void => {
    writeFileSync(p(`${name}.ext`), `subjectAltName=${san}\n`);
    ossl(dir, ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subj]);
    ossl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', String(serial++), '-days', '2', '-out', `${name}.pem`, '-extfile', `${name}.ext`]);
  };
  issue('server', '/CN=localhost', 'DNS:localhost,IP:127.0.0.1');
  issue('client1', '/CN=agent-one/O=Example', 'URI:spiffe://example.org/ns/prod/sa/agent-one,DNS:agent-one.example.org');
  issue('client2', '/CN=agent-two/O=Example', 'URI:spiffe://example.org/ns/prod/sa/agent-two');
  const genCrl = (): void => ossl(dir, ['ca', '-config', 'ca.cnf', '-gencrl', '-out', 'crl.pem']);
  genCrl();
  return {
    dir,
    caCert: p('ca.pem'),
    caKey: p('ca.key'),
    serverCert: p('server.pem'),
    serverKey: p('server.key'),
    client1Cert: p('client1.pem'),
    client1Key: p('client1.key'),
    client2Cert: p('client2.pem'),
    client2Key: p('client2.key'),
    crl: p('crl.pem'),
    revoke(certFile) {
      ossl(dir, ['ca', '-config', 'ca.cnf', '-revoke', certFile]);
      genCrl();
    },
    issueServer(name, cn, san = 'DNS:localhost,IP:127.0.0.1') {
      issue(name, `/CN=${cn}`, san);
      return [p(`${name}.pem`), p(`${name}.key`)];
    },
    cleanup() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function pem(path: string): Buffer {
  return readFileSync(path);
}
