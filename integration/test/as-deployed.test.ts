import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CreateSecretCommand, GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { GetParameterCommand, PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import pg from 'pg';
import { GenericContainer, type StartedTestContainer, Wait } from 'testcontainers';
import type { Workload } from '../../executor/src/domain/workload.ts';
import { waitFor } from '../src/airfleet-process.ts';
import { type EcsContainer, prepareWorkerHost, synthesizeDeployment } from '../src/deployed-commands.ts';
import { configureTestcontainers, projectImage, testLabels } from '../src/docker-env.ts';
import { curlJson } from '../src/https-api.ts';
import { motoAvailability, type StartedMoto, startMoto } from '../src/moto.ts';
import { createMotoBatch, createMotoBatchTargets, MOTO_CREDENTIALS, MOTO_REGION } from '../src/moto-batch.ts';
import { NOMAD_TLS_SERVER_NAME, nomadTestCerts } from '../src/nomad-fake/certs.ts';
import { type NomadFake, startNomadFake } from '../src/nomad-fake/index.ts';
import { freePort } from '../src/ports.ts';
import { type StartedPostgres, startPostgres } from '../src/postgres.ts';

// The executor image run the way the dev environment's ECS task definition runs it: its command and its
// environment as `cdktf synth` wrote them, its `secrets` resolved from Secrets Manager as the ECS agent
// resolves them (Secrets Manager and SSM Parameter Store: moto here), a read-only root file system. Replaced
// are only what Terraform fills in at apply time (PGHOST and the secret ARNs: moto's), the ports (host
// networking here, a task's own network namespace on ECS), the CA that verifies PostgreSQL (a dev CA instead
// of the RDS bundle), the task role's credentials (moto's) and NOMAD_ADDR's host and port (the Nomad servers'
// DNS name does not resolve here: THE NOMAD FAKE, integration/src/nomad-fake/, stands in for them, over the
// same mutual TLS with the server name the task definition sets). PostgreSQL is a real server with TLS; the
// executor's database role is made by `airfleet database create-role` from the master secret, as a
// deployment does. A worker is started by the worker pools' user-data `docker run` line. See
// docs/deployment-secrets.md.

const moto = motoAvailability();
if (!moto.ok) console.warn(`as-deployed: skipped: ${moto.reason}`);
const describeMoto = moto.ok ? describe : describe.skip;
/** testcontainers has no option for it: ECS's readonlyRootFilesystem is Docker's ReadonlyRootfs. */
class TaskContainer extends GenericContainer {
  withReadOnlyRoot(on: boolean): this {
    this.hostConfig.ReadonlyRootfs = on;
    return this;
  }
}

const DEV_CERTS = fileURLToPath(new URL('../../scripts/dev-certs.mjs', import.meta.url));

describeMoto('the dev deployment as deployed (ECS task definition, worker user data)', () => {
  let server: StartedMoto;
  let secrets: SecretsManagerClient;
  let parameters: SSMClient;
  let nomad: NomadFake;
  let postgres: StartedPostgres;
  let executor: StartedTestContainer;
  let certs: string;
  let url: string;
  let container: EcsContainer;
  let workerName: string | undefined;
  const arns: Record<string, string> = {};
  const stderr: string[] = [];

  const secretValue = async (id: string) =>
    (await secrets.send(new GetSecretValueCommand({ SecretId: id }))).SecretString!;
  const create = async (name: string, value?: string) => {
    const out = await secrets.send(new CreateSecretCommand({ Name: name, ...(value ? { SecretString: value } : {}) }));
    arns[name] = out.ARN!;
    return out.ARN!;
  };
  /** valueFrom as ECS reads it: `<secret arn>[:<json key>:<stage>:<version>]` or an SSM parameter's ARN. */
  const resolveValueFrom = async (valueFrom: string) => {
    const parameter = /^arn:[^:]+:ssm:[^:]+:(?:\d+|\$\{[^}]+\}):parameter(\/.+)$/.exec(valueFrom);
    if (parameter) {
      const out = await parameters.send(new GetParameterCommand({ Name: parameter[1]!, WithDecryption: true }));
      return out.Parameter!.Value!;
    }
    const m = /^arn:[^:]+:secretsmanager:[^:]+:(?:\d+|\$\{[^}]+\}):secret:([^:]+)(?::([^:]*):([^:]*):([^:]*))?$/.exec(
      valueFrom,
    );
    if (!m) throw new Error(`valueFrom ${valueFrom} is not a Secrets Manager ARN`);
    const value = await secretValue(m[1]!);
    return m[2] ? String((JSON.parse(value) as Record<string, unknown>)[m[2]]) : value;
  };
  const awsEnv = (endpoint: string) => ({
    AWS_ENDPOINT_URL: endpoint,
    AWS_ACCESS_KEY_ID: MOTO_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: MOTO_CREDENTIALS.secretAccessKey,
  });
  const api = async <T>(token: string, method: string, path: string, body?: unknown): Promise<T> =>
    curlJson<T>(url, join(certs, 'ca.pem'), token, method, path, body);

  /** The workload once it ended, with its log as text; `tail` explains a timeout. */
  const ended = async (admin: string, id: string, tail: () => string) => {
    const done = await waitFor(
      `workload ${id} to end`,
      async () => {
        const w = await api<Workload>(admin, 'GET', `/v1/workloads/${id}`);
        return w.state === 'succeeded' || w.state === 'failed' ? w : null;
      },
      90_000,
      tail,
    );
    const log = await api<{ data: string }>(admin, 'GET', `/v1/workloads/${id}/logs`);
    return { ...done, log: Buffer.from(log.data, 'base64').toString() };
  };

  beforeAll(async () => {
    configureTestcontainers();
    container = synthesizeDeployment(['dev']).ecsContainer('dev');
    certs = mkdtempSync(join(tmpdir(), 'airfleet-as-deployed-certs-'));
    execFileSync('node', [DEV_CERTS, certs]);
    execFileSync('chmod', ['-R', 'a+rX', certs]); // the image's user reads the CA; keys stay in the secret
    [server, postgres] = await Promise.all([startMoto(), startPostgres({ tlsDir: certs })]);
    secrets = new SecretsManagerClient({
      region: MOTO_REGION,
      endpoint: server.endpoint,
      credentials: MOTO_CREDENTIALS,
    });
    parameters = new SSMClient({ region: MOTO_REGION, endpoint: server.endpoint, credentials: MOTO_CREDENTIALS });

    // What the data stack creates (token and executor-role secrets, empty) and RDS (the master secret).
    const env = container.environment;
    await create('rds!db-master', JSON.stringify({ username: 'postgres', password: postgres.password }));
    await create('airfleet/dev/database-executor');
    for (const kind of ['admin', 'submit', 'enroll']) await create(`airfleet/dev/${kind}-token`);
    await create('airfleet/dev/secret-key');
    // The Nomad servers: mutual TLS with Nomad's certificate naming, ACLs on, the task namespace, the client
    // pools' host volumes (the nomad backend mounts `config` and `dags` into every task).
    const nomadCerts = nomadTestCerts(certs);
    const nomadToken = 'executor-acl-token-from-the-executor-role';
    nomad = await startNomadFake({
      tls: nomadCerts.server,
      token: nomadToken,
      namespaces: [env['NOMAD_NAMESPACE']!],
      // A client of the task pools, in the environment's datacenter (AIRFLEET_NOMAD_* from the stack).
      datacenter: env['AIRFLEET_NOMAD_DATACENTERS']!,
      nodePool: env['AIRFLEET_NOMAD_NODE_POOL']!,
      hostVolumes: { config: { path: certs }, dags: { path: certs } },
    });
    expect(env['NOMAD_TLS_SERVER_NAME']).toBe(NOMAD_TLS_SERVER_NAME);
    // What the operator creates before the first deploy (stacks/README.md, Deploying).
    await create('airfleet/dev/nomad-executor-token', nomadToken);
    const nomadTls = {
      'ca.pem': nomadCerts.ca,
      'executor/client.pem': nomadCerts.cert,
      'executor/client-key.pem': nomadCerts.key,
    };
    for (const [name, file] of Object.entries(nomadTls)) {
      await parameters.send(
        new PutParameterCommand({
          Name: `/airfleet/dev/nomad-tls/${name}`,
          Type: 'SecureString',
          Value: readFileSync(file, 'utf8'),
        }),
      );
    }
    await create(
      'airfleet/dev/executor-tls',
      JSON.stringify({
        cert: readFileSync(join(certs, 'server.pem'), 'utf8'),
        key: readFileSync(join(certs, 'server-key.pem'), 'utf8'),
      }),
    );
    // What the batch stack creates: the job queues and job definition the task definition names.
    const batch = await createMotoBatch(server, { prefix: 'airfleet-dev-' });
    await createMotoBatchTargets(server, batch, env['AIRFLEET_BATCH_QUEUES'] ?? '{}');

    const db = {
      PGHOST: '127.0.0.1',
      PGPORT: String(postgres.port),
      PGDATABASE: env['PGDATABASE']!,
      PGSSLMODE: env['PGSSLMODE']!,
      PGSSLROOTCERT: '/certs/ca.pem',
    };
    const run = (args: string[], extraEnv: Record<string, string>) =>
      new TaskContainer(projectImage('executor'))
        .withNetworkMode('host')
        .withLabels(testLabels())
        .withBindMounts([{ source: certs, target: '/certs', mode: 'ro' }])
        .withEnvironment(extraEnv)
        .withCommand(args);

    // The deployment's one-off step: the executor's own role, from the master secret.
    const role = await run(
      [
        'database',
        'create-role',
        '--admin-secret-arn',
        arns['rds!db-master']!,
        '--secret-arn',
        arns['airfleet/dev/database-executor']!,
      ],
      { ...db, ...awsEnv(server.endpoint), AWS_REGION: MOTO_REGION },
    )
      .withWaitStrategy(Wait.forOneShotStartup())
      .withStartupTimeout(60_000)
      .start();
    await role.stop({ remove: true });

    // The task: the synthesized environment with apply-time values filled in, and its secrets resolved.
    const port = await freePort();
    const fill: Record<string, string> = {
      PGHOST: db.PGHOST,
      AIRFLEET_DATABASE_SECRET_ARN: arns['airfleet/dev/database-executor']!,
      AIRFLEET_ADMIN_TOKEN_SECRET_ARN: arns['airfleet/dev/admin-token']!,
      AIRFLEET_SUBMIT_TOKEN_SECRET_ARN: arns['airfleet/dev/submit-token']!,
      AIRFLEET_ENROLL_TOKEN_SECRET_ARN: arns['airfleet/dev/enroll-token']!,
      AIRFLEET_SECRET_KEY_SECRET_ARN: arns['airfleet/dev/secret-key']!,
    };
    const taskEnv: Record<string, string> = {};
    for (const [name, value] of Object.entries(env)) {
      if (!value.includes('${')) taskEnv[name] = value;
      else if (fill[name]) taskEnv[name] = fill[name];
      else throw new Error(`${name} is only known at apply time (${value}): teach this suite its value`);
    }
    for (const [name, valueFrom] of Object.entries(container.secrets))
      taskEnv[name] = await resolveValueFrom(valueFrom);
    Object.assign(taskEnv, { PGPORT: db.PGPORT, PGSSLROOTCERT: db.PGSSLROOTCERT, AIRFLEET_PORT: String(port) });
    expect(taskEnv['NOMAD_ADDR']).toMatch(/^https:\/\/[a-z0-9.-]+:4646$/);
    taskEnv['NOMAD_ADDR'] = nomad.address;
    Object.assign(taskEnv, awsEnv(server.endpoint));
    url = `https://127.0.0.1:${port}`;
    executor = await run(container.command, taskEnv)
      .withReadOnlyRoot(container.readonlyRootFilesystem)
      .withWaitStrategy(Wait.forLogMessage(/Server listening/))
      .withStartupTimeout(90_000)
      .withLogConsumer((stream) => stream.on('data', (line: Buffer) => stderr.push(line.toString())))
      .start()
      .catch((error: Error) => {
        throw new Error(`${error.message}\n${stderr.join('').slice(-3000)}`);
      });
  }, 150_000);

  afterAll(async () => {
    if (workerName) execFileSync('docker', ['rm', '-f', workerName], { stdio: 'ignore' });
    await executor?.stop({ remove: true, timeout: 2_000 });
    await postgres?.stop();
    await nomad?.stop();
    await server?.stop();
    if (certs) rmSync(certs, { recursive: true, force: true });
  });

  it('fills the token and key secrets, serves HTTPS and logs in over TLS as its own role, not the master user', async () => {
    const admin = await secretValue('airfleet/dev/admin-token');
    expect(admin).toMatch(/^aft_/);
    expect(await secretValue('airfleet/dev/enroll-token')).toMatch(/^aft_/);
    expect(Buffer.from(await secretValue('airfleet/dev/secret-key'), 'base64')).toHaveLength(32);
    const tokens = await api<{ tokens: Array<{ name: string }> }>(admin, 'GET', '/v1/tokens');
    expect(tokens.tokens.map((t) => t.name).sort()).toEqual(['secret-admin', 'secret-enroll', 'secret-submit']);
    const check = new pg.Client({ connectionString: postgres.url });
    await check.connect();
    try {
      const { rows } = await check.query<{ usename: string; ssl: boolean }>(
        `SELECT a.usename, s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
         WHERE a.datname = $1 AND a.usename <> 'postgres'`,
        [postgres.database],
      );
      expect(rows.length).toBeGreaterThan(0);
      expect(rows.every((r) => r.usename === 'airfleet_executor' && r.ssl)).toBe(true);
    } finally {
      await check.end();
    }
  }, 60_000);

  it('registers a worker started by the worker pools user data and runs a task on it', async () => {
    const admin = await secretValue('airfleet/dev/admin-token');
    // airfleet-worker-prepare's work: the enroll token from its secret, the executor URL from SSM.
    const host = prepareWorkerHost(synthesizeDeployment(['dev']).workerRunScript('dev'), {
      apiUrl: url,
      image: projectImage('executor'),
      token: await secretValue('airfleet/dev/enroll-token'),
      labels: testLabels(),
      // Stands in for the load balancer's certificate from a public CA: the worker trusts the dev CA.
      dockerRunArgs: ['-v', `${certs}:/certs:ro`, '--env', 'NODE_EXTRA_CA_CERTS=/certs/ca.pem'],
    });
    workerName = host.containerName;
    const worker = spawn('bash', [host.script], { env: host.env, stdio: ['ignore', 'pipe', 'pipe'] });
    const output: string[] = [];
    worker.stdout.on('data', (d: Buffer) => output.push(d.toString()));
    worker.stderr.on('data', (d: Buffer) => output.push(d.toString()));
    const queue = /--queues '([^']+)'/.exec(host.scriptText)![1]!;
    await waitFor(
      'the worker to register',
      async () => (await api<{ workers: unknown[] }>(admin, 'GET', '/v1/workers')).workers.length > 0,
      60_000,
      () => output.join('').slice(-2000),
    );
    const submitted = await api<Workload>(await secretValue('airfleet/dev/submit-token'), 'POST', '/v1/workloads', {
      key: 'as-deployed',
      queue,
      image: process.env.AIRFLEET_BASE_IMAGE ?? 'local/debian:bookworm-slim',
      command: ['sh', '-c', 'echo ran as deployed; printf "%s" "$SEALED" | wc -c'],
      // Sealed with the key from its secret, handed to the task on the worker.
      secretEnv: { SEALED: 'twelve-chars' },
    });
    expect(await ended(admin, submitted.id, () => output.join('').slice(-2000))).toMatchObject({
      state: 'succeeded',
      exitCode: 0,
      log: 'ran as deployed\n12\n',
    });
  }, 120_000);

  it('runs a nomad workload through the Nomad API over mutual TLS, with its own client certificate and ACL token', async () => {
    const submitted = await api<Workload>(await secretValue('airfleet/dev/submit-token'), 'POST', '/v1/workloads', {
      key: 'as-deployed-nomad',
      backend: 'nomad',
      image: process.env.AIRFLEET_BASE_IMAGE ?? 'local/debian:bookworm-slim',
      command: ['sh', '-c', 'echo ran on nomad as deployed'],
    });
    const done = await ended(await secretValue('airfleet/dev/admin-token'), submitted.id, () =>
      stderr.join('').slice(-3000),
    );
    expect(done).toMatchObject({
      state: 'succeeded',
      exitCode: 0,
      log: 'ran on nomad as deployed\n',
    });
    // It was a Nomad job in the task namespace (registered with the executor's token over mutual TLS: the
    // fake refuses any other), the one the workload names.
    // (The job itself is purged once it ended: the events stay.)
    const registered = nomad.store.frames
      .flatMap((f) => f.Events)
      .filter((e) => e.Topic === 'Job' && e.Type === 'JobRegistered')
      .map((e) => `${e.Namespace}/${e.Key}`);
    expect(registered).toContain(`${container.environment['NOMAD_NAMESPACE']}/${done.backendRef}`);
  }, 120_000);
});
