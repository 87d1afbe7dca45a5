import { DbInstance } from '@cdktf/provider-aws/lib/db-instance/index.js';
import { DbParameterGroup } from '@cdktf/provider-aws/lib/db-parameter-group/index.js';
import { DbSubnetGroup } from '@cdktf/provider-aws/lib/db-subnet-group/index.js';
import { IamPolicy } from '@cdktf/provider-aws/lib/iam-policy/index.js';
import { KmsAlias } from '@cdktf/provider-aws/lib/kms-alias/index.js';
import { KmsKey } from '@cdktf/provider-aws/lib/kms-key/index.js';
import { SecretsmanagerSecret } from '@cdktf/provider-aws/lib/secretsmanager-secret/index.js';
import { Fn, TerraformOutput } from 'cdktf';
import type { Construct } from 'constructs';
import { AirfleetStack, type StateOptions } from '../airfleet-stack.ts';
import type { EnvironmentConfig } from '../config/schema.ts';
import { airflowDatabaseSecretName, airflowEnvironment, airflowHostStatements } from '../lib/airflow-environment.ts';
import { policyDocument } from '../lib/iam.ts';
import { allowIngress, securityGroup } from '../lib/security-groups.ts';
import { TokenSecrets } from '../lib/token-secrets.ts';
import type { NetworkStack } from './network.ts';

export interface DataStackProps {
  env: EnvironmentConfig;
  state: StateOptions;
  network: NetworkStack;
}

/** How the executor and the tasks reach the database; the credentials are in `secretArn`, never here. */
export interface DatabaseConnection {
  host: string;
  port: number;
  name: string;
  /**
   * Secrets Manager secret RDS manages (JSON with `username` and `password`), rotated by RDS: the master
   * user, for `airfleet database create-role` only.
   */
  secretArn: string;
  /**
   * Secret of the executor's own login role (JSON with `username` and `password`), created here empty and
   * filled by `airfleet database create-role` (docs/deployment-secrets.md): the executor never logs in as
   * the master user.
   */
  executorSecretArn: string;
  /**
   * Secret of Airflow's own login role for its metadata (`airfleet database create-role --for airflow`),
   * created empty like the executor's: Airflow reads it through `sql_alchemy_conn_cmd`.
   */
  airflowSecretArn: string;
  /** Key that encrypts the storage and the secret; readers of the secret need kms:Decrypt on it. */
  kmsKeyArn: string;
}

const POSTGRES_PORT = 5432;

/**
 * The PostgreSQL database for the Airflow metadata and the executor's store. Encrypted with its own KMS
 * key, in private subnets only, TLS enforced by the parameter group, and reachable only from the compute
 * security groups (by reference, not by CIDR). The master password is generated and rotated by RDS in
 * Secrets Manager (`manage_master_user_password`), so it never appears in Terraform's state.
 */
export class DataStack extends AirfleetStack {
  readonly database: DbInstance;
  readonly key: KmsKey;
  readonly connection: DatabaseConnection;
  /** The API token secrets (admin, submit, enroll), created empty: the executor fills them. */
  readonly tokens: TokenSecrets;

