import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface NomadTestCerts {
  /** Files, for NOMAD_CACERT / NOMAD_CLIENT_CERT / NOMAD_CLIENT_KEY or a pool driver's *File fields. */
  ca: string;
  cert: string;
  key: string;
  /** What the fake's HTTPS server takes (`startNomadFake({ tls })`): PEM contents. */
  server: { key: string; cert: string; ca: string };
}

/** The server name Nomad gives its agents' certificates: `<role>.<region>.nomad`. */
export const NOMAD_TLS_SERVER_NAME = 'server.global.nomad';

/**
 * A CA, the fake agent's certificate under Nomad's naming and one client certificate (scripts/dev-certs.mjs),
 * in `<dir>/tls`: the mutual TLS THE NOMAD FAKE requires.
 */
export function nomadTestCerts(dir: string): NomadTestCerts {
  const tls = join(dir, 'tls');
  execFileSync(process.execPath, [
    join(__dirname, '../../../scripts/dev-certs.mjs'),
    tls,
    '--name',
    NOMAD_TLS_SERVER_NAME,
    '--client',
    'client',
  ]);
  const ca = join(tls, 'ca.pem');
  return {
    ca,
    cert: join(tls, 'client.pem'),
    key: join(tls, 'client-key.pem'),
    server: {
      key: readFileSync(join(tls, 'server-key.pem'), 'utf8'),
      cert: readFileSync(join(tls, 'server.pem'), 'utf8'),
      ca: readFileSync(ca, 'utf8'),
    },
  };
}
