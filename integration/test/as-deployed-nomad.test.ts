import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CreateSecretCommand, GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { Workload } from '../../executor/src/domain/workload.ts';
import { EXECUTOR_JOB_ID } from '../../stacks/src/components/nomad.ts';
import { environments } from '../../stacks/src/config/environments/index.ts';
import { parseEnvironments } from '../../stacks/src/config/validate.ts';
import { secretKeySecretName, TOKEN_KINDS, tokenSecretName } from '../../stacks/src/lib/token-secrets.ts';
import { waitFor } from '../src/airfleet-process.ts';
import { synthesizeDeployment } from '../src/deployed-commands.ts';
import { configureTestcontainers, projectImage, testLabels } from '../src/docker-env.ts';
import { curlJson } from '../src/https-api.ts';
import { motoAvailability, type StartedMoto, startMoto } from '../src/moto.ts';
import { createMotoBatch, createMotoBatchTargets, MOTO_CREDENTIALS, MOTO_REGION } from '../src/moto-batch.ts';
import { type PreparedTask, prepareDockerTask } from '../src/nomad-client-host.ts';
import { type NomadFake, startNomadFake } from '../src/nomad-fake/index.ts';
import { dockerTask, evaluateJobspec, parseJobspec } from '../src/nomad-jobspec.ts';
import { freePort } from '../src/ports.ts';
import { type StartedPostgres, startPostgres } from '../src/postgres.ts';

// The executor image run the way prod's Nomad job runs it: the jobspec and the HCL2 variables the nomad stack
// hands to Terraform (cdktf synth's cdk.tf.json), read as Nomad reads them (integration/src/nomad-jobspec.ts),
// the task started as a Nomad client starts a Docker task (integration/src/nomad-client-host.ts): the
// driver's args, the task's env over Nomad's runtime variables, read-only root, host networking, the memory
// limit, the secrets directory at /secrets with the templates rendered into it from the job's Nomad Variable
// (a dev certificate from scripts/dev-certs.mjs) with their perms and owner, the workload identity in
// NOMAD_TOKEN. Replaced are only what is known at apply time, or differs on a test machine: the
// cross-stack values (the executor image's repository, PGHOST, the secret ARNs: this build's image and moto's
// ARNs; the namespace names are resolved from the same stack, as Terraform does), the ports (the job's static
// 8470 and PostgreSQL's 5432: free ones here), the CA that verifies PostgreSQL (the dev CA instead of the RDS
// bundle), the instance role's credentials and AWS endpoint (moto's), and the Task API socket, which is THE
// NOMAD FAKE (integration/src/nomad-fake) listening on ${NOMAD_SECRETS_DIR}/api.sock and running tasks as
// containers on a node of prod's datacenter and task node pool with its host volumes. The release's
// task-runner image (the nomad backend's default image) is the locally built one under the registry name.

const moto = motoAvailability();
if (!moto.ok) console.warn(`as-deployed-nomad: skipped: ${moto.reason}`);
const describeMoto = moto.ok ? describe : describe.skip;

const ENV = 'prod';
const DEV_CERTS = fileURLToPath(new URL('../../scripts/dev-certs.mjs', import.meta.url));

