import { randomBytes } from 'node:crypto';
import type { Command } from 'commander';
import { configFromEnv } from '../../config.ts';
import { ConfigError } from '../../errors.ts';
import { createLogger } from '../../lib/logging.ts';

/**
 * `airfleet database create-role`: the executor's own login role, so the service never logs in as the
 * master user. Run once per deployment (and again to rotate the role's password) with the master secret;
 * it creates or updates the role with a new random password, grants it what the service needs on the
 * database (its schema migrations create the tables it then owns), and writes the role's credentials into
 * the executor's secret, where the service reads them (docs/deployment-secrets.md). The password passes from
 * this process to PostgreSQL and Secrets Manager only: never an argument, a log line or an output.
 */
export function databaseCommand(program: Command): void {
  const database = program.command('database').description('the database of a deployment');
  database
    .command('create-role')
    .description("create (or rotate) the executor's login role and write its credentials into its secret")
    .requiredOption('--admin-secret-arn <arn>', 'secret with the master username and password (RDS-managed)')
    .requiredOption('--secret-arn <arn>', "the executor's database secret (AIRFLEET_DATABASE_SECRET_ARN)")
    .option('--role <name>', 'role name', 'airfleet_executor')
    .option('--database-url <url>', 'PostgreSQL URL without credentials (default: the PG* variables)')
    .action(async (opts: { adminSecretArn: string; secretArn: string; role: string; databaseUrl?: string }) => {
      if (!/^[a-z_][a-z0-9_]{0,62}$/.test(opts.role))
        throw new ConfigError(`--role ${opts.role}: a lower-case identifier (letters, digits, _)`);
      const url = opts.databaseUrl ?? configFromEnv().databaseUrl;
      if (!url) throw new ConfigError('no database: set PGHOST (PGPORT, PGDATABASE, PGSSLMODE) or --database-url');
      const logger = createLogger(process.env.AIRFLEET_LOG_LEVEL ?? 'info');
      const [
        { default: pg },
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
      const client = new pg.Client({ ...parseIntoClientConfig(url), user: admin.username, password: admin.password });
      await client.connect();
      const password = randomBytes(32).toString('base64url');
      const role = pg.escapeIdentifier(opts.role);
      try {
        const { rows } = await client.query<{ db: string; exists: boolean }>(
          'SELECT current_database() AS db, EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1) AS exists',
          [opts.role],
        );
        const { db, exists } = rows[0]!;
        await client.query(
          `${exists ? 'ALTER' : 'CREATE'} ROLE ${role} WITH LOGIN PASSWORD ${pg.escapeLiteral(password)}`,
        );
        await client.query(`GRANT CONNECT, CREATE, TEMPORARY ON DATABASE ${pg.escapeIdentifier(db)} TO ${role}`);
        await client.query(`GRANT USAGE, CREATE ON SCHEMA public TO ${role}`);
        // Tables an earlier version made while logged in as the master user.
        await client.query(`GRANT ALL ON ALL TABLES IN SCHEMA public TO ${role}`);
        await client.query(`GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO ${role}`);
        logger.info({ role: opts.role, database: db, created: !exists }, 'database role ready');
      } finally {
        await client.end();
      }
      await new SecretsManagerClient({}).send(
        new PutSecretValueCommand({
          SecretId: opts.secretArn,
          SecretString: JSON.stringify({ username: opts.role, password }),
        }),
      );
      logger.info({ secret: opts.secretArn }, 'wrote the role credentials into the secret');
    });
}
