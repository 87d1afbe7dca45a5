import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { GetPolicyCommand, GetPolicyVersionCommand, IAMClient } from '@aws-sdk/client-iam';
import { motoAvailability, type StartedMoto, startMoto } from '../src/moto.ts';
import { findTerraform, mirroredProviders, PROVIDER_MIRROR, Terraform } from '../src/terraform.ts';

// The deploy path as stacks/README.md documents it, walked on moto from a fresh state with the commands a
// user types (`npx zx scripts/deploy.mjs …`): bootstrap of a state bucket and key, `--plan` of a fresh dev,
// the apply, `--plan` again, the refusals (a production destroy without the flag; a data stack whose
// database refuses), and a destroy that leaves nothing. This is the suite that applies dev to moto;
// stacks-terraform.test.ts validates the other environments. Timings are printed at the end.
//
// What moto cannot show is covered by synth tests instead, named where it matters below: moto keeps
// scaling policies by name alone and never re-evaluates scale-in protection (stacks/test/components/
// worker-pools.test.ts), and it drops some attributes, which a second plan shows as drift (KNOWN_DRIFT).

const root = resolve(__dirname, '../..');
const terraform = findTerraform();
const moto = motoAvailability();
const mirrored = mirroredProviders();
const skipReason = !terraform.ok
  ? terraform.reason
  : !moto.ok
    ? moto.reason
    : ![...mirrored].some((p) => p.startsWith('hashicorp/aws@'))
      ? `hashicorp/aws is not in the provider mirror at ${PROVIDER_MIRROR}`
      : undefined;
if (skipReason) console.warn(`deploy-walkthrough: skipped: ${skipReason}`);
const describeIf = skipReason ? describe.skip : describe;

/** The stacks the CI machine can deploy: the nomad stack needs hashicorp/nomad (not mirrored) and a Nomad. */
const WITHOUT_NOMAD = 'network,registry,data,batch,nomad-clients,executor,worker-pools';
const REGION = 'eu-west-1';
const PROD_ACCOUNT = '210987654321';

/**
 * Attributes moto does not keep or reports differently than AWS, by resource type: a second plan against
 * moto shows them as in-place updates that AWS would not. Each is covered by a synth test of the component
 * (stacks/test/components/*.test.ts): job_state_time_limit_action (batch), the parameter group's
 * parameters (data), rule descriptions (network, data, executor), the lifecycle hook and scaling policy
 * (worker-pools: moto fills in a placeholder queue and role, and keys policies by name alone).
 */
const KNOWN_DRIFT: Record<string, string[]> = {
  aws_batch_job_queue: ['job_state_time_limit_action'],
  aws_db_parameter_group: ['parameter'],
  aws_vpc_security_group_ingress_rule: ['description'],
  aws_vpc_security_group_egress_rule: ['description'],
  aws_ecs_service: ['availability_zone_rebalancing', 'health_check_grace_period_seconds'],
  // moto adds a `launch-template` tag specification of its own, so the template (and its version) drift.
  aws_launch_template: ['tag_specifications', 'default_version', 'latest_version'],
  aws_autoscaling_group: [
    'launch_template',
    'mixed_instances_policy',
    'default_instance_warmup',
    // moto returns no capacity reservation block; the provider then plans its default again
    'capacity_reservation_specification',
  ],
  aws_autoscaling_lifecycle_hook: ['notification_target_arn', 'role_arn'],
  aws_autoscaling_policy: ['enabled', 'predictive_scaling_configuration'],
  // Follows the launch template's drift above: its next version is unknown until applied, and the compute
  // environment pins the version (batch.ts). Nothing else in compute_resources may change.
  aws_batch_compute_environment: ['compute_resources.launch_template.version'],
};

/**
 * The leaf paths that differ between a plan's before and after (or that are unknown after), such as
 * `compute_resources.launch_template.version`: a known drift names the exact attribute, so a real change
 * elsewhere in the same block still fails. Lists are compared as sets (most of these attributes are sets, whose
 * order in the plan's JSON is not stable between before and after), with their elements in canonical form.
 */
