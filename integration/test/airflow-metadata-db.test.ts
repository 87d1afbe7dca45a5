import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { CreateSecretCommand, GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import pg from 'pg';
import { GenericContainer, Wait } from 'testcontainers';
import { AIRFLOW_VENV, assertAirflowVenv } from '../src/airflow.ts';
import { synthesizeDeployment } from '../src/deployed-commands.ts';
import { configureTestcontainers, projectImage, testLabels } from '../src/docker-env.ts';
import { motoAvailability, type StartedMoto, startMoto } from '../src/moto.ts';
import { MOTO_CREDENTIALS, MOTO_REGION } from '../src/moto-batch.ts';
import { type StartedPostgres, startPostgres } from '../src/postgres.ts';

// Airflow's metadata database as the dev deployment sets it up: the data stack's `airflow_environment`
// output as `cdktf synth` wrote it is the whole Airflow-side configuration, the role is made by
// `airfleet database create-role --for airflow` (the executor image) from the master secret, and Airflow
// 3.3.2 (scripts/setup-airflow.sh) runs `airflow db migrate` with exactly those variables. Replaced are only
// what Terraform fills in at apply time (the secret ARNs: moto's; the database address), the port (a free
// one here, 5432 on RDS) and the CA path (a dev CA instead of the RDS bundle), as in as-deployed.test.ts.
// PostgreSQL is a real server with TLS that logs every connection; docs/deployment-secrets.md, "Airflow's
// metadata database".

const moto = motoAvailability();
if (!moto.ok) console.warn(`airflow-metadata-db: skipped: ${moto.reason}`);
const describeMoto = moto.ok ? describe : describe.skip;
const DEV_CERTS = fileURLToPath(new URL('../../scripts/dev-certs.mjs', import.meta.url));
const run = promisify(execFile);

/** Its own connection as Airflow's sync and async engines see it: who, over TLS or not, which search_path. */
const PROBE = `
import asyncio, json
from sqlalchemy import text
from airflow import settings
from airflow.utils.session import create_session, create_session_async
Q = text("SELECT current_user AS user, s.ssl, s.version, current_setting('search_path') AS search_path "
         "FROM pg_stat_ssl s WHERE s.pid = pg_backend_pid()")
with create_session() as s:
    sync = dict(s.execute(Q).mappings().one())
async def probe():
    async with create_session_async() as s:
        return dict((await s.execute(Q)).mappings().one())
out = {"sync": sync, "async": asyncio.run(probe()),
       "drivers": [settings.engine.url.drivername, settings.async_engine.url.drivername]}
print("PROBE " + json.dumps(out))
`;

/** After a rotation: the URL Airflow's next start gets, and who it logs in as. */
const RESTARTED = `
import json, os, shlex, subprocess, sqlalchemy
cmd = os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD"]
url = subprocess.run(shlex.split(cmd), check=True, capture_output=True, text=True).stdout
with sqlalchemy.create_engine(url).connect() as c:
    row = c.execute(sqlalchemy.text("SELECT current_user AS user, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"))
    print(json.dumps(dict(row.mappings().one())))
`;

describeMoto('Airflow metadata database as deployed (airflow_environment, its own role, TLS)', () => {
  let server: StartedMoto;
  let secrets: SecretsManagerClient;
  let postgres: StartedPostgres;
  let certs: string;
  let otherCa: string;
  let home: string;
  /** Airflow's environment: the synthesized output with the apply-time values filled in. */
  let airflowEnv: Record<string, string>;
  const arns: Record<string, string> = {};

  const awsEnv = () => ({
    AWS_ENDPOINT_URL: server.endpoint,
    AWS_ACCESS_KEY_ID: MOTO_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: MOTO_CREDENTIALS.secretAccessKey,
    AWS_REGION: MOTO_REGION,
  });
  const create = async (name: string, value?: string) => {
    const out = await secrets.send(new CreateSecretCommand({ Name: name, ...(value ? { SecretString: value } : {}) }));
    arns[name] = out.ARN!;
  };
  const password = async () =>
    (
      JSON.parse(
        (await secrets.send(new GetSecretValueCommand({ SecretId: arns['airfleet/dev/database-airflow'] })))
          .SecretString!,
      ) as { password: string }
    ).password;

  /** The deployment's one-off step, with the executor image as in as-deployed.test.ts. */
  const createRole = async () => {
    const container = await new GenericContainer(projectImage('executor'))
      .withNetworkMode('host')
      .withLabels(testLabels())
      .withBindMounts([{ source: certs, target: '/certs', mode: 'ro' }])
      .withEnvironment({
        PGHOST: '127.0.0.1',
        PGPORT: String(postgres.port),
        PGDATABASE: postgres.database,
        PGSSLMODE: 'verify-full',
        PGSSLROOTCERT: '/certs/ca.pem',
        ...awsEnv(),
      })
      .withCommand([
        'database',
        'create-role',
        '--for',
        'airflow',
        '--admin-secret-arn',
        arns['rds!db-master']!,
        '--secret-arn',
        arns['airfleet/dev/database-airflow']!,
      ])
      .withWaitStrategy(Wait.forOneShotStartup())
      .withStartupTimeout(60_000)
      .start();
    await container.stop({ remove: true });
  };

  /** An Airflow CLI command in the venv with Airflow's environment and nothing of this process's. */
  const airflow = async (args: string[], extra: Record<string, string> = {}) => {
    const env = {
      PATH: `${join(AIRFLOW_VENV, 'bin')}:/usr/bin:/bin`,
      HOME: home,
      AIRFLOW_HOME: home,
      ...awsEnv(),
      ...airflowEnv,
      ...extra,
    };
    try {
      const { stdout, stderr } = await run(join(AIRFLOW_VENV, 'bin', args[0]!), args.slice(1), {
        env,
        timeout: 120_000,
        maxBuffer: 16 * 1024 * 1024,
      });
      return { code: 0, out: `${stdout}\n${stderr}` };
    } catch (e) {
      const err = e as { code?: number; stdout?: string; stderr?: string };
      return { code: err.code ?? -1, out: `${err.stdout ?? ''}\n${err.stderr ?? ''}` };
    }
  };

  /** The server's `connection authorized` lines (log_connections) for one role. */
  const authorized = async (role: string) => {
    const logs = await postgres.container.logs();
    const text = await new Promise<string>((resolve) => {
      let all = '';
      logs.on('data', (d: Buffer | string) => {
        all += d.toString();
      });
      logs.on('end', () => resolve(all));
      // Logs of a running container do not end by themselves: what is there arrives within moments.
      setTimeout(() => {
        logs.destroy();
        resolve(all);
      }, 1_000);
    });
    return text.split('\n').filter((l) => l.includes(`connection authorized: user=${role} `));
  };

  beforeAll(async () => {
    assertAirflowVenv();
    configureTestcontainers();
    certs = mkdtempSync(join(tmpdir(), 'airfleet-airflow-db-certs-'));
    otherCa = mkdtempSync(join(tmpdir(), 'airfleet-airflow-db-other-ca-'));
    home = mkdtempSync(join(tmpdir(), 'airfleet-airflow-db-home-'));
    execFileSync('node', [DEV_CERTS, certs]);
    execFileSync('node', [DEV_CERTS, otherCa]);
    execFileSync('chmod', ['-R', 'a+rX', certs]); // the image's user reads the CA
    const synth = synthesizeDeployment(['dev']);
    const data = synth.stack('dev-data');
    [server, postgres] = await Promise.all([
      startMoto(),
      startPostgres({ tlsDir: certs, settings: { log_connections: 'on' } }),
    ]);
    secrets = new SecretsManagerClient({
      region: MOTO_REGION,
      endpoint: server.endpoint,
      credentials: MOTO_CREDENTIALS,
    });

    // What RDS (the master secret) and the data stack (the role's and the token's secrets, empty) create.
    await create('rds!db-master', JSON.stringify({ username: 'postgres', password: postgres.password }));
    await create('airfleet/dev/database-airflow');
    await create('airfleet/dev/submit-token');
    await createRole();

    const output = data.output?.['airflow_environment']?.value as Record<string, string> | undefined;
    if (!output) throw new Error('the dev data stack has no airflow_environment output');
    const names = Object.fromEntries(
      Object.entries(data.resource?.['aws_secretsmanager_secret'] ?? {}).map(([id, s]) => [id, String(s['name'])]),
    );
    const fill = (value: string) =>
      value
        .replace(/\$\{aws_secretsmanager_secret\.([^.]+)\.arn\}/g, (_, id: string) => {
          const arn = arns[names[id] ?? ''];
          if (!arn)
            throw new Error(`airflow_environment names secret ${id} (${names[id]}), which this test has not made`);
          return arn;
        })
        .replace('${aws_db_instance.database.address}', '127.0.0.1')
        .replace('--port 5432', `--port ${postgres.port}`)
        .replace('/opt/airfleet/rds-ca-bundle.pem', join(certs, 'ca.pem'));
    airflowEnv = Object.fromEntries(Object.entries(output).map(([k, v]) => [k, fill(v)]));
    for (const [k, v] of Object.entries(airflowEnv))
      if (v.includes('${')) throw new Error(`airflow_environment ${k} = ${v}: an apply-time value left unfilled`);
  }, 240_000);

  afterAll(async () => {
    await postgres?.stop();
    await server?.stop();
    for (const dir of [certs, otherCa, home]) if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('airflow db migrate succeeds as the airflow role over verified TLS, in its own schema; another CA is refused', async () => {
    const cmd = airflowEnv['AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD']!;
    // At the same time, as each Airflow start takes seconds: the same variables but a CA that did not sign
    // the server (it never reaches the database), and a probe of Airflow's own connections.
    const [migrate, wrong, probe] = await Promise.all([
      airflow(['airflow', 'db', 'migrate']),
      airflow(['airflow', 'db', 'check'], {
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD: cmd.replace(join(certs, 'ca.pem'), join(otherCa, 'ca.pem')),
      }),
      // Both of Airflow's engines, the sync one and the async one (the api-server's), on their own connection.
      airflow(['python', '-c', PROBE]),
    ]);
    expect(wrong.code).not.toBe(0);
    expect(wrong.out).toMatch(
      /connection to server at "127\.0\.0\.1", port \d+ failed: SSL error: certificate verify failed/,
    );
    expect({ code: migrate.code, tail: migrate.out.slice(-2000) }).toEqual({ code: 0, tail: expect.any(String) });
    expect(migrate.out).toMatch(/Database migration done!/);
    // The password came from the secret through the command only: never in Airflow's output.
    expect(migrate.out).not.toContain(await password());

    // Every connection Airflow made, as the server logged it: the airflow role, TLS on every one.
    const lines = await authorized('airfleet_airflow');
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) expect(line).toMatch(/database=airfleet .*SSL enabled \(protocol=TLS/);

    // The tables are Airflow's own, in schema airflow, apart from the executor's `public`.
    const admin = new pg.Client({ connectionString: postgres.url });
    await admin.connect();
    try {
      const { rows } = await admin.query<{ schemaname: string; owner: string; n: string }>(
        `SELECT schemaname, tableowner AS owner, count(*) AS n FROM pg_tables
         WHERE tablename IN ('dag', 'task_instance', 'alembic_version') GROUP BY 1, 2`,
      );
      expect(rows).toEqual([{ schemaname: 'airflow', owner: 'airfleet_airflow', n: '3' }]);
    } finally {
      await admin.end();
    }

    expect(probe.code).toBe(0);
    const seen = JSON.parse(/^PROBE (.*)$/m.exec(probe.out)![1]!) as {
      sync: Record<string, unknown>;
      async: Record<string, unknown>;
      drivers: string[];
    };
    expect(seen.drivers).toEqual(['postgresql+psycopg2', 'postgresql+psycopg']);
    for (const side of [seen.sync, seen.async])
      expect(side).toEqual({
        user: 'airfleet_airflow',
        ssl: true,
        version: expect.stringMatching(/^TLS/),
        search_path: 'airflow',
      });
  }, 180_000);

  it('a rotation (create-role again): the old password is refused, the command gives the new one', async () => {
    const before = await password();
    await createRole();
    expect(await password()).not.toBe(before);
    // The old password is refused from now on.
    const old = new pg.Client({
      host: '127.0.0.1',
      port: postgres.port,
      database: postgres.database,
      user: 'airfleet_airflow',
      password: before,
      ssl: { ca: readFileSync(join(certs, 'ca.pem'), 'utf8') },
    });
    await expect(old.connect()).rejects.toThrow(/password authentication failed for user "airfleet_airflow"/);
    // What a component started now gets: the command run as Airflow runs it (airflow.configuration
    // run_command: shlex-split, no shell), its URL used by SQLAlchemy with psycopg2.
    const after = await airflow(['python', '-c', RESTARTED]);
    expect({ code: after.code, out: after.out.trim() }).toEqual({ code: 0, out: expect.stringMatching(/^\{.*\}$/) });
    expect(JSON.parse(after.out)).toEqual({ user: 'airfleet_airflow', ssl: true });
  }, 120_000);
});
