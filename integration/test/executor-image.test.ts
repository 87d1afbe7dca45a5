import { GenericContainer, type StartedTestContainer, Wait } from 'testcontainers';
import { ApiClient } from '../../executor/src/client/api-client.ts';
import type { Workload } from '../../executor/src/domain/workload.ts';
import { ADMIN_TOKEN, waitFor } from '../src/airfleet-process.ts';
import { configureTestcontainers, projectImage, testLabels } from '../src/docker-env.ts';
import { freePort } from '../src/ports.ts';
import { type StartedPostgres, startPostgres } from '../src/postgres.ts';

/**
 * The runtime image built by images/executor: the service and a pull worker, each in its own container
 * from the same image, on PostgreSQL in a third. Proves the image carries everything the executor needs.
 */
describe('executor image (local/airfleet-executor)', () => {
  let postgres: StartedPostgres;
  let service: StartedTestContainer;
  let worker: StartedTestContainer;
  let client: ApiClient;

  beforeAll(async () => {
    configureTestcontainers();
    postgres = await startPostgres();
    const port = await freePort();
    service = await new GenericContainer(projectImage('executor'))
      .withNetworkMode('host')
      .withLabels(testLabels())
      .withEnvironment({
        AIRFLEET_DATABASE_URL: postgres.url,
        AIRFLEET_PORT: String(port),
        AIRFLEET_ADMIN_TOKEN: ADMIN_TOKEN,
      })
      .withWaitStrategy(Wait.forLogMessage(/Server listening/))
      .withStartupTimeout(60_000)
      .start();
    const url = `http://127.0.0.1:${port}`;
    client = new ApiClient(url, ADMIN_TOKEN);
    worker = await new GenericContainer(projectImage('executor'))
      .withNetworkMode('host')
      .withLabels(testLabels())
      .withEnvironment({ AIRFLEET_API_URL: url, AIRFLEET_TOKEN: ADMIN_TOKEN })
      .withCommand(['worker', '--name', 'in-container', '--queues', 'image', '--concurrency', '2'])
      .withWaitStrategy(Wait.forLogMessage(/worker registered/))
      .withStartupTimeout(60_000)
      .start();
  });
  afterAll(async () => {
    await worker?.stop({ remove: true, timeout: 2_000 });
    await service?.stop({ remove: true, timeout: 2_000 });
    await postgres?.stop();
  });

  it('runs a workload submitted to the containerized service on the containerized worker', async () => {
    const w = await client.request<Workload>('POST', '/v1/workloads', {
      body: {
        key: 'from-image',
        queue: 'image',
        command: ['sh', '-c', 'echo "node $(node --version) in $(hostname)"'],
      },
    });
    const done = await waitFor('the workload to succeed', async () => {
      const now = await client.request<Workload>('GET', `/v1/workloads/${w.id}`);
      return now.state === 'succeeded' ? now : null;
    });
    expect(done).toMatchObject({ workerName: 'in-container', exitCode: 0 });
    const log = await client.request<{ data: string }>('GET', `/v1/workloads/${w.id}/logs`);
    expect(Buffer.from(log.data, 'base64').toString()).toMatch(/^node v24\./);
  });

  it('serves the dashboard it carries at /ui, every asset from the image itself', async () => {
    const url = client.baseUrl;
    const index = await fetch(`${url}/ui/`);
    expect(index.status).toBe(200);
    expect(index.headers.get('content-security-policy')).toContain("script-src 'self'");
    const html = await index.text();
    const assets = [...html.matchAll(/(?:src|href)="(\/ui\/[^"]+)"/g)].map((m) => m[1]!);
    expect(assets.filter((a) => a.startsWith('/ui/assets/')).length).toBeGreaterThanOrEqual(2); // script, styles
    for (const asset of assets) expect((await fetch(`${url}${asset}`)).status).toBe(200);
    expect(html).not.toMatch(/https?:\/\//); // nothing from elsewhere
  });

  it('carries only the executor dependencies, not cdktf or the test tools', async () => {
    const { output } = await service.exec(['ls', '/opt/airfleet/node_modules']);
    expect(output).toMatch(/fastify/);
    expect(output).not.toMatch(/cdktf|testcontainers|jest|vite|playwright/);
  });
});