function changedPaths(before: unknown, after: unknown, unknown: unknown, path = ''): string[] {
  if (unknown === true) return [path];
  const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (Array.isArray(before) && Array.isArray(after) && before.length === 1 && after.length === 1) {
    // Terraform's nested blocks of one: look inside rather than report the whole block.
    return changedPaths(before[0], after[0], Array.isArray(unknown) ? unknown[0] : undefined, path);
  }
  if (isObj(before) && isObj(after)) {
    const u = isObj(unknown) ? unknown : {};
    return [...new Set([...Object.keys(before), ...Object.keys(after), ...Object.keys(u)])].flatMap((k) =>
      changedPaths(before[k], after[k], u[k], path ? `${path}.${k}` : k),
    );
  }
  if (Array.isArray(unknown) && JSON.stringify(unknown).includes('true')) return [path];
  return canonical(before) === canonical(after) ? [] : [path];
}

/** JSON with object keys sorted and list elements sorted, so equal sets compare equal. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).sort().join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const o = value as Record<string, unknown>;
    return `{${Object.keys(o)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** An attribute's value at a dotted path (through blocks of one), for the failure message. */
function valueAt(value: unknown, path: string): unknown {
  let v = value;
  for (const k of path.split('.')) {
    if (Array.isArray(v) && v.length === 1) v = v[0];
    v = typeof v === 'object' && v !== null ? (v as Record<string, unknown>)[k] : undefined;
  }
  return v;
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  seconds: number;
}

