#!/usr/bin/env node
// Development TLS material for Nomad's mutual TLS: a CA, a server certificate for `server.global.nomad`
// (Nomad's naming: <role>.<region>.nomad), 127.0.0.1 and localhost, and a client certificate
// (`client.global.nomad`, client auth), all ECDSA P-256, valid for 30 days. For local runs and tests only;
// deployed environments get theirs from SSM/Secrets Manager (docs/nomad-backend.md).
//
//   node scripts/dev-certs.mjs <dir>      writes ca.pem, server.pem, server-key.pem, client.pem, client-key.pem
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto);
const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
const DAY = 86_400_000;

async function pemKey(key) {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  return `-----BEGIN PRIVATE KEY-----\n${der
    .toString('base64')
    .replace(/(.{64})/g, '$1\n')
    .trim()}\n-----END PRIVATE KEY-----\n`;
}

function serial() {
  return Buffer.from(webcrypto.getRandomValues(new Uint8Array(16)))
    .toString('hex')
    .replace(/^[89a-f]/, '1');
}

async function leaf(ca, name, usage, altNames) {
  const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${name}`,
    issuer: ca.cert.subject,
    notBefore: new Date(Date.now() - DAY),
    notAfter: new Date(Date.now() + 30 * DAY),
    signingAlgorithm: alg,
    publicKey: keys.publicKey,
    signingKey: ca.keys.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension(usage),
      new x509.SubjectAlternativeNameExtension(altNames),
      await x509.AuthorityKeyIdentifierExtension.create(ca.cert),
    ],
  });
  return { cert: cert.toString('pem'), key: await pemKey(keys.privateKey) };
}

/** The CA, server and client PEMs, in memory. */
export async function makeDevCerts() {
  const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: 'CN=airfleet development CA',
    notBefore: new Date(Date.now() - DAY),
    notAfter: new Date(Date.now() + 30 * DAY),
    signingAlgorithm: alg,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const ca = { cert, keys };
  const server = await leaf(
    ca,
    'server.global.nomad',
    [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth],
    [
      { type: 'dns', value: 'server.global.nomad' },
      { type: 'dns', value: 'localhost' },
      { type: 'ip', value: '127.0.0.1' },
    ],
  );
  const client = await leaf(
    ca,
    'client.global.nomad',
    [x509.ExtendedKeyUsage.clientAuth],
    [{ type: 'dns', value: 'client.global.nomad' }],
  );
  return { ca: cert.toString('pem'), server, client };
}

/** Writes the PEMs into `dir` and returns their paths. */
export async function writeDevCerts(dir) {
  mkdirSync(dir, { recursive: true });
  const made = await makeDevCerts();
  const files = {
    ca: join(dir, 'ca.pem'),
    serverCert: join(dir, 'server.pem'),
    serverKey: join(dir, 'server-key.pem'),
    clientCert: join(dir, 'client.pem'),
    clientKey: join(dir, 'client-key.pem'),
  };
  writeFileSync(files.ca, made.ca);
  writeFileSync(files.serverCert, made.server.cert);
  writeFileSync(files.serverKey, made.server.key, { mode: 0o600 });
  writeFileSync(files.clientCert, made.client.cert);
  writeFileSync(files.clientKey, made.client.key, { mode: 0o600 });
  return files;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const dir = process.argv[2];
  if (!dir) {
    console.error('usage: node scripts/dev-certs.mjs <dir>');
    process.exit(2);
  }
  const files = await writeDevCerts(dir);
  for (const [what, path] of Object.entries(files)) console.log(`${what}: ${path}`);
}
