import { configFromEnv, parseServiceConfig } from '../../src/config.ts';
import { canTransition, decideAfterFailure, isInfraRetryable, transitionsBetween } from '../../src/domain/states.ts';
import { workloadInput } from '../../src/domain/workload.ts';

describe('state machine', () => {
  it('allows the documented path and nothing out of a final state', () => {
    expect(canTransition('queued', 'submitting')).toBe(true);
    expect(canTransition('submitting', 'pending')).toBe(true);
    expect(canTransition('pending', 'running')).toBe(true);
    expect(canTransition('running', 'succeeded')).toBe(true);
    // A started task is never re-run by the service: out of `running` back to the queue only by the worker's
    // own word that it never started the task.
    expect(transitionsBetween('running', 'queued')).toEqual(['handBack']);
    for (const final of ['succeeded', 'failed', 'cancelled'] as const) {
      expect(canTransition(final, 'queued')).toBe(false);
      expect(canTransition(final, 'running')).toBe(false);
    }
  });

  it('retries only failures before start, within the bound', () => {
    expect(isInfraRetryable('image_pull', false)).toBe(true);
    expect(isInfraRetryable('lost', true)).toBe(false);
    expect(isInfraRetryable('task_error', false)).toBe(false);
    const base = { reason: 'unschedulable' as const, started: false, attempt: 2, infraRetries: 1, maxInfraRetries: 3 };
    expect(decideAfterFailure(base)).toEqual({ kind: 'retry', nextAttempt: 3 });
    expect(decideAfterFailure({ ...base, infraRetries: 3 })).toEqual({ kind: 'fail' });
    expect(decideAfterFailure({ ...base, reason: 'oom' })).toEqual({ kind: 'fail' });
  });
});

describe('workload validation', () => {
  it('applies defaults', () => {
    const w = workloadInput.parse({ key: 'k', command: ['echo'] });
    expect(w).toMatchObject({ queue: 'default', backend: 'pool', poolSlots: 1, priorityWeight: 1, env: {} });
  });

  it('names each field and rule that fails', () => {
    const result = workloadInput.safeParse({
      key: '',
      command: [],
      poolSlots: 0,
      queue: 'bad queue',
      env: { 'BAD-NAME': 'x' },
      extra: 1,
    });
    expect(result.success).toBe(false);
    const issues = result.error!.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    expect(issues).toEqual(
      expect.arrayContaining([
        'key: key must not be empty',
        'command: command needs at least the program to run',
        'poolSlots: poolSlots must be at least 1',
        'queue: queue may contain only letters, digits and _ . : @ / -',
      ]),
    );
    expect(issues.some((i) => i.includes('BAD-NAME') || i.startsWith('env'))).toBe(true);
    expect(issues.some((i) => i.includes('extra'))).toBe(true);
  });
});

describe('service configuration', () => {
  it('lists every bad value at once, naming the field', () => {
    expect(() => parseServiceConfig({ port: 70_000, heartbeatTimeoutMs: 5, logLevel: 'loud' as 'info' })).toThrow(
      /port[\s\S]*heartbeatTimeoutMs[\s\S]*logLevel/,
    );
  });

  it('builds the database URL from libpq variables when no URL is given', () => {
    const config = configFromEnv({
      PGHOST: 'db.internal',
      PGPORT: '5433',
      PGDATABASE: 'airfleet',
      PGUSER: 'svc',
      PGPASSWORD: 'p@ss/word',
      PGSSLMODE: 'verify-full',
    });
    expect(config.databaseUrl).toBe('postgres://svc:p%40ss%2Fword@db.internal:5433/airfleet?sslmode=verify-full');
    expect(configFromEnv({ AIRFLEET_DATABASE_URL: 'postgres://a@b/c', PGHOST: 'ignored' }).databaseUrl).toBe(
      'postgres://a@b/c',
    );
  });

  it('takes the CA bundle from PGSSLROOTCERT and the credentials secret by ARN, and says what is missing', () => {
    const arn = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:airfleet/dev/database-executor-AbCdEf';
    const config = parseServiceConfig(
      configFromEnv({
        PGHOST: 'db.internal',
        PGDATABASE: 'airfleet',
        PGSSLMODE: 'verify-full',
        PGSSLROOTCERT: '/opt/airfleet/rds-ca-bundle.pem',
        AIRFLEET_DATABASE_SECRET_ARN: arn,
      }),
    );
    expect(config.databaseUrl).toBe(
      'postgres://db.internal/airfleet?sslmode=verify-full&sslrootcert=%2Fopt%2Fairfleet%2Frds-ca-bundle.pem',
    );
    expect(config.databaseSecretArn).toBe(arn);
    expect(() => parseServiceConfig(configFromEnv({ AIRFLEET_DATABASE_SECRET_ARN: arn }))).toThrow(
      /databaseSecretArn: needs the database it is for: set PGHOST/,
    );
    expect(() => parseServiceConfig(configFromEnv({ PGHOST: 'h', AIRFLEET_DATABASE_SECRET_ARN: 'db-secret' }))).toThrow(
      /databaseSecretArn must be a Secrets Manager secret ARN/,
    );
  });
});
