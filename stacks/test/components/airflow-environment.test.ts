import { onlyResource, resources, synthEnvironment } from '../support/synth.ts';

// What an Airflow deployment reads from the data stack: the `airflow_environment` output.
const dev = synthEnvironment('dev').get('data');
const prod = synthEnvironment('prod').get('data');

/** `${aws_secretsmanager_secret.<id>.arn}` of the secret with this name. */
const secretArn = (tf: typeof dev.tf, name: string) => {
  const [id] = Object.entries(resources(tf, 'aws_secretsmanager_secret')).find(([, s]) => s['name'] === name)!;
  return `\${aws_secretsmanager_secret.${id}.arn}`;
};
const output = (tf: typeof dev.tf, name: string) =>
  (tf.output?.[name] as { value: Record<string, string> } | undefined)?.value;

describe('airflow_environment output (data stack)', () => {
  it("creates the Airflow role's secret empty, encrypted with the database key", () => {
    const secret = Object.values(resources(dev.tf, 'aws_secretsmanager_secret')).find(
      (s) => s['name'] === 'airfleet/dev/database-airflow',
    );
    expect(secret?.['kms_key_id']).toBe('${aws_kms_key.database-key.arn}');
    // No value through Terraform: no secret version at all in the stack.
    expect(dev.tf.resource?.['aws_secretsmanager_secret_version']).toBeUndefined();
    expect(dev.tf.output?.['database_airflow_secret_arn']).toEqual({
      value: secretArn(dev.tf, 'airfleet/dev/database-airflow'),
    });
  });

  it('gives Airflow both engine URLs as commands reading that secret, TLS verified with the RDS CA', () => {
    const value = output(dev.tf, 'airflow_environment')!;
    const base =
      `airfleet-airflow-db-url --secret-arn ${secretArn(dev.tf, 'airfleet/dev/database-airflow')}` +
      ' --host ${aws_db_instance.database.address} --port 5432 --dbname airfleet' +
      ' --sslrootcert /opt/airfleet/rds-ca-bundle.pem';
    expect(value['AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD']).toBe(base);
    expect(value['AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC_CMD']).toBe(`${base} --async`);
    expect(value['AIRFLOW__AIRFLEET__TOKEN_FILE']).toBe('/run/secrets/airfleet-token');
    expect(value['AIRFLEET_SUBMIT_TOKEN_SECRET_ARN']).toBe(secretArn(dev.tf, 'airfleet/dev/submit-token'));
    // dev runs the executor on ECS: its URL is the executor stack's output, not known here.
    expect(value).not.toHaveProperty('AIRFLOW__AIRFLEET__URL');
  });

  it('names the configured service URL where the executor runs on Nomad', () => {
    const value = output(prod.tf, 'airflow_environment')!;
    expect(value['AIRFLOW__AIRFLEET__URL']).toMatch(/^https:\/\//);
  });

  it("gives the Airflow hosts' role exactly the two secrets, and the key through Secrets Manager only", () => {
    const policy = onlyResource(dev.tf, 'aws_iam_policy');
    expect(policy['name']).toBe('airfleet-dev-airflow');
    const document = JSON.parse(String(policy['policy'])) as { Statement: Record<string, unknown>[] };
    expect(document.Statement).toEqual([
      {
        Sid: 'ReadAirflowDatabaseSecret',
        Effect: 'Allow',
        Action: 'secretsmanager:GetSecretValue',
        Resource: secretArn(dev.tf, 'airfleet/dev/database-airflow'),
      },
      {
        Sid: 'DecryptAirflowDatabaseSecret',
        Effect: 'Allow',
        Action: 'kms:Decrypt',
        Resource: '${aws_kms_key.database-key.arn}',
        Condition: { StringEquals: { 'kms:ViaService': 'secretsmanager.eu-west-1.amazonaws.com' } },
      },
      {
        Sid: 'ReadSubmitToken',
        Effect: 'Allow',
        Action: 'secretsmanager:GetSecretValue',
        Resource: secretArn(dev.tf, 'airfleet/dev/submit-token'),
      },
    ]);
    expect(dev.tf.output?.['airflow_policy_arn']).toMatchObject({ value: '${aws_iam_policy.airflow-host-policy.arn}' });
    // The group is the network stack's, which the database lets in (data.test.ts).
    expect(dev.tf.output?.['airflow_security_group_id']).toMatchObject({
      value: expect.stringMatching(/cross-stack-reference-input-dev-network/),
    });
  });

  it('holds no secret value: only ARNs of secrets, never their values or the master secret', () => {
    const text = JSON.stringify(output(dev.tf, 'airflow_environment'));
    expect(text).not.toMatch(/secret_version|master_user_secret|password|random_/);
    const references = text.match(/\$\{[^}]+\}/g) ?? [];
    expect(references.length).toBeGreaterThan(0);
    for (const ref of references)
      expect(ref).toMatch(/^\$\{aws_(secretsmanager_secret\.[^.]+\.arn|db_instance\.database\.address)\}$/);
    expect(dev.errors).toEqual([]);
  });
});
