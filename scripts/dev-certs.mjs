#!/usr/bin/env node
// A development CA and certificates signed by it, made with the openssl CLI (Node cannot issue X.509
// certificates by itself), for TLS on a laptop and in the tests: the executor's HTTPS listener, a TLS
// PostgreSQL, client certificates for workers.
//
//   node scripts/dev-certs.mjs <dir> [--name host-or-ip ...] [--client name ...]
//
// writes into <dir>: ca.pem, ca-key.pem, server.pem, server-key.pem (subject alternative names: localhost,
// 127.0.0.1 and every --name), and per --client: <name>.pem, <name>-key.pem (extendedKeyUsage clientAuth).
// Keys are 0600. Never for production: the CA key is beside the certificates, and nothing revokes them.
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

function openssl(args, cwd) {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

function sign(dir, name, subject, extensions) {
  const ext = join(dir, `${name}.ext`);
  writeFileSync(ext, extensions);
  openssl(
    [
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      `${name}-key.pem`,
      '-out',
      `${name}.csr`,
      '-subj',
      subject,
    ],
    dir,
  );
  openssl(
    [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca-key.pem',
      '-CAcreateserial',
      '-days',
      '30',
      '-sha256',
      '-extfile',
      ext,
      '-out',
      `${name}.pem`,
    ],
    dir,
  );
  chmodSync(join(dir, `${name}-key.pem`), 0o600);
  for (const scratch of [ext, join(dir, `${name}.csr`), join(dir, 'ca.srl')]) rmSync(scratch, { force: true });
}

/** Makes the CA (unless `dir` has one), the server certificate and the client certificates. */
export function makeDevCerts(dir, { names = [], clients = [] } = {}) {
  mkdirSync(dir, { recursive: true });
  if (!existsSync(join(dir, 'ca.pem'))) {
    openssl(
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        'ca-key.pem',
        '-out',
        'ca.pem',
        '-days',
        '30',
        '-subj',
        '/CN=airfleet dev CA',
        '-addext',
        'basicConstraints=critical,CA:TRUE',
        '-addext',
        'keyUsage=critical,keyCertSign,cRLSign',
      ],
      dir,
    );
    chmodSync(join(dir, 'ca-key.pem'), 0o600);
  }
  const sans = ['DNS:localhost', 'IP:127.0.0.1', ...names.map((n) => (/^[\d.]+$|:/.test(n) ? `IP:${n}` : `DNS:${n}`))];
  sign(dir, 'server', '/CN=localhost', `subjectAltName=${[...new Set(sans)].join(',')}\nextendedKeyUsage=serverAuth\n`);
  for (const client of clients) sign(dir, client, `/CN=${client}`, 'extendedKeyUsage=clientAuth\n');
  return dir;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [dir, ...rest] = process.argv.slice(2);
  if (!dir) {
    process.stderr.write('usage: node scripts/dev-certs.mjs <dir> [--name host-or-ip ...] [--client name ...]\n');
    process.exit(2);
  }
  const names = [];
  const clients = [];
  for (let i = 0; i < rest.length; i += 2) {
    if (rest[i] === '--name') names.push(rest[i + 1]);
    else if (rest[i] === '--client') clients.push(rest[i + 1]);
    else {
      process.stderr.write(`dev-certs: unknown option ${rest[i]}\n`);
      process.exit(2);
    }
  }
  makeDevCerts(dir, { names, clients });
  process.stdout.write(
    `dev-certs: CA, server${clients.length ? ` and ${clients.join(', ')}` : ''} certificates in ${dir}\n`,
  );
}
