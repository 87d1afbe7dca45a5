import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Workload } from '../../executor/src/domain/workload.ts';
import { type AirfleetProcess, ServiceProcess, waitFor } from '../src/airfleet-process.ts';

// The service over HTTPS requiring client certificates on the worker protocol (AIRFLEET_TLS_CLIENT_CA_FILE),
// and real worker processes: one with the certificate `scripts/dev-certs.mjs --client` makes registers and
// runs a task; one without is refused with a message that says what is missing; a certificate without its
// key is a configuration error before anything is sent.

const DEV_CERTS = join(__dirname, '../../scripts/dev-certs.mjs');

describe('workers over mutual TLS', () => {
  const certs = mkdtempSync(join(tmpdir(), 'airfleet-client-cert-'));
  let service: ServiceProcess;
  const workers: AirfleetProcess[] = [];

  beforeAll(async () => {
    execFileSync('node', [DEV_CERTS, certs, '--client', 'worker']);
    service = await ServiceProcess.start({
      backends: 'pool',
      tls: {
        caFile: join(certs, 'ca.pem'),
        certFile: join(certs, 'worker.pem'),
        keyFile: join(certs, 'worker-key.pem'),
      },
      env: {
        AIRFLEET_TLS_CERT_FILE: join(certs, 'server.pem'),
        AIRFLEET_TLS_KEY_FILE: join(certs, 'server-key.pem'),
        AIRFLEET_TLS_CLIENT_CA_FILE: join(certs, 'ca.pem'),
      },
    });
  }, 120_000);

  afterAll(async () => {
    for (const w of workers) await w.kill('SIGKILL');
    await service?.stop();
    rmSync(certs, { recursive: true, force: true });
  });

  const start = (name: string, args: string[]) => {
    const w = service.worker(name, ['--queues', 'mtls', ...args], { PATH: process.env.PATH ?? '' });
    workers.push(w);
    return w;
  };

  it('a worker with a client certificate signed by the CA registers and runs a task', async () => {
    const worker = start('with-cert', [
      '--tls-cert',
      join(certs, 'worker.pem'),
      '--tls-key',
      join(certs, 'worker-key.pem'),
      '--tls-ca',
      join(certs, 'ca.pem'),
    ]);
    const submitted = await service.client.request<Workload>('POST', '/v1/workloads', {
      body: { key: 'over-mtls', queue: 'mtls', command: ['sh', '-c', 'echo over mutual tls'] },
    });
    const done = await waitFor(
      'the task to end',
      async () => {
        const w = await service.client.request<Workload>('GET', `/v1/workloads/${submitted.id}`);
        return w.state === 'succeeded' || w.state === 'failed' ? w : null;
      },
      60_000,
      () => worker.tail(),
    );
    expect({ state: done.state, worker: done.workerName }).toEqual({ state: 'succeeded', worker: 'with-cert' });
  }, 90_000);

  it('a worker without a certificate is refused, and says the service wants one', async () => {
    const worker = start('no-cert', ['--tls-ca', join(certs, 'ca.pem')]);
    await waitFor(
      'the refusal in the worker log',
      async () => /needs a client certificate signed by the configured client CA/.test(worker.tail(50)),
      30_000,
      () => worker.tail(),
    );
    const { workers: registered } = await service.client.request<{ workers: Array<{ name: string }> }>(
      'GET',
      '/v1/workers',
    );
    expect(registered.map((w) => w.name)).not.toContain('no-cert');
  }, 60_000);

  it('a certificate without its key is a configuration error naming the missing option', async () => {
    const worker = start('half-configured', ['--tls-cert', join(certs, 'worker.pem')]);
    const code = await worker.exited;
    expect(code).not.toBe(0);
    expect(worker.tail()).toContain('--tls-cert needs --tls-key');
  }, 30_000);
});
