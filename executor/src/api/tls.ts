import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import type { ServerOptions } from 'node:https';
import type { TLSSocket } from 'node:tls';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { ConfigError } from '../errors.ts';

/**
 * HTTPS for `airfleet serve`: the certificate and key from files (AIRFLEET_TLS_CERT_FILE, AIRFLEET_TLS_KEY_FILE),
 * or as PEM values (AIRFLEET_TLS_CERT, AIRFLEET_TLS_KEY: how ECS hands over a secret). Files are watched
 * and the new pair is taken for new connections when they change (a renewed certificate needs no restart).
 * With a client CA (AIRFLEET_TLS_CLIENT_CA_FILE) the server asks every client for a certificate and the
 * worker protocol (`/v1/worker/…`) refuses callers without one the CA signed; the API and the dashboard
 * still answer to tokens alone (Airflow, operators, the load balancer's health checks).
 */
export interface TlsSettings {
  certFile?: string | undefined;
  keyFile?: string | undefined;
  cert?: string | undefined;
  key?: string | undefined;
  clientCaFile?: string | undefined;
}

const WATCH_INTERVAL_MS = 5_000;

function read(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(`${what} ${file} cannot be read (${(error as NodeJS.ErrnoException).code})`);
  }
}

/** Whether TLS is configured at all; a half-configured pair is an error naming what is missing. */
export function tlsEnabled(settings: TlsSettings): boolean {
  const cert = settings.certFile ?? settings.cert;
  const key = settings.keyFile ?? settings.key;
  if (!cert && !key) {
    if (settings.clientCaFile)
      throw new ConfigError('AIRFLEET_TLS_CLIENT_CA_FILE needs AIRFLEET_TLS_CERT_FILE and AIRFLEET_TLS_KEY_FILE');
    return false;
  }
  if (!cert) throw new ConfigError('TLS: a key but no certificate: set AIRFLEET_TLS_CERT_FILE (or AIRFLEET_TLS_CERT)');
  if (!key) throw new ConfigError('TLS: a certificate but no key: set AIRFLEET_TLS_KEY_FILE (or AIRFLEET_TLS_KEY)');
  return true;
}

function pair(settings: TlsSettings): { cert: string; key: string } {
  return {
    cert: settings.certFile ? read(settings.certFile, 'AIRFLEET_TLS_CERT_FILE') : settings.cert!,
    key: settings.keyFile ? read(settings.keyFile, 'AIRFLEET_TLS_KEY_FILE') : settings.key!,
  };
}

/** Fastify's `https` options. */
export function httpsOptions(settings: TlsSettings): ServerOptions {
  const options: ServerOptions = { ...pair(settings), minVersion: 'TLSv1.2' };
  if (settings.clientCaFile) {
    options.ca = read(settings.clientCaFile, 'AIRFLEET_TLS_CLIENT_CA_FILE');
    // Asked of everyone, checked per route (below): health checks and API clients carry no certificate.
    options.requestCert = true;
    options.rejectUnauthorized = false;
  }
  return options;
}

/** Requires a verified client certificate on the worker protocol when a client CA is configured. */
export async function requireWorkerCertificate(request: FastifyRequest, reply: FastifyReply): Promise<unknown> {
  if (!request.url.startsWith('/v1/worker/')) return;
  if ((request.raw.socket as TLSSocket).authorized) return;
  return reply.code(403).send({
    error: 'client_certificate_required',
    message: 'the worker protocol needs a client certificate signed by the configured client CA',
  });
}

/** Watches the certificate files; a change replaces the server's secure context for new connections. */
export function reloadOnChange(
  server: { setSecureContext?: (options: ServerOptions) => void },
  settings: TlsSettings,
  logger: Logger,
): () => void {
  const files = [settings.certFile, settings.keyFile].filter((f): f is string => Boolean(f));
  if (files.length === 0) return () => {};
  const reload = () => {
    try {
      const options = httpsOptions(settings);
      server.setSecureContext?.(options);
      logger.info({ files }, 'TLS certificate reloaded');
    } catch (error) {
      // A renewal caught halfway (the key written, not yet the certificate) fails here; the next change retries.
      logger.warn({ err: (error as Error).message }, 'TLS certificate reload failed; keeping the previous one');
    }
  };
  for (const file of files)
    watchFile(file, { interval: WATCH_INTERVAL_MS }, (now, before) => {
      if (now.mtimeMs !== before.mtimeMs) reload();
    });
  return () => {
    for (const file of files) unwatchFile(file);
  };
}
