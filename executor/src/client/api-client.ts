import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Dispatcher, fetch as undiciFetch } from 'undici';
import { ConfigError } from '../errors.ts';

/** An error answer from the API, with the server's own code and message. */
export class ApiError extends Error {
  override name = 'ApiError';
  readonly status: number;
  readonly code: string;
  readonly details: unknown;
  constructor(status: number, code: string, message: string, details?: unknown) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

/** The service could not be reached at all (refused, reset, DNS, timeout). */
export class UnreachableError extends Error {
  override name = 'UnreachableError';
}

export interface RetryPolicy {
  /** Give up after this long, ms. @default 0 (no retry) */
  retryForMs: number;
  /** @default 200 */
  initialDelayMs?: number;
  /** @default 5000 */
  maxDelayMs?: number;
  onRetry?: (error: Error, delayMs: number) => void;
}

export interface RequestOptions {
  body?: unknown;
  query?: Record<string, string | number | boolean | undefined>;
  /** @default 30000 */
  timeoutMs?: number;
  /** Retry on connection failures, 429 and 5xx; without it, one try. */
  retry?: RetryPolicy;
  signal?: AbortSignal;
}

/**
 * A client certificate for services that require one on the worker protocol (`AIRFLEET_TLS_CLIENT_CA_FILE`),
 * and optionally the CA that signed the service's certificate (otherwise the system's, or
 * NODE_EXTRA_CA_CERTS).
 */
export interface ClientTls {
  /** With keyFile: the client certificate. */
  certFile?: string | undefined;
  keyFile?: string | undefined;
  caFile?: string | undefined;
}

/**
 * undici's fetch with an Agent holding the client certificate, shared by every client of one service (its
 * TLS session and connection pool). undici is loaded on the first request: most users of this client (the
 * service itself, the CLI without TLS options) never need it, and it is ~100 modules of resident memory.
 */
class TlsTransport {
  private readonly connect: { cert?: string; key?: string; ca?: string };
  private loaded: Promise<{ fetch: typeof undiciFetch; dispatcher: Dispatcher }> | undefined;

  constructor(connect: { cert?: string; key?: string; ca?: string }) {
    this.connect = connect;
  }

  get(): Promise<{ fetch: typeof undiciFetch; dispatcher: Dispatcher }> {
    this.loaded ??= import('undici').then(({ Agent, fetch }) => ({
      fetch,
      dispatcher: new Agent({ connect: this.connect }),
    }));
    return this.loaded;
  }
}

/** Reads the files once, at construction, with an error naming the one that cannot be read. */
function clientTls(tls: ClientTls): TlsTransport {
  const read = (file: string, what: string, flag: string) => {
    try {
      return readFileSync(file, 'utf8');
    } catch (error) {
      throw new ConfigError(
        `the worker's ${what} ${file} cannot be read (${(error as NodeJS.ErrnoException).code}): check ${flag}`,
      );
    }
  };
  return new TlsTransport({
    ...(tls.certFile ? { cert: read(tls.certFile, 'certificate', '--tls-cert') } : {}),
    ...(tls.keyFile ? { key: read(tls.keyFile, 'key', '--tls-key') } : {}),
    ...(tls.caFile ? { ca: read(tls.caFile, 'CA', '--tls-ca') } : {}),
  });
}

/**
 * A small typed client for the executor API, shared by the CLI and the worker agent. Retries (when asked)
 * on connection failures, 429 and 5xx, with exponential backoff and jitter, honouring Retry-After.
 */
export class ApiClient {
  readonly baseUrl: string;
  private readonly token: string | undefined;
  private transport: TlsTransport | undefined;

  constructor(baseUrl: string, token?: string, tls?: ClientTls) {
    this.baseUrl = baseUrl.replace(/\/+$/, '');
    this.token = token;
    this.transport = tls && (tls.certFile || tls.caFile) ? clientTls(tls) : undefined;
  }

  /** The same service, TLS and connection pool, under another token. */
  withToken(token: string): ApiClient {
    const client = new ApiClient(this.baseUrl, token);
    client.transport = this.transport;
    return client;
  }

  async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const retry = options.retry;
    const deadline = Date.now() + (retry?.retryForMs ?? 0);
    let delay = retry?.initialDelayMs ?? 200;
    for (;;) {
      try {
        return await this.once<T>(method, path, options);
      } catch (error) {
        const retryable =
          error instanceof UnreachableError ||
          (error instanceof ApiError && (error.status === 429 || error.status >= 500));
        if (!retry || !retryable || Date.now() >= deadline || options.signal?.aborted) throw error;
        const hinted =
          error instanceof ApiError
            ? (error.details as { retryAfterMs?: number } | undefined)?.retryAfterMs
            : undefined;
        const wait = Math.min(
          hinted ?? delay * (0.5 + Math.random()),
          retry.maxDelayMs ?? 5_000,
          Math.max(0, deadline - Date.now()),
        );
        retry.onRetry?.(error as Error, wait);
        await sleep(wait);
        delay = Math.min(delay * 2, retry.maxDelayMs ?? 5_000);
      }
    }
  }

  private async once<T>(method: string, path: string, options: Omit<RequestOptions, 'retry'>): Promise<T> {
    const url = new URL(this.baseUrl + path);
    for (const [k, v] of Object.entries(options.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const headers: Record<string, string> = {};
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    try {
      // With a client certificate: undici's fetch and Agent (the package's, so the two always match).
      const tls = this.transport ? await this.transport.get() : undefined;
      const doFetch = (tls?.fetch ?? fetch) as (u: URL, init: RequestInit) => Promise<Response>;
      response = await doFetch(url, {
        method,
        headers,
        ...(tls ? ({ dispatcher: tls.dispatcher } as RequestInit) : {}),
        ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
        signal: options.signal
          ? AbortSignal.any([options.signal, AbortSignal.timeout(options.timeoutMs ?? 30_000)])
          : AbortSignal.timeout(options.timeoutMs ?? 30_000),
      });
    } catch (error) {
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      throw new UnreachableError(
        `cannot reach the airfleet service at ${this.baseUrl} (${cause?.code ?? cause?.message ?? (error as Error).message})`,
      );
    }
    const text = await response.text();
    if (!response.ok) {
      let body: { error?: string; message?: string; details?: unknown } = {};
      try {
        body = JSON.parse(text);
      } catch {
        body = { message: text };
      }
      const retryAfter = Number(response.headers.get('retry-after'));
      const details =
        Number.isFinite(retryAfter) && retryAfter > 0
          ? {
              ...(typeof body.details === 'object' && body.details ? body.details : {}),
              retryAfterMs: retryAfter * 1000,
            }
          : body.details;
      throw new ApiError(
        response.status,
        body.error ?? 'http_error',
        body.message ?? `HTTP ${response.status}`,
        details,
      );
    }
    if (response.status === 204 || text === '') return undefined as T;
    return JSON.parse(text) as T;
  }
}
