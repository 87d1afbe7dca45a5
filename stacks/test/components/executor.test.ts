import { EcsService } from '@cdktf/provider-aws/lib/ecs-service/index.js';
import { Lb } from '@cdktf/provider-aws/lib/lb/index.js';
import { onlyResource, resources, synthEnvironment } from '../support/synth.ts';

const dev = synthEnvironment('dev');
const executor = dev.get('executor');

describe('executor stack (ECS Fargate)', () => {
  it('exists only where the executor does not run on Nomad', () => {
    expect(dev.stacks.executor).toBeDefined();
    expect(synthEnvironment('staging').byName.has('staging-executor')).toBe(false);
  });

  it('runs the service on Fargate in the private subnets behind an internal load balancer', () => {
    expect(executor.json).toHaveResourceWithProperties(Lb, {
      internal: true,
      load_balancer_type: 'application',
      drop_invalid_header_fields: true,
    });
    expect(executor.json).toHaveResourceWithProperties(EcsService, {
      launch_type: 'FARGATE',
      desired_count: 1,
      network_configuration: expect.objectContaining({ assign_public_ip: false }),
      deployment_circuit_breaker: { enable: true, rollback: true },
    });
  });

  it("hands the service its own database role's secret by ARN (read and re-read by the service), TLS verified", () => {
    const task = onlyResource(executor.tf, 'aws_ecs_task_definition');
    const [container] = JSON.parse(String(task['container_definitions'])) as Record<string, unknown>[];
    expect(container!['secrets']).toEqual([
      { name: 'NOMAD_TOKEN', valueFrom: expect.stringMatching(/:secret:airfleet\/dev\/nomad-executor-token$/) },
      { name: 'AIRFLEET_TLS_CERT', valueFrom: expect.stringMatching(/:secret:airfleet\/dev\/executor-tls:cert::$/) },
      { name: 'AIRFLEET_TLS_KEY', valueFrom: expect.stringMatching(/:secret:airfleet\/dev\/executor-tls:key::$/) },
      // The executor's own Nomad client certificate, beside (not among) the client pools'.
      {
        name: 'AIRFLEET_NOMAD_CACERT_PEM',
        valueFrom: expect.stringMatching(/:parameter\/airfleet\/dev\/nomad-tls\/ca\.pem$/),
      },
      {
        name: 'AIRFLEET_NOMAD_CLIENT_CERT_PEM',
        valueFrom: expect.stringMatching(/:parameter\/airfleet\/dev\/nomad-tls\/executor\/client\.pem$/),
      },
      {
        name: 'AIRFLEET_NOMAD_CLIENT_KEY_PEM',
        valueFrom: expect.stringMatching(/:parameter\/airfleet\/dev\/nomad-tls\/executor\/client-key\.pem$/),
      },
    ]);
    const env = Object.fromEntries(
      (container!['environment'] as { name: string; value: string }[]).map((e) => [e.name, e.value]),
    );
    expect(env['PGHOST']).toMatch(/cross-stack-reference-input-dev-data/);
    expect(env).toMatchObject({
      PGSSLMODE: 'verify-full',
      PGSSLROOTCERT: '/opt/airfleet/rds-ca-bundle.pem',
      AIRFLEET_HOST: '0.0.0.0',
      AIRFLEET_PORT: '8470',
    });
    // The executor's role, not the master secret RDS manages.
    expect(env['AIRFLEET_DATABASE_SECRET_ARN']).toMatch(/executor-database-secret/);
    const policies = Object.values(resources(executor.tf, 'aws_iam_role_policy')).map(
      (p) => JSON.parse(String(p['policy'])) as { Statement: { Sid: string; Resource: unknown }[] },
    );
    const read = policies.flatMap((p) => p.Statement).find((s) => s.Sid === 'ReadDatabaseSecret')!;
    expect(read.Resource).toMatch(/executor-database-secret/);
    expect(JSON.stringify(policies)).not.toMatch(/master_user_secret/);
    expect(JSON.stringify(env)).not.toMatch(/password/i);
    expect(container!['readonlyRootFilesystem']).toBe(true);
    // The image's entrypoint is `tini -- airfleet`: the command starts at the subcommand.
    expect(container!['command']).toEqual(['serve']);
  });

  it('admits callers from the VPC to the load balancer, and only the load balancer to the tasks', () => {
    const ingress = Object.values(resources(executor.tf, 'aws_vpc_security_group_ingress_rule'));
    expect(ingress.map((r) => [r['from_port'], r['cidr_ipv4'] ?? 'group'])).toEqual(
      expect.arrayContaining([
        [80, '10.40.0.0/16'],
        [8470, 'group'],
      ]),
    );
    // Airflow's hosts by their group, whatever the allowed CIDRs.
    const fromAirflow = ingress.find((r) => r['description'] === 'Executor API from the Airflow components');
    expect(fromAirflow).toMatchObject({ from_port: 80, to_port: 80 });
    expect(fromAirflow!['referenced_security_group_id']).toMatch(/cross-stack-reference-input-dev-network/);
  });

  it('lets the execution role read exactly the Nomad token and TLS secrets, and the Nomad TLS parameters', () => {
    const policies = Object.values(resources(executor.tf, 'aws_iam_role_policy')).map(
      (p) => JSON.parse(String(p['policy'])) as { Statement: { Sid: string; Resource: unknown }[] },
    );
    const read = policies.flatMap((p) => p.Statement).find((s) => s.Sid === 'ReadSecrets')!;
    expect(read.Resource).toEqual([
      expect.stringMatching(/:secret:airfleet\/dev\/nomad-executor-token-\?{6}$/),
      expect.stringMatching(/:secret:airfleet\/dev\/executor-tls-\?{6}$/),
    ]);
    const statements = policies.flatMap((p) => p.Statement) as Array<Record<string, unknown>>;
    const nomadTls = statements.find((s) => s['Sid'] === 'ReadNomadTls')!;
    expect(nomadTls['Resource']).toEqual([
      expect.stringMatching(/:parameter\/airfleet\/dev\/nomad-tls\/ca\.pem$/),
      expect.stringMatching(/:parameter\/airfleet\/dev\/nomad-tls\/executor\/client\.pem$/),
      expect.stringMatching(/:parameter\/airfleet\/dev\/nomad-tls\/executor\/client-key\.pem$/),
    ]);
    // No pool's certificate: the executor cannot pose as a Nomad client.
    expect(JSON.stringify(statements)).not.toMatch(/nomad-tls\/pools\//);
    const decrypt = statements.find((s) => s['Sid'] === 'DecryptNomadTls')!;
    expect(decrypt['Condition']).toMatchObject({
      StringLike: { 'kms:EncryptionContext:PARAMETER_ARN': nomadTls['Resource'] },
    });
  });

  it('sends the load balancer to the tasks over HTTPS, health checks too', () => {
    expect(onlyResource(executor.tf, 'aws_lb_target_group')).toMatchObject({
      protocol: 'HTTPS',
      health_check: expect.objectContaining({ protocol: 'HTTPS', path: '/healthz' }),
    });
  });

  it('hands the service its API token secrets by ARN and lets the task role read and fill exactly those', () => {
    const task = onlyResource(executor.tf, 'aws_ecs_task_definition');
    const [container] = JSON.parse(String(task['container_definitions'])) as Record<string, unknown>[];
    const env = Object.fromEntries(
      (container!['environment'] as { name: string; value: string }[]).map((e) => [e.name, e.value]),
    );
    for (const kind of ['ADMIN', 'SUBMIT', 'ENROLL']) {
      expect(env[`AIRFLEET_${kind}_TOKEN_SECRET_ARN`]).toMatch(/cross-stack-reference-input-dev-data/);
    }
    // The key sealing secretEnv, by ARN like the tokens: a service on PostgreSQL without one refuses secretEnv.
    expect(env['AIRFLEET_SECRET_KEY_SECRET_ARN']).toMatch(/cross-stack-reference-input-dev-data/);
    expect(env['AIRFLEET_BACKENDS']).toBe('pool,batch,nomad');
    expect(env['AIRFLEET_BATCH_LOG_GROUP']).toBe('/airfleet/dev/batch');
    const policies = Object.values(resources(executor.tf, 'aws_iam_role_policy')).map(
      (p) => JSON.parse(String(p['policy'])) as { Statement: { Sid: string; Action: unknown; Resource: unknown }[] },
    );
    const fill = policies.flatMap((p) => p.Statement).find((s) => s.Sid === 'ReadAndFillTokenSecrets')!;
    expect(fill.Action).toEqual(['secretsmanager:GetSecretValue', 'secretsmanager:PutSecretValue']);
    expect(fill.Resource).toEqual(
      ['admin-token', 'submit-token', 'enroll-token', 'secret-key'].map((n) =>
        expect.stringMatching(new RegExp(`:secret:airfleet/dev/${n}-\\?{6}$`)),
      ),
    );
  });

  it("hands the batch backend its queues and the job definition of each queue's platform", () => {
    const task = onlyResource(executor.tf, 'aws_ecs_task_definition');
    const [container] = JSON.parse(String(task['container_definitions'])) as Record<string, unknown>[];
    const env = Object.fromEntries(
      (container!['environment'] as { name: string; value: string }[]).map((e) => [e.name, e.value]),
    );
    expect(env).toMatchObject({
      AWS_REGION: expect.any(String),
      AIRFLEET_ENVIRONMENT: 'dev',
      AIRFLEET_BATCH_RESOURCE_PREFIX: 'airfleet-dev-',
      AIRFLEET_BATCH_JOB_QUEUE: 'airfleet-dev-default',
      AIRFLEET_BATCH_JOB_DEFINITION: 'airfleet-dev-task-runner-ec2',
    });
    // dev's light queue runs on Fargate Spot: it takes the Fargate job definition.
    expect(JSON.parse(env['AIRFLEET_BATCH_QUEUES']!)).toMatchObject({
      default: { jobQueue: 'airfleet-dev-default', jobDefinition: 'airfleet-dev-task-runner-ec2' },
      light: { jobQueue: 'airfleet-dev-light', jobDefinition: 'airfleet-dev-task-runner-fargate' },
    });
  });

  it("lets the task role stop only its environment's Batch jobs (by tag) and manage only its per-attempt secrets", () => {
    const statements = Object.values(resources(executor.tf, 'aws_iam_role_policy')).flatMap(
      (p) =>
        (
          JSON.parse(String(p['policy'])) as {
            Statement: { Sid: string; Action: unknown; Resource: unknown; Condition?: unknown }[];
          }
        ).Statement,
    );
    expect(statements.find((s) => s.Sid === 'StopOwnBatchJobs')).toMatchObject({
      Action: ['batch:CancelJob', 'batch:TerminateJob'],
      Condition: { StringEquals: { 'aws:ResourceTag/airfleet:resource-prefix': 'airfleet-dev-' } },
    });
    expect(statements.find((s) => s.Sid === 'TagNewBatchJobs')).toMatchObject({
      Action: 'batch:TagResource',
      Condition: { StringEquals: { 'aws:RequestTag/airfleet:resource-prefix': 'airfleet-dev-' } },
    });
    // No statement allows stopping jobs without the condition.
    expect(
      statements.filter((s) => JSON.stringify(s.Action).includes('TerminateJob') && s.Condition === undefined),
    ).toEqual([]);
    const secrets = statements.find((s) => s.Sid === 'ManageAttemptSecrets')!;
    expect(secrets.Action).toEqual(
      expect.arrayContaining(['secretsmanager:CreateSecret', 'secretsmanager:DeleteSecret']),
    );
    expect(secrets.Resource).toMatch(/:secret:airfleet-dev-attempts\/\*$/);
  });

  it('passes every guard', () => {
    expect(executor.errors).toEqual([]);
  });
});
