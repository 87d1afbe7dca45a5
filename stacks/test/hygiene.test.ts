import { environments } from '../src/config/environments/index.ts';
import { resources, type SynthesizedStack, synthEnvironment } from './support/synth.ts';

// Properties every environment's stacks keep, whatever a component does: the account they may touch,
// names that survive a replacement, tags on everything that costs money, KMS rights scoped to keys,
// rolling replacement of worker groups, and the logging options (on in production).

const names = Object.keys(environments) as (keyof typeof environments)[];
const synthesized = new Map(names.map((name) => [name, [...synthEnvironment(name).byName.values()]]));
const all = (type: string) =>
  [...synthesized.entries()].flatMap(([env, stacks]) =>
    stacks.flatMap((s) => Object.entries(resources(s.tf, type)).map(([id, r]) => ({ env, stack: s, id, r }))),
  );
const awsStacks = (stacks: SynthesizedStack[]) => stacks.filter((s) => s.tf.provider?.aws);

describe('stack hygiene', () => {
  it.each(names)('%s pins its account in every AWS provider', (name) => {
    const accountId = environments[name].aws.accountId;
    expect(accountId).toMatch(/^\d{12}$/);
    for (const stack of awsStacks(synthesized.get(name)!)) {
      expect({ stack: stack.stack.stackName, ids: stack.tf.provider!.aws![0]!['allowed_account_ids'] }).toEqual({
        stack: stack.stack.stackName,
        ids: [accountId],
      });
    }
  });

  it('names security groups by prefix, so a replacement does not collide with the group it replaces', () => {
    const groups = all('aws_security_group');
    expect(groups.length).toBeGreaterThan(10);
    expect(groups.filter(({ r }) => 'name' in r || typeof r['name_prefix'] !== 'string').map((g) => g.id)).toEqual([]);
  });

  it('tags the instances, volumes, groups and Batch capacity that default_tags do not reach', () => {
    const costed = ['Project', 'Environment', 'CostCenter'];
    const templates = all('aws_launch_template');
    expect(templates.length).toBeGreaterThan(5);
    for (const { env, id, r } of templates) {
      const specs = r['tag_specifications'] as { resource_type: string; tags: Record<string, string> }[];
      expect({ id, types: specs.map((s) => s.resource_type).sort() }).toEqual({ id, types: ['instance', 'volume'] });
      for (const spec of specs) {
        expect(spec.tags).toMatchObject({ Environment: env, CostCenter: environments[env].tags.CostCenter });
        expect(Object.keys(spec.tags)).toEqual(expect.arrayContaining(costed));
      }
    }
    const groups = all('aws_autoscaling_group');
    expect(groups.length).toBeGreaterThan(3);
    for (const { env, id, r } of groups) {
      const tags = Object.fromEntries((r['tag'] as { key: string; value: string }[]).map((t) => [t.key, t.value]));
      expect({ id, tags }).toMatchObject({ id, tags: { Environment: env, Project: 'airfleet' } });
      expect(Object.keys(tags)).toEqual(expect.arrayContaining(costed));
    }
    const ec2Capacity = all('aws_batch_compute_environment').filter(({ r }) =>
      ['EC2', 'SPOT'].includes((r['compute_resources'] as { type: string }).type),
    );
    expect(ec2Capacity.length).toBeGreaterThan(2);
    for (const { env, r } of ec2Capacity) {
      expect((r['compute_resources'] as { tags: Record<string, string> }).tags).toMatchObject({
        Environment: env,
        CostCenter: environments[env].tags.CostCenter,
      });
    }
  });

  it('grants KMS actions in IAM policies only on keys, never on *', () => {
    const policies = [...all('aws_iam_role_policy'), ...all('aws_iam_policy')];
    expect(policies.length).toBeGreaterThan(10);
    const broad = policies.flatMap(({ id, r }) =>
      (
        JSON.parse(r['policy'] as string) as { Statement: { Action: string | string[]; Resource: string | string[] }[] }
      ).Statement.filter(
        (s) => [s.Action].flat().some((a) => a.startsWith('kms:')) && [s.Resource].flat().includes('*'),
      ).map((s) => `${id}: ${JSON.stringify(s)}`),
    );
    expect(broad).toEqual([]);
  });

  it('rolls every worker and Nomad client group through an instance refresh when its template changes', () => {
    for (const { id, r } of all('aws_autoscaling_group')) {
      expect({ id, refresh: (r['instance_refresh'] as { strategy?: string } | undefined)?.strategy }).toEqual({
        id,
        refresh: 'Rolling',
      });
    }
    // Busy workers are protected from scale-in; the refresh waits until their guard drops it.
    const workers = all('aws_autoscaling_group').filter(({ r }) => r['protect_from_scale_in'] === true);
    expect(workers.length).toBeGreaterThan(0);
    for (const { r } of workers) {
      expect((r['instance_refresh'] as { preferences: unknown }).preferences).toMatchObject({
        scale_in_protected_instances: 'Wait',
      });
    }
  });

  it('has VPC flow logs and KMS-encrypted log groups in production, as options off in dev', () => {
    const flowLogs = all('aws_flow_log');
    expect(flowLogs.map(({ env, r }) => [env, r['traffic_type']])).toEqual([['prod', 'ALL']]);
    const groups = all('aws_cloudwatch_log_group');
    const prodGroups = groups.filter((g) => g.env === 'prod');
    expect(prodGroups.map((g) => g.r['name']).sort()).toEqual(['/airfleet/prod/batch', '/airfleet/prod/vpc-flow-logs']);
    for (const { r } of prodGroups) expect(String(r['kms_key_id'])).toMatch(/logs-key/);
    expect(groups.filter((g) => g.env === 'dev').every((g) => !('kms_key_id' in g.r))).toBe(true);
  });

  it('keeps ECR force_delete off: a destroy stops at a repository that still holds images', () => {
    const repositories = all('aws_ecr_repository');
    expect(repositories.length).toBe(9);
    expect(repositories.filter(({ r }) => r['force_delete'] === true)).toEqual([]);
  });
});