  constructor(scope: Construct, props: DataStackProps) {
    super(scope, { ...props, component: 'data' });
    const db = this.env.database;
    const { network } = props;
    const major = db.engineVersion.split('.')[0];

    this.key = new KmsKey(this, 'database-key', {
      description: `airfleet ${this.env.name}: database storage, snapshots and master secret`,
      enableKeyRotation: true,
      deletionWindowInDays: this.env.production ? 30 : 7,
      // The snapshots of a protected database are only readable with this key.
      lifecycle: { preventDestroy: db.deletionProtection },
    });
    const alias = new KmsAlias(this, 'database-key-alias', {
      name: `alias/${this.resourceName('database')}`,
      targetKeyId: this.key.keyId,
    });

    const subnets = new DbSubnetGroup(this, 'subnet-group', {
      name: this.resourceName('database'),
      description: 'Private subnets of the airfleet VPC',
      subnetIds: network.privateSubnets.map((s) => s.id),
    });
    const parameters = new DbParameterGroup(this, 'parameter-group', {
      name: this.resourceName('postgres', major ?? 'x'),
      family: `postgres${major}`,
      description: 'airfleet: TLS only, slow statements logged',
      parameter: [
        // Refuse unencrypted connections; clients use sslmode=verify-full with the RDS CA bundle.
        { name: 'rds.force_ssl', value: '1', applyMethod: 'pending-reboot' },
        { name: 'log_min_duration_statement', value: '2000' },
      ],
      lifecycle: { createBeforeDestroy: true },
    });

    const firewall = securityGroup(this, 'database-sg', {
      name: this.resourceName('database'),
      description: 'PostgreSQL: only from the airfleet compute security groups',
      vpcId: network.vpc.id,
    });
    const ingress = Object.entries(network.securityGroups).map(([name, group]) =>
      allowIngress(this, `database-from-${name}`, {
        securityGroupId: firewall.id,
        description: `PostgreSQL from ${name}`,
        fromPort: POSTGRES_PORT,
        sourceSecurityGroupId: group.id,
      }),
    );

    const identifier = this.resourceName('postgres');
    const executorSecret = new SecretsmanagerSecret(this, 'executor-database-secret', {
      name: `airfleet/${this.env.name}/database-executor`,
      description: `airfleet ${this.env.name}: the executor's database role, filled by airfleet database create-role`,
      kmsKeyId: this.key.arn,
      recoveryWindowInDays: this.env.production ? 30 : 0,
    });

    const airflowSecret = new SecretsmanagerSecret(this, 'airflow-database-secret', {
      name: airflowDatabaseSecretName(this.env),
      description: `airfleet ${this.env.name}: Airflow's metadata database role, filled by airfleet database create-role --for airflow`,
      kmsKeyId: this.key.arn,
      recoveryWindowInDays: this.env.production ? 30 : 0,
    });

    this.tokens = new TokenSecrets(this, 'token-secrets');

    // The stacks do not run Airflow; its hosts get what airflow_environment needs from this policy for their
    // role (output airflow_policy_arn) and the network stack's airflow group, which the database and the
    // executor's load balancer let in (output airflow_security_group_id).
    const airflowPolicy = new IamPolicy(this, 'airflow-host-policy', {
      name: this.resourceName('airflow'),
      description: `airfleet ${this.env.name}: what the Airflow components need for airflow_environment`,
      policy: policyDocument(
        airflowHostStatements({
          region: this.env.aws.region,
          airflowSecretArn: airflowSecret.arn,
          kmsKeyArn: this.key.arn,
          submitTokenSecretArn: this.tokens.secrets.submit.arn,
        }),
      ),
    });

    this.database = new DbInstance(this, 'database', {
      identifier,
      engine: 'postgres',
      engineVersion: db.engineVersion,
      instanceClass: db.instanceClass,
      allocatedStorage: db.allocatedStorageGb,
      ...(db.maxAllocatedStorageGb !== undefined ? { maxAllocatedStorage: db.maxAllocatedStorageGb } : {}),
      storageType: 'gp3',
      storageEncrypted: true,
      kmsKeyId: this.key.arn,
      dbName: db.databaseName,
      username: db.masterUsername,
      manageMasterUserPassword: true,
      masterUserSecretKmsKeyId: this.key.arn,
      iamDatabaseAuthenticationEnabled: true,
      port: POSTGRES_PORT,
      dbSubnetGroupName: subnets.name,
      parameterGroupName: parameters.name,
      vpcSecurityGroupIds: [firewall.id],
      publiclyAccessible: false,
      multiAz: db.multiAz,
      backupRetentionPeriod: db.backupRetentionDays,
      backupWindow: '02:00-03:00',
      maintenanceWindow: 'sun:03:30-sun:04:30',
      copyTagsToSnapshot: true,
      deletionProtection: db.deletionProtection,
      // A protected database leaves a final snapshot behind if it is ever destroyed; a throwaway one does not.
      // The name carries the time the database was created (kept by ignore_changes below), so tearing
      // down a second incarnation of the environment does not collide with the first one's snapshot.
      skipFinalSnapshot: !db.deletionProtection,
      ...(db.deletionProtection
        ? { finalSnapshotIdentifier: `${identifier}-final-${Fn.formatdate('YYYYMMDDhhmmss', Fn.timestamp())}` }
        : {}),
      autoMinorVersionUpgrade: true,
      applyImmediately: !this.env.production,
      enabledCloudwatchLogsExports: ['postgresql', 'upgrade'],
      ...(db.performanceInsights
        ? {
            performanceInsightsEnabled: true,
            performanceInsightsKmsKeyId: this.key.arn,
            performanceInsightsRetentionPeriod: 7,
          }
        : {}),
      // Destroyed first in its stack: when RDS refuses (deletion protection), nothing else of the stack is
      // gone yet (the ingress rules would otherwise go in parallel and cut every client off). Where deletion
      // protection is on, Terraform itself refuses to plan the destroy.
      dependsOn: [
        alias,
        executorSecret,
        airflowSecret,
        airflowPolicy,
        ...Object.values(this.tokens.secrets),
        this.tokens.secretKey,
        ...ingress,
      ],
      lifecycle: {
        preventDestroy: db.deletionProtection,
        ...(db.deletionProtection ? { ignoreChanges: ['final_snapshot_identifier'] } : {}),
      },
    });

    this.connection = {
      executorSecretArn: executorSecret.arn,
      airflowSecretArn: airflowSecret.arn,
      host: this.database.address,
      port: POSTGRES_PORT,
      name: db.databaseName,
      secretArn: this.database.masterUserSecret.get(0).secretArn,
      kmsKeyArn: this.key.arn,
    };
    new TerraformOutput(this, 'database_endpoint', { value: this.database.endpoint });
    new TerraformOutput(this, 'database_secret_arn', { value: this.connection.secretArn });
    new TerraformOutput(this, 'database_executor_secret_arn', { value: executorSecret.arn });
    new TerraformOutput(this, 'database_airflow_secret_arn', { value: airflowSecret.arn });
    new TerraformOutput(this, 'airflow_environment', {
      description: 'Environment of the Airflow components (docs/deployment-secrets.md); no secret values',
      value: airflowEnvironment({
        env: this.env,
        database: { ...this.connection, airflowSecretArn: airflowSecret.arn },
        submitTokenSecretArn: this.tokens.secrets.submit.arn,
      }),
    });
    new TerraformOutput(this, 'airflow_policy_arn', {
      description: "Attach to the Airflow hosts' role (docs/deployment-secrets.md)",
      value: airflowPolicy.arn,
    });
    new TerraformOutput(this, 'airflow_security_group_id', {
      description: 'Put the Airflow hosts in it: the database and the executor let it in',
      value: network.securityGroups.airflow.id,
    });
  }
}
