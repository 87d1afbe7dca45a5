import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { type Api, buildApi } from '../../src/api/server.ts';
import { workloadInput } from '../../src/domain/workload.ts';
import type { ExecutorService } from '../../src/service/executor-service.ts';
import { WorkerAgent } from '../../src/worker/agent.ts';
import { ProcessRuntime } from '../../src/worker/process-runtime.ts';
import { StartError, type TaskLease } from '../../src/worker/runtime.ts';
import { openTestService, TEST_ADMIN_TOKEN, waitFor } from '../support/service.ts';

/**
 * A real agent with the real process runtime, against the service's HTTP API through a proxy that holds back
 * the reply to a final report: the service has already committed that attempt's end and queued the next
 * attempt, which a parked poll of the same worker can receive first. The next attempt must run and be
 * reported as its own, not be dropped with the previous attempt's bookkeeping.
 */
describe('a worker taking the next attempt of a workload before the previous one is acknowledged', () => {
  let service: ExecutorService;
  let api: Api;
  let proxy: Server;
  let proxyUrl: string;
  let agent: WorkerAgent | null = null;
  const dirs: string[] = [];
  const delayedReports: string[] = [];

  beforeAll(async () => {
    service = await openTestService({ heartbeatIntervalMs: 300, heartbeatTimeoutMs: 10_000, leaseAckTimeoutMs: 500 });
    api = await buildApi(service, pino({ level: 'silent' }));
    await api.listen({ host: '127.0.0.1', port: 0 });
    const upstream = api.server.address() as AddressInfo;
    proxy = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        const isFinal = req.url === '/v1/worker/report' && /"state":"failed"/.test(body.toString());
        const out = httpRequest(
          {
            host: '127.0.0.1',
            port: upstream.port,
            method: req.method,
            path: req.url,
            headers: req.headers,
            agent: false,
          },
          (answer) => {
            const parts: Buffer[] = [];
            answer.on('data', (c: Buffer) => parts.push(c));
            answer.on('end', () => {
              const send = () => {
                res.writeHead(answer.statusCode ?? 502, answer.headers);
                res.end(Buffer.concat(parts));
              };
              if (!isFinal) return send();
              delayedReports.push(body.toString());
              setTimeout(send, 1_500); // longer than the lease-ack timeout and several heartbeats
            });
          },
        );
        out.on('error', () => res.destroy());
        out.end(body);
      });
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    await agent?.shutdown();
    // Keep-alive sockets would hold both servers open for their idle timeout (65 s).
    proxy.closeAllConnections();
    await new Promise((resolve) => proxy.close(resolve));
    await api.close();
    await service.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('runs attempt 2 to success while attempt 1 (failed before start) waits for its acknowledgement', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'airfleet-agent-attempts-'));
    dirs.push(dir);
    mkdirSync(join(dir, 'work'));
    const runtime = new ProcessRuntime(join(dir, 'work'));
    // The first attempt fails where an image pull would (before start), which the service retries at once as
    // a new attempt without spending a retry; the second runs for real.
    const prepare = async (lease: TaskLease) => {
      if (lease.attempt === 1) throw new StartError('image_pull', 'the registry did not answer (injected)');
    };
    agent = new WorkerAgent({
      apiUrl: proxyUrl,
      enrollToken: TEST_ADMIN_TOKEN,
      name: 'attempts-worker',
      queues: ['attempts'],
      concurrency: 1,
      runtime: Object.assign(Object.create(runtime) as ProcessRuntime, { prepare }),
      logger: pino({ level: 'silent' }),
      version: 'test',
      stateDir: join(dir, 'state'),
      pollWaitMs: 5_000,
      logIntervalMs: 50,
    });
    await agent.start();
    const { workload } = await service.submit(
      workloadInput.parse({
        key: 'next-attempt',
        queue: 'attempts',
        command: ['sh', '-c', 'sleep 2; echo attempt-two-done'],
        maxInfraRetries: 2,
      }),
    );
    const done = await waitFor(async () => {
      const w = await service.getWorkload(workload.id);
      return w.state === 'succeeded' || w.state === 'failed' ? w : null;
    }, 30_000);
    expect(delayedReports.length).toBeGreaterThanOrEqual(1); // the race was set up: attempt 1's reply was held
    expect({ state: done.state, attempt: done.attempt, reason: done.reason, message: done.message }).toEqual({
      state: 'succeeded',
      attempt: 2,
      reason: null,
      message: null,
    });
    const log = await service.readLogs({
      idOrKey: workload.id,
      attempt: 2,
      stream: 'stdout',
      offset: 0,
      maxBytes: 4096,
      waitMs: 0,
    });
    expect(log.data.toString()).toBe('attempt-two-done\n');
  }, 45_000);
});
