import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, request, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * An HTTP proxy in front of moto that throttles the way AWS does, for the rate-limit tests: moto itself
 * never throttles. Requests pass through unchanged unless a rule says otherwise; a throttled request is
 * answered like AWS Batch answers one over its quota: HTTP 429 with `x-amzn-ErrorType:
 * TooManyRequestsException` and a JSON body naming the error, which the AWS SDK reads as a throttling error.
 *
 * Rules, per operation (`SubmitJob`, `DescribeJobs`...: the last path segment of Batch's REST paths, or the
 * `X-Amz-Target` of JSON-protocol services such as CloudWatch Logs) or `*` for all:
 * - {@link limit}: a token bucket like the service's own (a rate and a burst); requests beyond it get 429;
 * - {@link throttleNext}: the next N matching requests get 429, whatever the rate;
 * - {@link hold}: requests go through to moto (the call is carried out) but their answers are kept back,
 *   so a test can kill the caller between a call taking effect and the caller learning of it.
 */
export class ThrottleProxy {
  readonly endpoint: string;
  private readonly server: Server;
  private readonly target: URL;
  private readonly buckets = new Map<string, { rate: number; burst: number; tokens: number; at: number }>();
  private readonly forced = new Map<string, number>();
  private readonly counts = new Map<string, { passed: number; throttled: number }>();
  private readonly holding = new Set<string>();
  /** Called with every request that passes (its operation and body), e.g. to count ids per DescribeJobs. */
  onPass: ((operation: string, body: Buffer) => void) | null = null;
  private readonly held: Array<() => void> = [];

  private constructor(server: Server, target: URL) {
    this.server = server;
    this.target = target;
    this.endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  /** Starts a proxy to `target` (e.g. moto's endpoint) on a free loopback port. */
  static async start(target: string): Promise<ThrottleProxy> {
    let proxy: ThrottleProxy | null = null;
    const server = createServer((req, res) => proxy!.handle(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    proxy = new ThrottleProxy(server, new URL(target));
    return proxy;
  }

  /** Allows `operation` at most `rate` requests a second, with bursts of `burst` (AWS's quota model). */
  limit(operation: string, rate: number, burst = rate): void {
    this.buckets.set(operation, { rate, burst, tokens: burst, at: Date.now() });
  }

  /** Answers the next `count` requests for `operation` with 429. */
  throttleNext(operation: string, count: number): void {
    this.forced.set(operation, (this.forced.get(operation) ?? 0) + count);
  }

  /** Keeps back the answers to `operation` (the requests still reach moto) until {@link release}. */
  hold(operation: string): void {
    this.holding.add(operation);
  }

  /** How many answers are held back now. */
  get heldCount(): number {
    return this.held.length;
  }

  /** Stops holding and delivers what was held (to callers still connected). */
  release(): void {
    this.holding.clear();
    for (const deliver of this.held.splice(0)) deliver();
  }

  /** Drops every rule (counts stay) and delivers held answers. */
  clear(): void {
    this.buckets.clear();
    this.forced.clear();
    this.release();
  }

  /** Requests seen for `operation` (or all, for `*`): passed through and throttled. */
  count(operation = '*'): { passed: number; throttled: number } {
    if (operation !== '*') return { ...(this.counts.get(operation) ?? { passed: 0, throttled: 0 }) };
    let passed = 0;
    let throttled = 0;
    for (const c of this.counts.values()) {
      passed += c.passed;
      throttled += c.throttled;
    }
    return { passed, throttled };
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const operation = operationOf(req);
    const counts = this.counts.get(operation) ?? { passed: 0, throttled: 0 };
    this.counts.set(operation, counts);
    if (this.shouldThrottle(operation)) {
      counts.throttled++;
      req.resume();
      const body = JSON.stringify({ __type: 'TooManyRequestsException', message: 'Too Many Requests.' });
      res.writeHead(429, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
        'x-amzn-errortype': 'TooManyRequestsException:',
        'x-amzn-requestid': randomUUID(),
      });
      res.end(body);
      return;
    }
    counts.passed++;
    if (this.onPass) {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => this.onPass?.(operation, Buffer.concat(chunks)));
    }
    const upstream = request(
      {
        host: this.target.hostname,
        port: this.target.port,
        method: req.method,
        path: req.url,
        headers: req.headers,
      },
      (answer) => {
        const deliver = () => {
          if (res.destroyed) return answer.resume();
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        };
        if (this.holding.has(operation)) {
          answer.pause();
          this.held.push(deliver);
        } else deliver();
      },
    );
    upstream.on('error', (error) => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`throttle proxy: upstream failed: ${error.message}`);
    });
    req.pipe(upstream);
  }

  private shouldThrottle(operation: string): boolean {
    for (const key of [operation, '*']) {
      const left = this.forced.get(key) ?? 0;
      if (left > 0) {
        this.forced.set(key, left - 1);
        return true;
      }
    }
    for (const key of [operation, '*']) {
      const bucket = this.buckets.get(key);
      if (!bucket) continue;
      const now = Date.now();
      bucket.tokens = Math.min(bucket.burst, bucket.tokens + ((now - bucket.at) / 1000) * bucket.rate);
      bucket.at = now;
      if (bucket.tokens < 1) return true;
      bucket.tokens -= 1;
    }
    return false;
  }
}

const BATCH_OPERATIONS: Record<string, string> = {
  submitjob: 'SubmitJob',
  describejobs: 'DescribeJobs',
  listjobs: 'ListJobs',
  terminatejob: 'TerminateJob',
  canceljob: 'CancelJob',
  describejobqueues: 'DescribeJobQueues',
  describejobdefinitions: 'DescribeJobDefinitions',
  describecomputeenvironments: 'DescribeComputeEnvironments',
};

/** The AWS operation a request calls: Batch's REST path (`/v1/submitjob`), or a JSON protocol's target. */
export function operationOf(req: IncomingMessage): string {
  const target = req.headers['x-amz-target'];
  if (typeof target === 'string') return target.split('.').pop() ?? target;
  const last = (req.url ?? '').split('?')[0]!.split('/').pop()!.toLowerCase();
  return BATCH_OPERATIONS[last] ?? last;
}
