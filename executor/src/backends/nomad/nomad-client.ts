import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { NomadConfig } from './nomad-config.ts';

/** Nomad answered with an HTTP error: `status` and its plain-text message. */
export class NomadApiError extends Error {
  override name = 'NomadApiError';
  readonly status: number;
  readonly path: string;
  constructor(status: number, path: string, text: string) {
    super(`Nomad answered ${status} to ${path}: ${text.trim().slice(0, 500) || '(no message)'}`);
    this.status = status;
    this.path = path;
  }
}

/** The request did not get an answer (refused, reset, TLS handshake, timeout). */
export class NomadConnectionError extends Error {
  override name = 'NomadConnectionError';
  readonly code: string | undefined;
  constructor(path: string, cause: NodeJS.ErrnoException) {
    super(`no answer from Nomad to ${path}: ${cause.code ? `${cause.code} ` : ''}${cause.message}`);
    this.code = cause.code;
  }
}

export function isTransient(error: unknown): boolean {
  if (error instanceof NomadConnectionError) return true;
  return error instanceof NomadApiError && (error.status >= 500 || error.status === 429);
}

export interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined | readonly string[]>;
  body?: unknown;
  signal?: AbortSignal;
  timeoutMs?: number;
  /** Adds `namespace` and `region` (all but the agent and ACL endpoints). @default true */
  scoped?: boolean;
}

export interface NomadAnswer<T> {
  status: number;
  data: T;
  /** `X-Nomad-Index`: the Raft index the answer reflects (blocking queries wait for a higher one). */
  index: number | null;
}

/**
 * Nomad's HTTP API over one keep-alive agent holding at most `maxConnections` sockets (Nomad refuses more
 * than 100 connections per client address; requests beyond the cap wait for a free socket), plus one more
 * socket for the event stream. Speaks http(s) and the Task API's unix socket, with mutual TLS and the ACL
 * token (`X-Nomad-Token`). Counts its requests per route for metrics and the benchmark.
 */
export class NomadClient {
  private readonly config: NomadConfig;
  private readonly agent: http.Agent;
  private readonly streamAgent: http.Agent;
  private readonly base: { protocol: 'http:' | 'https:'; host?: string; port?: number; socketPath?: string };
  /** Requests made, by `METHOD /v1/route` (ids cut off). */
  readonly calls = new Map<string, number>();

  constructor(config: NomadConfig) {
    this.config = config;
    const tls = {
      ...(config.caCert ? { ca: config.caCert } : {}),
      ...(config.clientCert ? { cert: config.clientCert, key: config.clientKey } : {}),
      ...(config.tlsServerName ? { servername: config.tlsServerName } : {}),
      rejectUnauthorized: !config.skipVerify,
    };
    if (config.address.startsWith('unix://')) {
      this.base = { protocol: 'http:', socketPath: config.address.slice('unix://'.length) };
    } else {
      const url = new URL(config.address);
      this.base = {
        protocol: url.protocol as 'http:' | 'https:',
        host: url.hostname,
        port: Number(url.port || (url.protocol === 'https:' ? 443 : 80)),
      };
    }
    const make = (maxSockets: number) =>
      this.base.protocol === 'https:'
        ? new https.Agent({ keepAlive: true, maxSockets, ...tls })
        : new http.Agent({ keepAlive: true, maxSockets });
    this.agent = make(config.maxConnections);
    this.streamAgent = make(1);
  }

  get requestCount(): number {
    let n = 0;
    for (const v of this.calls.values()) n += v;
    return n;
  }

  async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<NomadAnswer<T>> {
    const res = await this.send(method, path, options, this.agent);
    const text = await readAll(res);
    if ((res.statusCode ?? 0) >= 400) throw new NomadApiError(res.statusCode ?? 0, path, text);
    const index = res.headers['x-nomad-index'];
    return {
      status: res.statusCode ?? 0,
      data: (text ? JSON.parse(text) : null) as T,
      index: index ? Number(index) : null,
    };
  }

  /** A long-lived GET (the event stream): the response, unread, on its own socket. */
  async stream(path: string, options: RequestOptions): Promise<IncomingMessage> {
    const res = await this.send('GET', path, { ...options, timeoutMs: 0 }, this.streamAgent);
    if ((res.statusCode ?? 0) >= 400) throw new NomadApiError(res.statusCode ?? 0, path, await readAll(res));
    return res;
  }

  /** A plain-text GET (fs endpoints): the bytes. */
  async bytes(path: string, options: RequestOptions = {}): Promise<Buffer> {
    const res = await this.send('GET', path, options, this.agent);
    const chunks: Buffer[] = [];
    for await (const chunk of res) chunks.push(chunk as Buffer);
    const data = Buffer.concat(chunks);
    if ((res.statusCode ?? 0) >= 400) throw new NomadApiError(res.statusCode ?? 0, path, data.toString());
    return data;
  }

  close(): void {
    this.agent.destroy();
    this.streamAgent.destroy();
  }

  private send(method: string, path: string, options: RequestOptions, agent: http.Agent): Promise<IncomingMessage> {
    const query = new URLSearchParams();
    if (options.scoped !== false) {
      query.set('namespace', this.config.namespace);
      if (this.config.region) query.set('region', this.config.region);
    }
    for (const [k, v] of Object.entries(options.query ?? {})) {
      if (Array.isArray(v)) for (const item of v) query.append(k, item);
      else if (v !== undefined) query.set(k, String(v));
    }
    const route = `${method} ${path.replace(/^(\/v1\/[a-z]+(?:\/[a-z]+)?)\/.*$/, '$1')}`;
    this.calls.set(route, (this.calls.get(route) ?? 0) + 1);
    const body = options.body === undefined ? undefined : Buffer.from(JSON.stringify(options.body));
    const qs = query.toString();
    return new Promise((resolve, reject) => {
      const req = (this.base.protocol === 'https:' ? https : http).request({
        ...this.base,
        agent,
        method,
        path: `${path}${qs ? `?${qs}` : ''}`,
        headers: {
          ...(this.config.token ? { 'x-nomad-token': this.config.token } : {}),
          ...(body ? { 'content-type': 'application/json', 'content-length': body.length } : {}),
        },
        ...(options.signal ? { signal: options.signal } : {}),
      });
      const timeout = options.timeoutMs ?? 60_000;
      if (timeout > 0) {
        req.setTimeout(timeout, () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
      }
      req.on('response', resolve);
      req.on('error', (error: NodeJS.ErrnoException) =>
        reject(error.name === 'AbortError' ? error : new NomadConnectionError(path, error)),
      );
      req.end(body);
    });
  }
}

async function readAll(res: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
