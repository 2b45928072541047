import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runOk } from './proc.js';

/** A certificate and its key, as files and PEM text. */
export interface TlsIdentity {
  certPath: string;
  keyPath: string;
  cert: string;
  key: string;
}

/** A leaf certificate for the given DNS names (the first is also the CN when it fits its 64 characters). */
export interface LeafCert extends TlsIdentity {
  names: string[];
}

/** Test-only certificate authority (EC P-256, valid two days) made with the openssl CLI in `dir`. */
export interface TestCa extends TlsIdentity {
  dir: string;
  /** Issues a server certificate with subjectAltName DNS entries for `names`. */
  issue(names: readonly string[]): Promise<LeafCert>;
}

const EC_P256 = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

/** Creates a CA under `dir` (created if missing). Nothing leaves `dir`; remove it to forget the CA. */
export async function createTestCa(dir: string, commonName = 'acr-mirror e2e test CA'): Promise<TestCa> {
  await mkdir(dir, { recursive: true });
  const caKey = join(dir, 'ca.key');
  const caCert = join(dir, 'ca.pem');
  await runOk('openssl', [
    'req', '-x509', ...EC_P256, '-keyout', caKey, '-out', caCert, '-days', '2', '-subj', `/CN=${commonName}`,
    '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  const [cert, key] = await Promise.all([readFile(caCert, 'utf8'), readFile(caKey, 'utf8')]);
  let issued = 0;
  return {
    dir,
    certPath: caCert,
    keyPath: caKey,
    cert,
    key,
    async issue(names) {
      const first = names[0];
      if (!first) throw new Error('a leaf certificate needs at least one name');
      const base = join(dir, `leaf-${++issued}-${first.replace(/[^A-Za-z0-9.-]/g, '_')}`);
      const ext = `${base}.ext`;
      const csr = `${base}.csr`;
      await writeFile(
        ext,
        [
          'basicConstraints=critical,CA:FALSE',
          'keyUsage=critical,digitalSignature',
          'extendedKeyUsage=serverAuth',
          `subjectAltName=${names.map((n) => `DNS:${n}`).join(',')}`,
          'subjectKeyIdentifier=hash',
          'authorityKeyIdentifier=keyid',
          '',
        ].join('\n'),
      );
      await runOk('openssl', ['req', '-new', ...EC_P256, '-keyout', `${base}.key`, '-out', csr, '-subj', `/CN=${first.length <= 64 ? first : 'acr-mirror e2e server'}`]);
      await runOk('openssl', [
        'x509', '-req', '-in', csr, '-CA', caCert, '-CAkey', caKey, '-set_serial', `0x${randomBytes(8).toString('hex')}`,
        '-days', '2', '-sha256', '-extfile', ext, '-out', `${base}.pem`,
      ]);
      await rm(csr, { force: true });
      const [leafCert, leafKey] = await Promise.all([readFile(`${base}.pem`, 'utf8'), readFile(`${base}.key`, 'utf8')]);
      return { names: [...names], certPath: `${base}.pem`, keyPath: `${base}.key`, cert: leafCert, key: leafKey };
    },
  };
}
