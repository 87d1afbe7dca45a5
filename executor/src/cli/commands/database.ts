import { randomBytes } from 'node:crypto';
import type { Command } from 'commander';
import type pg from 'pg';
import { configFromEnv } from '../../config.ts';
import { ConfigError } from '../../errors.ts';
import { createLogger } from '../../lib/logging.ts';

/** Who a role is for: its default name and the privileges it gets. */
const ROLE_KINDS = ['executor', 'airflow'] as const;
type RoleKind = (typeof ROLE_KINDS)[number];
const DEFAULT_ROLE: Readonly<Record<RoleKind, string>> = { executor: 'airfleet_executor', airflow: 'airfleet_airflow' };

/** The schema Airflow's metadata tables live in, apart from the executor's tables in `public`. */
export const AIRFLOW_SCHEMA = 'airflow';

/**
 * `airfleet database create-role`: a login role of its own for the executor (`--for executor`, the default)
 * or for Airflow's metadata database (`--for airflow`), so neither logs in as the master user. Run once per
 * deployment (and again to rotate the role's password) with the master secret; it creates or updates the
 * role with a new random password, grants it what it needs, and writes `{"username", "password"}` into the
 * role's secret, where the service (or Airflow's `sql_alchemy_conn_cmd`) reads them
 * (docs/deployment-secrets.md). The password passes from this process to PostgreSQL and Secrets Manager
 * only: never an argument, a log line or an output.
 */
export function databaseCommand(program: Command): void {
  const database = program.command('database').description('the database of a deployment');
  database
    .command('create-role')
    .description(
      "create (or rotate) a login role (the executor's or Airflow's) and write its credentials into its secret",
    )
    .requiredOption('--admin-secret-arn <arn>', 'secret with the master username and password (RDS-managed)')
    .requiredOption(
      '--secret-arn <arn>',
      "the role's secret (executor: AIRFLEET_DATABASE_SECRET_ARN; airflow: airfleet/<env>/database-airflow)",
    )
    .option('--for <who>', `whose role: ${ROLE_KINDS.join(' | ')}`, 'executor')
    .option('--role <name>', `role name (default: ${ROLE_KINDS.map((k) => `${DEFAULT_ROLE[k]} for ${k}`).join(', ')})`)
    .option('--database-url <url>', 'PostgreSQL URL without credentials (default: the PG* variables)')
    .action(
      async (opts: { adminSecretArn: string; secretArn: string; for: string; role?: string; databaseUrl?: string }) => {
        if (!(ROLE_KINDS as readonly string[]).includes(opts.for))
          throw new ConfigError(`--for ${opts.for}: one of ${ROLE_KINDS.join(', ')}`);
        const kind = opts.for as RoleKind;
        const roleName = opts.role ?? DEFAULT_ROLE[kind];
        if (!/^[a-z_][a-z0-9_]{0,62}$/.test(roleName))
          throw new ConfigError(`--role ${roleName}: a lower-case identifier (letters, digits, _)`);
        const url = opts.databaseUrl ?? configFromEnv().databaseUrl;
        if (!url) throw new ConfigError('no database: set PGHOST (PGPORT, PGDATABASE, PGSSLMODE) or --database-url');
        const logger = createLogger(process.env.AIRFLEET_LOG_LEVEL ?? 'info');
        const [
          { default: pgModule },
          { parseIntoClientConfig },
          { secretCredentials },
          { PutSecretValueCommand, SecretsManagerClient },
        ] = await Promise.all([
          import('pg'),
          import('pg-connection-string'),
          import('../../store/database-credentials.ts'),
          import('@aws-sdk/client-secrets-manager'),
        ]);
        const admin = await (await secretCredentials(opts.adminSecretArn, logger)).current();
        const client = new pgModule.Client({
          ...parseIntoClientConfig(url),
          user: admin.username,
          password: admin.password,
        });
        await client.connect();
        const password = randomBytes(32).toString('base64url');
        try {
          const { rows } = await client.query<{ db: string; exists: boolean }>(
            'SELECT current_database() AS db, EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1) AS exists',
            [roleName],
          );
          const { db, exists } = rows[0]!;
          const role = pgModule.escapeIdentifier(roleName);
          await client.query(
            `${exists ? 'ALTER' : 'CREATE'} ROLE ${role} WITH LOGIN PASSWORD ${pgModule.escapeLiteral(password)}`,
          );
          await (kind === 'airflow' ? grantAirflow : grantExecutor)(client, pgModule, role, db);
          logger.info({ role: roleName, for: kind, database: db, created: !exists }, 'database role ready');
        } finally {
          await client.end();
        }
        await new SecretsManagerClient({}).send(
          new PutSecretValueCommand({
            SecretId: opts.secretArn,
            SecretString: JSON.stringify({ username: roleName, password }),
          }),
        );
        logger.info({ secret: opts.secretArn }, 'wrote the role credentials into the secret');
      },
    );
}

type Pg = typeof pg;

/** The executor: the `public` schema, where its migrations create the tables it then owns. */
async function grantExecutor(client: pg.Client, pgModule: Pg, role: string, db: string): Promise<void> {
  await client.query(`GRANT CONNECT, CREATE, TEMPORARY ON DATABASE ${pgModule.escapeIdentifier(db)} TO ${role}`);
  await client.query(`GRANT USAGE, CREATE ON SCHEMA public TO ${role}`);
  // Tables an earlier version made while logged in as the master user.
  await client.query(`GRANT ALL ON ALL TABLES IN SCHEMA public TO ${role}`);
  await client.query(`GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO ${role}`);
}

/**
 * Airflow: a schema of its own (`airflow`) that is first and only on the role's search_path, so
 * `airflow db migrate` creates its tables, indexes, sequences and enum types there (and alembic_version
 * too) with no Airflow setting, apart from the executor's tables in `public`, which it gets no right on.
 * USAGE and CREATE on the schema are all migrations need: Airflow owns every object it creates, so it may
 * alter and drop them. The schema itself stays the master user's: on PostgreSQL 16 a non-superuser master
 * (RDS's) may not `CREATE SCHEMA … AUTHORIZATION` a role it cannot SET ROLE to, and a role it created is not
 * one by default. No CREATE on the database either: Airflow makes no schema of its own.
 */
async function grantAirflow(client: pg.Client, pgModule: Pg, role: string, db: string): Promise<void> {
  const schema = pgModule.escapeIdentifier(AIRFLOW_SCHEMA);
  const database = pgModule.escapeIdentifier(db);
  await client.query(`GRANT CONNECT, TEMPORARY ON DATABASE ${database} TO ${role}`);
  await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
  await client.query(`GRANT USAGE, CREATE ON SCHEMA ${schema} TO ${role}`);
  await client.query(`ALTER ROLE ${role} IN DATABASE ${database} SET search_path = ${schema}`);
}
