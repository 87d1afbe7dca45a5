import {
  CreateSecretCommand,
  GetSecretValueCommand,
  PutSecretValueCommand,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import pino from 'pino';
import { generateApiToken, tokenFromSecret } from '../../executor/src/service/token-secrets.ts';
import { parseToken } from '../../executor/src/store/tokens.ts';
import { ServiceProcess } from '../src/airfleet-process.ts';
import { motoAvailability, type StartedMoto, startMoto } from '../src/moto.ts';
import { MOTO_CREDENTIALS, MOTO_REGION } from '../src/moto-batch.ts';

// The deployment's API tokens in Secrets Manager (moto): the stacks create the secrets empty, the service
// fills them on its first start and registers them; rotation is a new value, a restart and a revoke
// (docs/deployment-secrets.md).

const moto = motoAvailability();
if (!moto.ok) console.warn(`token-secrets: skipped: ${moto.reason}`);
const describeMoto = moto.ok ? describe : describe.skip;

describeMoto('API token secrets (moto Secrets Manager)', () => {
  let server: StartedMoto;
  let secrets: SecretsManagerClient;
  let service: ServiceProcess;
  const arns: Record<string, string> = {};
  let keyArn = '';

  const secretValue = async (arn: string) =>
    (await secrets.send(new GetSecretValueCommand({ SecretId: arn }))).SecretString!;
  const status = async (token: string, path = '/v1/workloads') =>
    (await fetch(`${service.url}${path}`, { headers: { authorization: `Bearer ${token}` } })).status;

  beforeAll(async () => {
    server = await startMoto();
    secrets = new SecretsManagerClient({
      region: MOTO_REGION,
      endpoint: server.endpoint,
      credentials: MOTO_CREDENTIALS,
    });
    for (const kind of ['admin', 'submit', 'enroll']) {
      // As the data stack creates them: a name, no value.
      const created = await secrets.send(new CreateSecretCommand({ Name: `airfleet/test/${kind}-token` }));
      arns[kind] = created.ARN!;
    }
    // The secretEnv key's secret, as the data stack creates it: empty too.
    keyArn = (await secrets.send(new CreateSecretCommand({ Name: 'airfleet/test/secret-key' }))).ARN!;
    service = await ServiceProcess.start({
      env: {
        AIRFLEET_SECRET_KEY_SECRET_ARN: keyArn,
        AIRFLEET_ADMIN_TOKEN_SECRET_ARN: arns['admin']!,
        AIRFLEET_SUBMIT_TOKEN_SECRET_ARN: arns['submit']!,
        AIRFLEET_ENROLL_TOKEN_SECRET_ARN: arns['enroll']!,
        AWS_ENDPOINT_URL: server.endpoint,
        AWS_REGION: MOTO_REGION,
        AWS_ACCESS_KEY_ID: MOTO_CREDENTIALS.accessKeyId,
        AWS_SECRET_ACCESS_KEY: MOTO_CREDENTIALS.secretAccessKey,
      },
    });
  }, 120_000);
  afterAll(async () => {
    await service?.stop();
    await server?.stop();
  });

  it('fills the empty secrets on first start, with tokens of the right scopes, and keeps them on restart', async () => {
    const first = Object.fromEntries(
      await Promise.all(Object.entries(arns).map(async ([kind, arn]) => [kind, await secretValue(arn)] as const)),
    );
    for (const token of Object.values(first)) expect(parseToken(token)?.prefix).toBe('aft');
    expect(new Set(Object.values(first)).size).toBe(3);
    expect(await status(first['admin']!, '/v1/tokens')).toBe(200);
    expect(await status(first['submit']!)).toBe(200); // read
    expect(await status(first['submit']!, '/v1/tokens')).toBe(403); // not admin
    expect(await status(first['enroll']!)).toBe(403); // enroll only registers workers

    await service.restart('SIGTERM');
    for (const [kind, arn] of Object.entries(arns)) expect(await secretValue(arn)).toBe(first[kind]);
    expect(await status(first['admin']!, '/v1/tokens')).toBe(200);
  }, 120_000);

  it('rotates a token: new value in the secret, restart, revoke the old one (old refused, new works)', async () => {
    const admin = await secretValue(arns['admin']!);
    const old = await secretValue(arns['submit']!);
    const rotated = generateApiToken();
    await secrets.send(new PutSecretValueCommand({ SecretId: arns['submit']!, SecretString: rotated }));
    await service.restart('SIGTERM'); // ECS: a new deployment; Nomad: the job restarted
    expect(await status(rotated)).toBe(200);
    expect(await status(old)).toBe(200); // until revoked: clients move over first
    const revoke = await fetch(`${service.url}/v1/tokens/${parseToken(old)!.id}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${admin}` },
    });
    expect(revoke.status).toBeLessThan(300);
    // Verified tokens are cached for up to 10 s (executor/src/service/tokens.ts): wait for the refusal.
    const deadline = Date.now() + 30_000;
    while ((await status(old)) !== 401 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 500));
    expect(await status(old)).toBe(401);
    expect(await status(rotated)).toBe(200);
  }, 120_000);

  it('fills the empty secretEnv key secret once; workloads sealed under it run, before and after a restart', async () => {
    const key = await secretValue(keyArn);
    expect(Buffer.from(key, 'base64')).toHaveLength(32);
    const admin = await secretValue(arns['admin']!);
    const api = (method: string, path: string, body?: unknown) =>
      fetch(`${service.url}${path}`, {
        method,
        headers: { authorization: `Bearer ${admin}`, ...(body ? { 'content-type': 'application/json' } : {}) },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
    const runSealed = async (key: string) => {
      const submitted = await api('POST', '/v1/workloads', {
        key,
        backend: 'local',
        command: ['sh', '-c', 'printf "%s" "$SEALED" | wc -c'],
        secretEnv: { SEALED: 'twelve-chars' },
      });
      expect(submitted.status).toBe(201);
      const created = (await submitted.json()) as { id: string };
      expect(JSON.stringify(created)).not.toContain('twelve-chars');
      let state = '';
      for (let i = 0; i < 300 && !['succeeded', 'failed'].includes(state); i++) {
        state = ((await (await api('GET', `/v1/workloads/${created.id}`)).json()) as { state: string }).state;
        if (!['succeeded', 'failed'].includes(state)) await new Promise((r) => setTimeout(r, 100));
      }
      expect(state).toBe('succeeded');
      const log = (await (await api('GET', `/v1/workloads/${created.id}/logs?stream=stdout`)).json()) as {
        data: string;
      };
      return Buffer.from(log.data, 'base64').toString().trim();
    };
    expect(await runSealed('sealed-before')).toBe('12');
    await service.restart('SIGTERM');
    expect(await secretValue(keyArn)).toBe(key); // kept, not replaced
    expect(await runSealed('sealed-after')).toBe('12');
  }, 120_000);

  it('two instances filling one empty secret at once end up with the same token', async () => {
    const { ARN } = await secrets.send(new CreateSecretCommand({ Name: 'airfleet/test/race-token' }));
    const logger = pino({ level: 'silent' });
    const [a, b] = await Promise.all([
      tokenFromSecret(secrets, ARN!, logger, 'race'),
      tokenFromSecret(secrets, ARN!, logger, 'race'),
    ]);
    expect(a).toBe(b);
    expect(await secretValue(ARN!)).toBe(a);
  }, 60_000);
});