describeIf('the deploy walkthrough on moto', () => {
  const workdir = mkdtempSync(join(tmpdir(), 'airfleet-walkthrough-'));
  const outdir = join(workdir, 'cdktf.out');
  const stateDir = join(workdir, '.airfleet', 'state');
  const timings: string[] = [];
  let server: StartedMoto;
  let prodCredentials: { AWS_ACCESS_KEY_ID: string; AWS_SECRET_ACCESS_KEY: string };

  const baseEnv = (): NodeJS.ProcessEnv => ({
    ...process.env,
    AWS_ACCESS_KEY_ID: 'testing',
    AWS_SECRET_ACCESS_KEY: 'testing',
    AWS_REGION: REGION,
    AWS_DEFAULT_REGION: REGION,
    AWS_PROFILE: undefined,
    AWS_ENDPOINT_URL: undefined,
    AWS_CONFIG_FILE: join(workdir, 'no-aws-config'),
    AWS_SHARED_CREDENTIALS_FILE: join(workdir, 'no-aws-credentials'),
    NOMAD_TOKEN: undefined,
    TF_CLI_CONFIG_FILE: undefined,
    CDKTF_OUTDIR: outdir,
  });

  /** `npx zx scripts/deploy.mjs <args> --endpoint <moto> --provider-mirror <mirror>`, as a user runs it. */
  function deploy(label: string, args: string[], options: { env?: NodeJS.ProcessEnv; input?: string } = {}) {
    const argv = [
      'zx',
      'scripts/deploy.mjs',
      ...args,
      '--endpoint',
      server.endpoint,
      '--provider-mirror',
      PROVIDER_MIRROR,
    ];
    const t0 = Date.now();
    return new Promise<Run>((done, fail) => {
      const child = spawn('npx', argv, { cwd: root, env: { ...baseEnv(), ...options.env }, stdio: 'pipe' });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => {
        stdout += d.toString();
      });
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
      });
      child.stdin.end(options.input ?? '');
      child.on('error', fail);
      child.on('close', (code) => {
        const seconds = (Date.now() - t0) / 1000;
        timings.push(`${label} ${seconds.toFixed(0)} s`);
        done({ code: code ?? 1, stdout, stderr, seconds });
      });
    });
  }

  const explain = (run: Run) => `exit ${run.code}\n${run.stdout.slice(-6000)}\n${run.stderr.slice(-4000)}`;
  const state = (stack: string) => {
    const file = join(stateDir, `${stack}.tfstate`);
    return existsSync(file)
      ? (JSON.parse(readFileSync(file, 'utf8')) as {
          resources: { type: string; name: string; instances: { attributes: Record<string, unknown> }[] }[];
        })
      : { resources: [] };
  };

  /** moto's query and JSON APIs, with the region (and account) it reads from the request; it checks no signature. */
  async function aws(service: string, body: Record<string, string>, opts: { account?: string; target?: string } = {}) {
    const json = opts.target !== undefined;
    const response = await fetch(server.endpoint, {
      method: 'POST',
      headers: {
        authorization: `AWS4-HMAC-SHA256 Credential=AKIAWALKTHROUGH000000/20260101/${REGION}/${service}/aws4_request, SignedHeaders=host, Signature=0`,
        'content-type': json ? 'application/x-amz-json-1.1' : 'application/x-www-form-urlencoded',
        ...(json ? { 'x-amz-target': opts.target! } : {}),
        ...(opts.account ? { 'x-moto-account-id': opts.account } : {}),
      },
      body: json ? JSON.stringify(body) : new URLSearchParams(body).toString(),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`${service} ${body.Action ?? opts.target}: ${response.status} ${text}`);
    return text;
  }

  /** The rules of the database's security group (the data stack's only one), as moto holds them (XML). */
  async function databaseGroupRules() {
    const groupId = state('dev-data').resources.find((r) => r.type === 'aws_security_group')!.instances[0]!.attributes[
      'id'
    ];
    return aws('ec2', {
      Action: 'DescribeSecurityGroupRules',
      'Filter.1.Name': 'group-id',
      'Filter.1.Value.1': String(groupId),
      Version: '2016-11-15',
    });
  }

  /**
   * What the data stack gives Airflow's hosts, as applied: the policy names the secrets Terraform created
   * (their real ARNs), and the database's group lets the Airflow group in on 5432.
   */
  async function expectAirflowHostGrants(data: Record<string, { value: unknown } | undefined>) {
    const iam = new IAMClient({
      endpoint: server.endpoint,
      region: REGION,
      credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
    });
    const policyArn = String(data['airflow_policy_arn']?.value);
    const { Policy } = await iam.send(new GetPolicyCommand({ PolicyArn: policyArn }));
    const { PolicyVersion } = await iam.send(
      new GetPolicyVersionCommand({ PolicyArn: policyArn, VersionId: Policy!.DefaultVersionId! }),
    );
    const document = JSON.parse(decodeURIComponent(PolicyVersion!.Document!)) as {
      Statement: { Sid: string; Action: string; Resource: string }[];
    };
    const environment = data['airflow_environment']?.value as Record<string, string>;
    expect(environment['AIRFLEET_SUBMIT_TOKEN_SECRET_ARN']).toMatch(/:secret:airfleet\/dev\/submit-token-/);
    expect(document.Statement.map((s) => [s.Sid, s.Action, s.Resource])).toEqual([
      ['ReadAirflowDatabaseSecret', 'secretsmanager:GetSecretValue', data['database_airflow_secret_arn']?.value],
      ['DecryptAirflowDatabaseSecret', 'kms:Decrypt', expect.stringMatching(/^arn:aws:kms:eu-west-1:\d{12}:key\//)],
      ['ReadSubmitToken', 'secretsmanager:GetSecretValue', environment['AIRFLEET_SUBMIT_TOKEN_SECRET_ARN']],
    ]);
    const airflowGroup = String(data['airflow_security_group_id']?.value);
    expect(airflowGroup).toMatch(/^sg-/);
    const rules = await databaseGroupRules();
    const fromAirflow = (rules.match(/<item>[\s\S]*?<\/item>/g) ?? []).filter((rule) =>
      rule.includes(`<groupId>${airflowGroup}</groupId>`),
    );
    expect(fromAirflow).toHaveLength(1);
    expect(fromAirflow[0]).toMatch(/<isEgress>false<\/isEgress>[\s\S]*<fromPort>5432<\/fromPort>/);
  }

  /** dev's database protected, or not, outside Terraform (its config leaves protection off). */
  const deletionProtection = (on: boolean) =>
    aws('rds', {
      Action: 'ModifyDBInstance',
      DBInstanceIdentifier: 'airfleet-dev-postgres',
      DeletionProtection: String(on),
      ApplyImmediately: 'true',
      Version: '2014-10-31',
    });

  beforeAll(async () => {
    server = await startMoto();
    // Credentials that moto maps to the production account (an access key of a user created there), so
    // the bootstrap's allowed_account_ids holds as it would with real production credentials.
    await aws('iam', { Action: 'CreateUser', UserName: 'deployer', Version: '2010-05-08' }, { account: PROD_ACCOUNT });
    const key = await aws(
      'iam',
      { Action: 'CreateAccessKey', UserName: 'deployer', Version: '2010-05-08' },
      { account: PROD_ACCOUNT },
    );
    prodCredentials = {
      AWS_ACCESS_KEY_ID: key.match(/<AccessKeyId>(.+?)<\/AccessKeyId>/)![1]!,
      AWS_SECRET_ACCESS_KEY: key.match(/<SecretAccessKey>(.+?)<\/SecretAccessKey>/)![1]!,
    };
  }, 60_000);

  afterAll(async () => {
    console.info(`deploy-walkthrough: ${timings.join(', ')}`);
    await server?.stop();
    rmSync(workdir, { recursive: true, force: true });
  });

  let bootstrap: Promise<Run>;
  let freshPlan: Promise<Run>;

  it(
    'bootstraps the production state bucket and its KMS key (while the fresh plan of dev runs)',
    async () => {
      // Independent of each other: both start now, the plan is checked by the next test.
      bootstrap = deploy('bootstrap prod', ['--env', 'prod', '--bootstrap'], { env: prodCredentials });
      freshPlan = deploy('plan of fresh dev', ['--env', 'dev', '--plan', '--parallelism', '4']);
      const run = await bootstrap;
      expect({ code: run.code, out: explain(run) }).toMatchObject({ code: 0 });
      expect(run.stdout).toContain(
        'bootstrapping prod: state bucket airfleet-terraform-state-prod and key alias/airfleet-terraform-state',
      );
      const versioning = await fetch(`${server.endpoint}/airfleet-terraform-state-prod?versioning`, {
        headers: { 'x-moto-account-id': PROD_ACCOUNT },
      });
      expect(await versioning.text()).toContain('<Status>Enabled</Status>');
      const aliases = await aws('kms', {}, { account: PROD_ACCOUNT, target: 'TrentService.ListAliases' });
      expect(aliases).toContain('alias/airfleet-terraform-state');
    },
    10 * 60_000,
  );

  it(
    'plans a fresh dev: the first wave, and for each later stack the upstream outputs it waits for',
    async () => {
      const run = await freshPlan;
      expect({ code: run.code, out: explain(run) }).toMatchObject({ code: 0 });
      const row = (stack: string) => run.stdout.match(new RegExp(`^\\s+${stack}\\s+(.+?)\\s+[\\d.]*s?$`, 'm'))?.[1];
      expect(row('dev-network')).toBe('changes planned');
      expect(row('dev-registry')).toBe('changes planned');
      for (const later of ['dev-data', 'dev-batch', 'dev-nomad-clients', 'dev-executor', 'dev-worker-pools']) {
        expect(row(later)).toBe('waits for upstream outputs');
      }
      expect(run.stdout).toMatch(/dev-data: not planned: waits for dev-network \(.*aws_vpc\.vpc\.id/);
      expect(run.stdout).toMatch(/dev-worker-pools: not planned: waits for .*dev-executor \(aws_lb\.lb\.dns_name\)/);
      expect(run.stdout).toMatch(/dev-nomad: skipped: set NOMAD_TOKEN/);
      expect(run.stdout + run.stderr).not.toMatch(/Unable to find remote state/);
    },
    10 * 60_000,
  );

  it(
    'names the --stacks that leave out the nomad stack when Nomad credentials are missing',
    async () => {
      const run = await deploy('apply without Nomad credentials', ['--env', 'dev']);
      expect(run.code).toBe(1);
      // The hint is the list the next step uses, as a user would copy it.
      const hint = run.stderr.match(/To leave it out: --stacks (\S+)/)?.[1];
      expect(hint?.split(',').sort()).toEqual(WITHOUT_NOMAD.split(',').sort());
      expect(run.stderr).toContain('Nothing was changed.');
      expect(state('dev-network').resources).toEqual([]);
    },
    5 * 60_000,
  );

  it(
    'applies dev and leaves the outputs the rest of the fleet reads',
    async () => {
      const run = await deploy('apply of dev', ['--env', 'dev', '--stacks', WITHOUT_NOMAD, '--parallelism', '3']);
      expect({ code: run.code, out: explain(run) }).toMatchObject({ code: 0 });
      for (const stack of WITHOUT_NOMAD.split(',')) {
        expect(run.stdout).toMatch(new RegExp(`^\\s+dev-${stack}\\s+applied`, 'm'));
      }
      const tf = new Terraform({
        binary: terraform.ok ? terraform.binary : 'terraform',
        cliConfigFile: join(workdir, '.airfleet', 'terraform.rc'),
        env: { ...baseEnv(), AWS_ENDPOINT_URL: server.endpoint },
      });
      const dir = (stack: string) => join(outdir, 'stacks', stack);
      const network = await tf.outputs(dir('dev-network'));
      expect(network['vpc_id']?.value).toMatch(/^vpc-/);
      expect(network['private_subnet_ids']?.value).toHaveLength(2);
      const registry = await tf.outputs(dir('dev-registry'));
      expect(registry['worker_repository_url']?.value).toMatch(
        /\.dkr\.ecr\.eu-west-1\.amazonaws\.com\/airfleet-dev\/worker$/,
      );
      const data = await tf.outputs(dir('dev-data'));
      expect(data['database_endpoint']?.value).toMatch(/:5432$/);
      expect(data['database_secret_arn']?.value).toMatch(/^arn:aws:secretsmanager:eu-west-1:\d{12}:secret:/);
      await expectAirflowHostGrants(data);
      const batch = await tf.outputs(dir('dev-batch'));
      expect(Object.keys(batch['job_queue_arns']?.value as object).sort()).toEqual(['default', 'light']);
      const executor = await tf.outputs(dir('dev-executor'));
      expect(executor['executor_url']?.value).toMatch(/^http:\/\/airfleet-dev-executor-.*\.elb\.amazonaws\.com$/);
    },
    20 * 60_000,
  );

  it(
    'plans dev again: nothing to add or destroy, and no change but what moto does not keep',
    async () => {
      const run = await deploy('second plan', [
        '--env',
        'dev',
        '--plan',
        '--stacks',
        WITHOUT_NOMAD,
        '--parallelism',
        '4',
      ]);
      expect({ code: run.code, out: explain(run) }).toMatchObject({ code: 0 });
      expect(run.stdout).not.toMatch(/waits for upstream outputs/);
      const tf = new Terraform({
        binary: terraform.ok ? terraform.binary : 'terraform',
        cliConfigFile: join(workdir, '.airfleet', 'terraform.rc'),
        env: baseEnv(),
      });
      const unexpected: string[] = [];
      const shows = await Promise.all(
        WITHOUT_NOMAD.split(',').map((s) => tf.run(join(outdir, 'stacks', `dev-${s}`), ['show', '-json', 'tfplan'])),
      );
      for (const show of shows) {
        if (show.code !== 0) throw new Error(show.describe());
        const plan = JSON.parse(show.stdout) as {
          resource_changes?: {
            address: string;
            type: string;
            change: {
              actions: string[];
              before: Record<string, unknown>;
              after: Record<string, unknown>;
              after_unknown: Record<string, unknown>;
            };
          }[];
        };
        for (const rc of plan.resource_changes ?? []) {
          const { actions, before, after, after_unknown } = rc.change;
          if (actions.length === 1 && (actions[0] === 'no-op' || actions[0] === 'read')) continue;
          if (actions.join() !== 'update') {
            unexpected.push(`${rc.address}: ${actions.join('+')}`);
            continue;
          }
          const known = [...(KNOWN_DRIFT[rc.type] ?? []), 'tags_all'];
          const drift = changedPaths(before, after, after_unknown).filter(
            (path) => !known.some((k) => path === k || path.startsWith(`${k}.`)),
          );
          for (const path of drift) {
            // What changed, so a failure says whether it is moto's or ours.
            const show = (v: unknown) => canonical(v).slice(0, 400);
            unexpected.push(
              `${rc.address}: ${path}: ${show(valueAt(before, path))} -> ${show(valueAt(after, path))}` +
                `${JSON.stringify(valueAt(after_unknown, path)) === 'true' ? ' (known after apply)' : ''}`,
            );
          }
        }
      }
      expect(unexpected).toEqual([]);
    },
    10 * 60_000,
  );

  it(
    'refuses a production destroy without the flag, or without the typed name, and changes nothing',
    async () => {
      const before = await fetch(`${server.endpoint}/airfleet-terraform-state-prod?versions`, {
        headers: { 'x-moto-account-id': PROD_ACCOUNT },
      }).then((r) => r.text());
      const refused = await deploy('prod destroy without the flag', ['--env', 'prod', '--destroy'], {
        env: prodCredentials,
      });
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain('--destroy refuses it without --allow-production-destroy');
      expect(refused.stderr).toContain('Nothing was changed.');
      const wrongName = await deploy(
        'prod destroy, wrong name typed',
        ['--env', 'prod', '--destroy', '--allow-production-destroy'],
        { env: prodCredentials, input: 'staging\n' },
      );
      expect(wrongName.code).toBe(1);
      expect(wrongName.stdout).toContain("Type the environment's name to go on");
      expect(wrongName.stderr).toContain('the answer was not "prod": nothing was destroyed.');
      const after = await fetch(`${server.endpoint}/airfleet-terraform-state-prod?versions`, {
        headers: { 'x-moto-account-id': PROD_ACCOUNT },
      }).then((r) => r.text());
      expect(after).toBe(before);
    },
    5 * 60_000,
  );

  it(
    'stops a destroy at the data stack when RDS refuses, with its ingress rules and key alias in place',
    async () => {
      // Deletion protection turned on outside Terraform (dev's config has it off): RDS, and moto, refuse
      // to delete the instance. Protected configs never get this far: prevent_destroy stops their plan
      // (stacks/test/components/data.test.ts).
      await deletionProtection(true);
      const run = await deploy('destroy refused at dev-data', [
        '--env',
        'dev',
        '--destroy',
        '--stacks',
        WITHOUT_NOMAD,
        '--parallelism',
        '3',
      ]);
      expect(run.code).toBe(1);
      expect(run.stderr).toMatch(/dev-data: terraform destroy failed/);
      expect(run.stderr).toContain('Not touched: dev-registry, dev-network.');
      for (const gone of ['dev-worker-pools', 'dev-executor', 'dev-batch', 'dev-nomad-clients']) {
        expect({ gone, resources: state(gone).resources.length }).toEqual({ gone, resources: 0 });
      }
      const left = state('dev-data').resources.map((r) => r.type);
      // From the four compute groups and Airflow's.
      expect(left.filter((t) => t === 'aws_vpc_security_group_ingress_rule')).toHaveLength(5);
      expect(left).toEqual(expect.arrayContaining(['aws_db_instance', 'aws_kms_alias', 'aws_security_group']));
      const rules = await databaseGroupRules();
      expect(rules.match(/<isEgress>false<\/isEgress>/g)).toHaveLength(5);
      const aliases = await aws('kms', {}, { target: 'TrentService.ListAliases' });
      expect(aliases).toContain('alias/airfleet-dev-database');
    },
    15 * 60_000,
  );

  it(
    'destroys the rest of dev and leaves nothing behind',
    async () => {
      await deletionProtection(false);
      const run = await deploy('destroy of dev', [
        '--env',
        'dev',
        '--destroy',
        '--stacks',
        WITHOUT_NOMAD,
        '--parallelism',
        '3',
      ]);
      expect({ code: run.code, out: explain(run) }).toMatchObject({ code: 0 });
      for (const stack of WITHOUT_NOMAD.split(',').map((s) => `dev-${s}`)) {
        expect({ stack, resources: state(stack).resources.map((r) => `${r.type}.${r.name}`) }).toEqual({
          stack,
          resources: [],
        });
      }
      const vpcs = await aws('ec2', {
        Action: 'DescribeVpcs',
        'Filter.1.Name': 'tag:Project',
        'Filter.1.Value.1': 'airfleet',
        Version: '2016-11-15',
      });
      expect(vpcs).not.toContain('<vpcId>');
      const databases = await aws('rds', { Action: 'DescribeDBInstances', Version: '2014-10-31' });
      expect(databases).not.toContain('<DBInstanceIdentifier>');
      const groups = await aws('autoscaling', { Action: 'DescribeAutoScalingGroups', Version: '2011-01-01' });
      expect(groups).not.toContain('<AutoScalingGroupName>');
      const roles = await aws('iam', { Action: 'ListRoles', Version: '2010-05-08' });
      expect(roles).not.toContain('airfleet-dev-');
    },
    15 * 60_000,
  );
});
