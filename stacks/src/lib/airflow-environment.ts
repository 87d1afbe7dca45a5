import type { EnvironmentConfig } from '../config/schema.ts';
import { RDS_CA_BUNDLE } from './executor-permissions.ts';
import type { PolicyStatement } from './iam.ts';

/** The Airflow role's secret, filled by `airfleet database create-role --for airflow`. */
export const airflowDatabaseSecretName = (env: EnvironmentConfig) => `airfleet/${env.name}/database-airflow`;

/** Where an Airflow host keeps the submit token that the deployment copies from its secret (mode 0600). */
export const AIRFLOW_TOKEN_FILE = '/run/secrets/airfleet-token';

/** The console script of the airfleet-airflow plugin (executor/airflow/src/airfleet_airflow/db_url.py). */
export const DB_URL_COMMAND = 'airfleet-airflow-db-url';

export interface AirflowEnvironmentInput {
  env: EnvironmentConfig;
  database: { host: string; port: number; name: string; airflowSecretArn: string };
  submitTokenSecretArn: string;
}

/**
 * The environment an Airflow deployment (scheduler, api-server, dag processor, triggerer) sets to use this
 * environment's database and executor, as the data stack's `airflow_environment` output. No value in it is
 * a secret: the database password stays in its secret, which Airflow reads at every start through
 * `sql_alchemy_conn_cmd` (Airflow runs the command without a shell, so it is plain words), and the submit
 * token is copied from its secret into `token_file` by the deployment (docs/deployment-secrets.md).
 *
 * Both engines get a command: left alone, Airflow derives the async URL as `postgresql+asyncpg` from the
 * sync one, and asyncpg takes no `sslmode`/`sslrootcert`, so `--async` gives psycopg 3 (libpq, the same TLS
 * settings). The service URL is known here only when the executor runs on Nomad (configured); on ECS it is
 * the executor stack's `executor_url` output.
 */
export function airflowEnvironment(input: AirflowEnvironmentInput): Record<string, string> {
  const { env, database } = input;
  const command = [
    DB_URL_COMMAND,
    '--secret-arn',
    database.airflowSecretArn,
    '--host',
    database.host,
    '--port',
    String(database.port),
    '--dbname',
    database.name,
    '--sslrootcert',
    RDS_CA_BUNDLE,
  ].join(' ');
  return {
    AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD: command,
    AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC_CMD: `${command} --async`,
    ...(env.executor.runtime === 'nomad' ? { AIRFLOW__AIRFLEET__URL: env.executor.url } : {}),
    AIRFLOW__AIRFLEET__TOKEN_FILE: AIRFLOW_TOKEN_FILE,
    AIRFLEET_SUBMIT_TOKEN_SECRET_ARN: input.submitTokenSecretArn,
  };
}

export interface AirflowHostGrants {
  /** Region of the environment: the database key is used only through Secrets Manager there. */
  region: string;
  airflowSecretArn: string;
  /** The database key, which encrypts the Airflow role's secret. */
  kmsKeyArn: string;
  submitTokenSecretArn: string;
}

/**
 * What an Airflow host's role needs to start with `airflow_environment`, and nothing more: read the Airflow
 * role's database secret (through `sql_alchemy_conn_cmd`, every start) and the submit token (copied into
 * `token_file` by the deployment). The database key decrypts only through Secrets Manager, so these rights
 * cannot decrypt the database's snapshots or the master secret by calling KMS directly. The token secrets
 * use the account's `aws/secretsmanager` key, whose policy already allows any reader of the secret.
 */
export function airflowHostStatements(grants: AirflowHostGrants): PolicyStatement[] {
  return [
    { Sid: 'ReadAirflowDatabaseSecret', Action: 'secretsmanager:GetSecretValue', Resource: grants.airflowSecretArn },
    {
      Sid: 'DecryptAirflowDatabaseSecret',
      Action: 'kms:Decrypt',
      Resource: grants.kmsKeyArn,
      Condition: { StringEquals: { 'kms:ViaService': `secretsmanager.${grants.region}.amazonaws.com` } },
    },
    { Sid: 'ReadSubmitToken', Action: 'secretsmanager:GetSecretValue', Resource: grants.submitTokenSecretArn },
  ];
}
