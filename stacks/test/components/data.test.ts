import { DbInstance } from '@cdktf/provider-aws/lib/db-instance/index.js';
import { DbParameterGroup } from '@cdktf/provider-aws/lib/db-parameter-group/index.js';
import { KmsKey } from '@cdktf/provider-aws/lib/kms-key/index.js';
import { onlyResource, resources, synthEnvironment } from '../support/synth.ts';

const dev = synthEnvironment('dev').get('data');
const prod = synthEnvironment('prod').get('data');

describe('data stack', () => {
  it('runs PostgreSQL encrypted with its own rotating KMS key, private, with an RDS-managed master secret', () => {
    expect(dev.json).toHaveResourceWithProperties(KmsKey, { enable_key_rotation: true });
    const db = onlyResource(dev.tf, 'aws_db_instance');
    expect(db).toMatchObject({
      engine: 'postgres',
      engine_version: '16.4',
      storage_encrypted: true,
      publicly_accessible: false,
      manage_master_user_password: true,
      iam_database_authentication_enabled: true,
    });
    expect(db['kms_key_id']).toMatch(/^\$\{aws_kms_key\.database-key\.arn\}$/);
    expect(db['master_user_secret_kms_key_id']).toBe(db['kms_key_id']);
    // Never a password in the configuration (or the state).
    expect(db).not.toHaveProperty('password');
  });

  it('forces TLS through the parameter group of the engine major version', () => {
    expect(dev.json).toHaveResourceWithProperties(DbParameterGroup, {
      family: 'postgres16',
      parameter: expect.arrayContaining([expect.objectContaining({ name: 'rds.force_ssl', value: '1' })]),
    });
  });

  it('places the database in the private subnets of the network stack', () => {
    const group = onlyResource(dev.tf, 'aws_db_subnet_group');
    expect(group['subnet_ids']).toHaveLength(2);
    for (const id of group['subnet_ids'] as string[])
      expect(id).toMatch(/terraform_remote_state\.cross-stack-reference-input-dev-network/);
  });

  it("admits PostgreSQL only from the four compute security groups and Airflow's, by reference", () => {
    const rules = Object.values(resources(dev.tf, 'aws_vpc_security_group_ingress_rule'));
    expect(rules.map((r) => r['description']).sort()).toEqual(
      ['airflow', 'batch', 'executor', 'nomadClients', 'workers'].map((name) => `PostgreSQL from ${name}`),
    );
    for (const rule of rules) {
      expect(rule).toMatchObject({ ip_protocol: 'tcp', from_port: 5432, to_port: 5432 });
      expect(rule).not.toHaveProperty('cidr_ipv4');
      expect(rule['referenced_security_group_id']).toMatch(/cross-stack-reference-input-dev-network/);
    }
  });

  it('is Multi-AZ with backups, deletion protection and a final snapshot in prod', () => {
    expect(prod.json).toHaveResourceWithProperties(DbInstance, {
      multi_az: true,
      backup_retention_period: 14,
      deletion_protection: true,
      skip_final_snapshot: false,
      performance_insights_enabled: true,
    });
    // Named for the time the database was created (then kept), so a second teardown does not collide.
    const db = onlyResource(prod.tf, 'aws_db_instance');
    expect(db['final_snapshot_identifier']).toBe(
      'airfleet-prod-postgres-final-${formatdate("YYYYMMDDhhmmss", timestamp())}',
    );
    expect(db['lifecycle']).toEqual({ prevent_destroy: true, ignore_changes: ['final_snapshot_identifier'] });
    expect(dev.json).toHaveResourceWithProperties(DbInstance, {
      multi_az: false,
      deletion_protection: false,
      skip_final_snapshot: true,
    });
  });

  it('passes every guard', () => {
    expect(dev.errors).toEqual([]);
    expect(prod.errors).toEqual([]);
  });

  it('destroys the database before anything else of its stack, so a refused destroy removes nothing', () => {
    // moto refuses to delete a protected instance like RDS does; the walkthrough suite
    // (integration/test/deploy-walkthrough.test.ts) checks that the rules survive such a refusal.
    const db = onlyResource(dev.tf, 'aws_db_instance');
    const others = Object.entries(dev.tf.resource ?? {}).flatMap(([type, byName]) =>
      type === 'aws_db_instance' ? [] : Object.keys(byName).map((name) => `${type}.${name}`),
    );
    const upstream = JSON.stringify(db);
    const notBefore = others.filter((address) => !upstream.includes(address));
    expect(notBefore).toEqual([]);
    expect(db['depends_on']).toEqual(
      expect.arrayContaining([
        'aws_kms_alias.database-key-alias',
        ...Object.keys(resources(dev.tf, 'aws_vpc_security_group_ingress_rule')).map(
          (name) => `aws_vpc_security_group_ingress_rule.${name}`,
        ),
      ]),
    );
    // Protected databases (and their key) cannot even be planned for destruction.
    expect(onlyResource(prod.tf, 'aws_kms_key')['lifecycle']).toEqual({ prevent_destroy: true });
    expect(db['lifecycle']).toEqual({ prevent_destroy: false });
  });

  it('creates the API token secrets and the secretEnv key with no value: none is in the state', () => {
    const secrets = Object.values(resources(dev.tf, 'aws_secretsmanager_secret'));
    expect(secrets.map((s) => s['name']).sort()).toEqual([
      'airfleet/dev/admin-token',
      'airfleet/dev/database-airflow',
      'airfleet/dev/database-executor',
      'airfleet/dev/enroll-token',
      'airfleet/dev/secret-key',
      'airfleet/dev/submit-token',
    ]);
    expect(resources(dev.tf, 'aws_secretsmanager_secret_version')).toEqual({});
    expect(secrets.every((s) => s['recovery_window_in_days'] === 0)).toBe(true);
    expect(
      Object.values(resources(prod.tf, 'aws_secretsmanager_secret')).map((s) => s['recovery_window_in_days']),
    ).toEqual([30, 30, 30, 30, 30, 30]);
  });
});
