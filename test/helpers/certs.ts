import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const CERT_DAYS = 2; // days: long enough for any test run, short enough that a leaked key is worthless
const KEY_ALGORITHM = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1']; // fast, and AWS IoT accepts it

export interface CertPair {
  readonly certPath: string;
  readonly keyPath: string;
  /** PEM text of the same files. */
  readonly cert: string;
  readonly key: string;
}

export interface TestCa {
  readonly dir: string;
  readonly caPath: string;
  readonly ca: string;
  /** The broker's certificate: CN localhost, SAN DNS:localhost, IP:127.0.0.1. */
  readonly server: CertPair;
  /** A client certificate whose CN is `cn` (a thing name, or the fleet identity); one per CN, made on first use. */
  client(cn: string): Promise<CertPair>;
}

/**
 * A throwaway CA for tests, made with the openssl CLI (the same tool an operator follows in docs/mosquitto-acl.md):
 * a root, a server certificate for localhost and per-device client certificates whose CN is the thing name.
 */
export async function createTestCa(dir: string): Promise<TestCa> {
  const caPath = join(dir, 'ca.crt');
  const caKey = join(dir, 'ca.key');
  await openssl([
    'req',
    '-x509',
    ...KEY_ALGORITHM,
    '-nodes',
    '-keyout',
    caKey,
    '-out',
    caPath,
    '-days',
    String(CERT_DAYS),
    '-subj',
    '/CN=Outpost Test CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  const issue = async (name: string, cn: string, extensions: string): Promise<CertPair> => {
    const file = (extension: string) => join(dir, `${name}.${extension}`);
    const [keyPath, csrPath, certPath, extPath] = [file('key'), file('csr'), file('crt'), file('ext')];
    await writeFile(extPath, `basicConstraints=CA:FALSE\n${extensions}\n`);
    await openssl(['req', ...KEY_ALGORITHM, '-nodes', '-keyout', keyPath, '-out', csrPath, '-subj', `/CN=${cn}`]);
    await openssl([
      'x509',
      '-req',
      '-in',
      csrPath,
      '-CA',
      caPath,
      '-CAkey',
      caKey,
      // A random serial per certificate: concurrent issues cannot race on a serial file.
      '-set_serial',
      `0x${randomBytes(16).toString('hex')}`,
      '-days',
      String(CERT_DAYS),
      '-extfile',
      extPath,
      '-out',
      certPath,
    ]);
    const [cert, key] = await Promise.all([readFile(certPath, 'utf8'), readFile(keyPath, 'utf8')]);
    return { certPath, keyPath, cert, key };
  };
  const server = await issue(
    'server',
    'localhost',
    'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature',
  );
  const clients = new Map<string, Promise<CertPair>>();
  return {
    dir,
    caPath,
    ca: await readFile(caPath, 'utf8'),
    server,
    client(cn: string): Promise<CertPair> {
      if (!/^[a-zA-Z0-9:_-]{1,128}$/.test(cn)) throw new Error(`"${cn}" is not a thing name`);
      let pair = clients.get(cn);
      if (pair === undefined) {
        pair = issue(`client-${cn}`, cn, 'extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature');
        clients.set(cn, pair);
      }
      return pair;
    },
  };
}

async function openssl(args: readonly string[]): Promise<void> {
  try {
    await run('openssl', args, { timeout: 10_000 });
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? '';
    throw new Error(`openssl ${args.slice(0, 2).join(' ')} failed: ${stderr.trim()}`, { cause: error });
  }
}