describeMoto(`the ${ENV} executor as deployed on Nomad (the executor job's task)`, () => {
  const config = parseEnvironments(environments).find((e) => e.name === ENV)!;
  let server: StartedMoto;
  let secrets: SecretsManagerClient;
  let postgres: StartedPostgres;
  let nomad: NomadFake;
  let task: PreparedTask;
  let work: string;
  let certs: string;
  let url: string;
  let containerName: string;
  let logs: ChildProcess | undefined;
  let taggedImage: string | undefined;
  const output: string[] = [];
  const arns: Record<string, string> = {};
  const stderrTail = () => `executor output (tail):\n${output.join('').slice(-3000)}`;

  const secretValue = async (name: string) =>
    (await secrets.send(new GetSecretValueCommand({ SecretId: name }))).SecretString;
  const createSecret = async (name: string, value?: string) => {
    const out = await secrets.send(new CreateSecretCommand({ Name: name, ...(value ? { SecretString: value } : {}) }));
    arns[name] = out.ARN!;
    return out.ARN!;
  };
  const aws = () => ({
    AWS_ENDPOINT_URL: server.endpoint,
    AWS_ACCESS_KEY_ID: MOTO_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: MOTO_CREDENTIALS.secretAccessKey,
  });
  /** Over HTTPS trusting only the dev CA: the certificate the template rendered is the one checked. */
  const api = <T>(token: string, method: string, path: string, body?: unknown): T =>
    curlJson<T>(url, join(certs, 'ca.pem'), token, method, path, body);
  /** `docker run` with the test's labels; env from a private file, so no value shows in a process listing. */
  const dockerRun = (name: string, detach: boolean, env: Record<string, string>, extra: string[], args: string[]) => {
    const envFile = join(work, `${name}.env`);
    writeFileSync(
      envFile,
      Object.entries(env)
        .map(([k, v]) => `${k}=${v.replace(/\n/g, '\\n')}\n`)
        .join(''),
      {
        mode: 0o600,
      },
    );
    const labels = Object.entries(testLabels()).flatMap(([k, v]) => ['--label', `${k}=${v}`]);
    return execFileSync(
      'docker',
      ['run', ...(detach ? ['-d'] : ['--rm']), '--name', name, ...labels, '--env-file', envFile, ...extra, ...args],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
    );
  };

  beforeAll(async () => {
    configureTestcontainers();
    work = mkdtempSync(join(tmpdir(), 'airfleet-as-deployed-nomad-'));
    certs = join(work, 'certs');
    execFileSync('node', [DEV_CERTS, certs]);
    // PostgreSQL's container copies its pair as its own user; the executor reads only the CA (below).
    execFileSync('chmod', ['-R', 'a+rX', certs]);
    const ca = join(work, 'ca');
    mkdirSync(ca);
    writeFileSync(join(ca, 'ca.pem'), readFileSync(join(certs, 'ca.pem')), { mode: 0o644 });
    chmodSync(ca, 0o755);

    // What the nomad stack hands Terraform, and Terraform hands Nomad.
    const deployment = synthesizeDeployment([ENV]);
    const stack = deployment.stack(`${ENV}-nomad`);
    const { jobspec, vars } = deployment.nomadJob(ENV);
    rmSync(deployment.outdir, { recursive: true, force: true });

    [server, postgres] = await Promise.all([startMoto(), startPostgres({ tlsDir: certs })]);
    secrets = new SecretsManagerClient({
      region: MOTO_REGION,
      endpoint: server.endpoint,
      credentials: MOTO_CREDENTIALS,
    });
    // What the data stack creates (empty token, key and executor-role secrets) and RDS (the master secret).
    await createSecret('rds!db-prod-master', JSON.stringify({ username: 'postgres', password: postgres.password }));
    await createSecret(`airfleet/${ENV}/database-executor`);
    for (const kind of TOKEN_KINDS) await createSecret(tokenSecretName(config, kind));
    await createSecret(secretKeySecretName(config));

    // Values Terraform fills in at apply time: namespaces from this stack's resources, the rest from other stacks.
    const crossStack: Record<string, string> = {
      image: projectImage('executor'),
      database_host: '127.0.0.1',
      database_secret_arn: arns[`airfleet/${ENV}/database-executor`]!,
      admin_token_secret_arn: arns[tokenSecretName(config, 'admin')]!,
      submit_token_secret_arn: arns[tokenSecretName(config, 'submit')]!,
      enroll_token_secret_arn: arns[tokenSecretName(config, 'enroll')]!,
      secret_key_secret_arn: arns[secretKeySecretName(config)]!,
    };
    const given: Record<string, string> = {};
    for (const [name, value] of Object.entries(vars)) {
      const own = /^\$\{nomad_namespace\.([^.]+)\.name\}$/.exec(value);
      if (own) given[name] = String(stack.resource?.['nomad_namespace']?.[own[1]!]?.['name']);
      else if (!value.includes('${')) given[name] = value;
      else if (crossStack[name]) given[name] = crossStack[name];
      else throw new Error(`variable ${name} is only known at apply time (${value}): teach this suite its value`);
    }
    const port = await freePort();
    // The job's static port (a variable with a default, which the stack leaves as it is): a free one here.
    given['port'] = String(port);
    const spec = dockerTask(evaluateJobspec(await parseJobspec(jobspec), given), 'executor');

    // What the batch stack creates: the job queues and definitions the task's settings name.
    const batch = await createMotoBatch(server, { prefix: `airfleet-${ENV}-` });
    await createMotoBatchTargets(server, batch, spec.env['AIRFLEET_BATCH_QUEUES']!);

    // The operator's step (stacks/README.md, Deploying): the certificate in the job's Nomad Variable.
    const identityToken = `workload-identity-${randomUUID()}`;
    task = prepareDockerTask(spec, {
      datacenter: given['datacenter']!,
      ip: '127.0.0.1',
      identityToken,
      variables: {
        [`nomad/jobs/${EXECUTOR_JOB_ID}`]: {
          tls_cert: readFileSync(join(certs, 'server.pem'), 'utf8'),
          tls_key: readFileSync(join(certs, 'server-key.pem'), 'utf8'),
        },
      },
    });

    // The Nomad cluster behind the Task API socket: one client of prod's datacenter and task node pool, with
    // the host volumes every client defines, and the release's task-runner image.
    const volumes = join(work, 'volumes');
    for (const v of ['config', 'dags']) mkdirSync(join(volumes, v), { recursive: true, mode: 0o755 });
    writeFileSync(join(volumes, 'dags', 'hello.txt'), 'hello from the dags volume\n', { mode: 0o644 });
    nomad = await startNomadFake({
      socketPath: join(task.secretsDir, 'api.sock'),
      token: identityToken,
      namespaces: [spec.env['NOMAD_NAMESPACE']!],
      datacenter: spec.env['AIRFLEET_NOMAD_DATACENTERS']!,
      nodePool: spec.env['AIRFLEET_NOMAD_NODE_POOL']!,
      hostVolumes: { config: { path: join(volumes, 'config') }, dags: { path: join(volumes, 'dags') } },
    });
    taggedImage = spec.env['AIRFLEET_NOMAD_DEFAULT_IMAGE']!;
    execFileSync('docker', ['tag', projectImage('task-runner'), taggedImage]);

    // The deployment's one-off step: the executor's own database role, from the master secret.
    const db = { PGHOST: '127.0.0.1', PGPORT: String(postgres.port), PGSSLROOTCERT: '/ca/ca.pem' };
    dockerRun(
      `airfleet-create-role-${process.pid}`,
      false,
      {
        ...db,
        PGDATABASE: spec.env['PGDATABASE']!,
        PGSSLMODE: spec.env['PGSSLMODE']!,
        ...aws(),
        AWS_REGION: MOTO_REGION,
      },
      ['--network', 'host', '-v', `${ca}:/ca:ro`],
      [
        projectImage('executor'),
        'database',
        'create-role',
        '--admin-secret-arn',
        arns['rds!db-prod-master']!,
        '--secret-arn',
        arns[`airfleet/${ENV}/database-executor`]!,
      ],
    );

    // The task.
    containerName = `airfleet-executor-nomad-${process.pid}-${Date.now()}`;
    dockerRun(
      containerName,
      true,
      { ...task.env, ...db, ...aws() },
      [...task.dockerArgs, '-v', `${ca}:/ca:ro`],
      [task.image, ...task.args],
    );
    logs = spawn('docker', ['logs', '-f', containerName], { stdio: ['ignore', 'pipe', 'pipe'] });
    logs.stdout!.on('data', (d: Buffer) => output.push(d.toString()));
    logs.stderr!.on('data', (d: Buffer) => output.push(d.toString()));
    url = `https://127.0.0.1:${port}`;
    // `docker logs -f` ends when the container does: a service that exits fails here at once, with its output.
    const exited = new Promise<never>((_, reject) =>
      logs!.on('exit', () => reject(new Error(`the executor exited before it listened\n${stderrTail()}`))),
    );
    exited.catch(() => {});
    await Promise.race([
      waitFor('the executor to listen', async () => /Server listening/.test(output.join('')), 60_000, stderrTail),
      exited,
    ]);
  }, 180_000);

  afterAll(async () => {
    logs?.kill();
    if (containerName) execFileSync('docker', ['rm', '-f', containerName], { stdio: 'ignore' });
    if (taggedImage) execFileSync('docker', ['rmi', taggedImage], { stdio: 'ignore' });
    await nomad?.stop();
    await postgres?.stop();
    await server?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('serves HTTPS with the certificate from the Nomad Variable and fills the token and key secrets', async () => {
    try {
      const health = execFileSync('curl', ['-sS', '--fail', '--cacert', join(certs, 'ca.pem'), `${url}/healthz`], {
        encoding: 'utf8',
      });
      expect(JSON.parse(health)).toEqual({ status: 'ok' });
      const admin = (await secretValue(tokenSecretName(config, 'admin')))!;
      expect(admin).toMatch(/^aft_/);
      expect(await secretValue(tokenSecretName(config, 'submit'))).toMatch(/^aft_/);
      expect(Buffer.from((await secretValue(secretKeySecretName(config)))!, 'base64')).toHaveLength(32);
      const tokens = api<{ tokens: Array<{ name: string }> }>(admin, 'GET', '/v1/tokens');
      expect(tokens.tokens.map((t) => t.name).sort()).toEqual(['secret-admin', 'secret-enroll', 'secret-submit']);
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${stderrTail()}`);
    }
  }, 60_000);

  it('runs a nomad workload submitted with the submit token on the client pools, with its log readable', async () => {
    const admin = (await secretValue(tokenSecretName(config, 'admin')))!;
    const submitted = api<Workload>((await secretValue(tokenSecretName(config, 'submit')))!, 'POST', '/v1/workloads', {
      key: 'as-deployed-nomad',
      backend: 'nomad',
      // No image: the backend's default, this release's task-runner; the dags volume where Airflow reads it.
      command: ['sh', '-c', 'echo ran on nomad; cat /opt/airflow/dags/hello.txt; printf "%s" "$SEALED" | wc -c'],
      secretEnv: { SEALED: 'twelve-chars' },
    });
    const done = await waitFor(
      'the nomad workload to end',
      async () => {
        const w = api<Workload>(admin, 'GET', `/v1/workloads/${submitted.id}`);
        return w.state === 'succeeded' || w.state === 'failed' ? w : null;
      },
      60_000,
      stderrTail,
    );
    const log = api<{ data: string }>(admin, 'GET', `/v1/workloads/${submitted.id}/logs`);
    const job = JSON.parse(nomad.store.specs[0]!) as Record<string, unknown>;
    expect({ ...done, log: Buffer.from(log.data, 'base64').toString() }).toMatchObject({
      state: 'succeeded',
      exitCode: 0,
      log: 'ran on nomad\nhello from the dags volume\n12\n',
    });
    // Placed where the environment says, in the task namespace, as the Nomad job's settings ask.
    expect(job).toMatchObject({
      Namespace: config.nomad.namespace,
      Datacenters: [config.nomad.datacenter],
      NodePool: 'airflow',
    });
  }, 90_000);
});
