import { BatchJobDefinition } from '@cdktf/provider-aws/lib/batch-job-definition/index.js';
import { DataAwsSecretsmanagerSecretVersion } from '@cdktf/provider-aws/lib/data-aws-secretsmanager-secret-version/index.js';
import { DbInstance } from '@cdktf/provider-aws/lib/db-instance/index.js';
import { LaunchTemplate } from '@cdktf/provider-aws/lib/launch-template/index.js';
import { Fn } from 'cdktf';
import { plaintextSecrets } from '../../src/guards/plaintext-secrets.ts';
import { isSecretName, secretMaterialIn } from '../../src/guards/secret-patterns.ts';
import { findingsOf, fullSynth, guardedStack, resource, statusOf } from '../support/guarded-stack.ts';

const rule = plaintextSecrets;
const base64 = (text: string) => Buffer.from(text).toString('base64');
const encrypted = [{ deviceName: '/dev/xvda', ebs: { encrypted: 'true' } }];

describe('AF-PLAINTEXT-SECRETS', () => {
  describe('synth', () => {
    it('passes a managed master password and secrets passed by reference (compliant)', () => {
      const stack = guardedStack([rule]);
      new DbInstance(stack, 'db', {
        engine: 'postgres',
        instanceClass: 'db.t4g.micro',
        manageMasterUserPassword: true,
      });
      new BatchJobDefinition(stack, 'job', {
        name: 'job',
        type: 'container',
        containerProperties: JSON.stringify({
          image: 'busybox',
          environment: [{ name: 'TOKEN_FILE', value: '/run/secrets/token' }],
          secrets: [{ name: 'API_TOKEN', valueFrom: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:api' }],
        }),
      });
      new LaunchTemplate(stack, 'lt', {
        blockDeviceMappings: encrypted,
        userData: base64('#!/bin/bash\nTOKEN=$(curl -X PUT http://169.254.169.254/latest/api/token)\n'),
      });
      expect(() => fullSynth(stack)).not.toThrow();
    });

    it('fails the synth when a token secret would be read into the state (non-compliant)', () => {
      const stack = guardedStack([rule]);
      new DataAwsSecretsmanagerSecretVersion(stack, 'admin', { secretId: 'airfleet/dev/admin-token' });
      expect(() => fullSynth(stack)).toThrow(
        /\[AF-PLAINTEXT-SECRETS\] data\.aws_secretsmanager_secret_version\.admin: reads a secret value into the state/,
      );
    });

    it('fails the synth on a literal database password (non-compliant)', () => {
      const stack = guardedStack([rule]);
      new DbInstance(stack, 'db', { engine: 'postgres', instanceClass: 'db.t4g.micro', password: 'hunter2hunter2' });
      expect(() => fullSynth(stack)).toThrow(
        /\[AF-PLAINTEXT-SECRETS\] aws_db_instance\.db: password is set, so the secret is kept in the state/,
      );
    });

    it('fails the synth on a secret in a container environment (non-compliant)', () => {
      const stack = guardedStack([rule]);
      new BatchJobDefinition(stack, 'job', {
        name: 'job',
        type: 'container',
        containerProperties: JSON.stringify({ image: 'x', environment: [{ name: 'DB_PASSWORD', value: 'hunter2' }] }),
      });
      expect(() => fullSynth(stack)).toThrow(/container_properties\.environment sets DB_PASSWORD in plain text/);
    });

    it('fails the synth on a private key in user data, and on user data it cannot read (non-compliant)', () => {
      const stack = guardedStack([rule]);
      new LaunchTemplate(stack, 'keyed', {
        blockDeviceMappings: encrypted,
        userData: base64('write_files:\n- content: "-----BEGIN RSA PRIVATE KEY-----\\nMIIE..."\n'),
      });
      new LaunchTemplate(stack, 'opaque', { blockDeviceMappings: encrypted, userData: Fn.base64encode(`\${var.x}`) });
      expect(() => fullSynth(stack)).toThrow(
        /aws_launch_template\.keyed: user_data contains a PEM private key[\s\S]*aws_launch_template\.opaque: user_data is only known at apply time/,
      );
    });
  });

  describe('rule', () => {
    it('refuses resources that keep a secret in the state', () => {
      for (const [type, config] of [
        ['aws_secretsmanager_secret_version', { secret_id: 'x', secret_string: `\${random_password.p.result}` }],
        ['aws_ssm_parameter', { name: '/x', type: 'SecureString', value: 'v' }],
        ['nomad_acl_token', { type: 'client' }],
        ['aws_iam_access_key', { user: 'u' }],
      ] as const) {
        expect(statusOf(rule.evaluate(resource(type, config)))).toBe('non-compliant');
      }
      expect(statusOf(rule.evaluate(resource('aws_ssm_parameter', { name: '/x', type: 'String', value: 'url' })))).toBe(
        'compliant',
      );
    });

    it('refuses data sources that read a secret value into the state', () => {
      const data = (type: string, config: Record<string, unknown>) => ({
        kind: 'data' as const,
        type,
        name: 'd',
        config,
      });
      for (const [type, config] of [
        ['aws_secretsmanager_secret_version', { secret_id: 'airfleet/dev/admin-token' }],
        ['aws_ssm_parameter', { name: '/airfleet/dev/nomad/tls/client-key.pem' }],
        ['aws_kms_secrets', { secret: [] }],
        ['nomad_acl_token', { accessor_id: 'x' }],
        ['nomad_variable', { path: 'nomad/jobs/x' }],
      ] as const) {
        expect(statusOf(rule.evaluate(data(type, config)))).toBe('non-compliant');
      }
      expect(findingsOf(rule.evaluate(data('aws_secretsmanager_secret_version', { secret_id: 'x' })))).toEqual([
        'reads a secret value into the state; hand the secret ARN to whoever needs the value and read it there',
      ]);
      for (const [type, config] of [
        ['aws_ssm_parameter', { name: '/airfleet/dev/executor-url', with_decryption: false }],
        ['aws_secretsmanager_secret', { name: 'airfleet/dev/admin-token' }],
      ] as const) {
        expect(statusOf(rule.evaluate(data(type, config)))).not.toBe('non-compliant');
      }
    });

    it('refuses credentials in provider blocks', () => {
      const aws = rule.evaluate({ kind: 'provider', type: 'aws', config: { region: 'eu-west-1', secret_key: 'abc' } });
      expect(findingsOf(aws)).toEqual([
        'provider aws sets secret_key; credentials come from the environment (profile, role, NOMAD_TOKEN)',
      ]);
      expect(statusOf(rule.evaluate({ kind: 'provider', type: 'nomad', config: { address: 'https://n:4646' } }))).toBe(
        'compliant',
      );
    });

    it('reads jobspecs and HCL2 variables of Nomad jobs', () => {
      const leaky = {
        jobspec: 'job "x" { env { API_TOKEN = "0123456789abcdef" } }',
        hcl2: { vars: { db_password: 'x' } },
      };
      expect(findingsOf(rule.evaluate(resource('nomad_job', leaky)))).toEqual([
        'jobspec contains a literal assignment to a secret-named setting',
        'hcl2.vars sets db_password in plain text; pass it as a secret (valueFrom) instead',
      ]);
      const clean = {
        jobspec: `env { NOMAD_ADDR = "unix://$\${NOMAD_SECRETS_DIR}/api.sock" }`,
        hcl2: { vars: { database_secret_arn: 'arn' } },
      };
      expect(statusOf(rule.evaluate(resource('nomad_job', clean)))).toBe('compliant');
    });

    it('fails closed on container definitions that are not JSON', () => {
      expect(
        statusOf(
          rule.evaluate(resource('aws_ecs_task_definition', { container_definitions: `\${jsonencode(local.c)}` })),
        ),
      ).toBe('non-compliant');
    });
  });

  describe('recognisers', () => {
    it('flag secret values, not mentions of where secrets are', () => {
      expect(secretMaterialIn('AKIAABCDEFGHIJKLMNOP')).toEqual(['an AWS access key id']);
      expect(secretMaterialIn('password = "correct-horse"')).toEqual([
        'a literal assignment to a secret-named setting',
      ]);
      for (const harmless of [
        'AIRFLEET_WORKER_TOKEN_FILE=/run/secrets/airfleet-worker-token',
        '-v /run/airfleet/worker-token:/run/secrets/airfleet-worker-token:ro',
        'aws secretsmanager get-secret-value --secret-id x',
        'TOKEN=$(curl -s -X PUT http://169.254.169.254/latest/api/token)',
        'docker login --username AWS --password-stdin "$registry"',
        'key_file = "/etc/nomad.d/tls/client-key.pem"',
      ]) {
        expect(secretMaterialIn(harmless)).toEqual([]);
      }
    });

    it('tell secret names from names that point at secrets', () => {
      expect(['DB_PASSWORD', 'NOMAD_TOKEN', 'api_key', 'AWS_SECRET_ACCESS_KEY'].map(isSecretName)).toEqual([
        true,
        true,
        true,
        true,
      ]);
      expect(
        ['TOKEN_FILE', 'DATABASE_SECRET_ARN', 'SECRET_NAME', 'PASSWORD_PARAMETER', 'TOKENIZER'].map(isSecretName),
      ).toEqual([false, false, false, false, false]);
    });
  });
});
