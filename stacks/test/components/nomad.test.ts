import { readFileSync } from 'node:fs';
import { AclPolicy } from '@cdktf/provider-nomad/lib/acl-policy/index.js';
import { AclRole } from '@cdktf/provider-nomad/lib/acl-role/index.js';
import { Namespace } from '@cdktf/provider-nomad/lib/namespace/index.js';
import { NomadProvider } from '@cdktf/provider-nomad/lib/provider/index.js';
import { DEFAULT_JOBSPEC, escapeForTerraform, executorAclRules } from '../../src/components/nomad.ts';
import { nomadBackendEnv } from '../../src/lib/nomad-backend-env.ts';
import { onlyResource, synthEnvironment } from '../support/synth.ts';

const staging = synthEnvironment('staging').get('nomad');
const dev = synthEnvironment('dev').get('nomad');

describe('nomad stack', () => {
  it('talks to Nomad only, with credentials from the environment', () => {
    expect(staging.json).toHaveProviderWithProperties(NomadProvider, {
      address: 'https://nomad.staging.airfleet.internal:4646',
      region: 'global',
    });
    expect(staging.tf.provider).not.toHaveProperty('aws');
    expect(JSON.stringify(staging.tf.provider)).not.toMatch(/secret_id|key_pem|http_auth/);
  });

  it('creates the task namespace with Docker only and no host networking', () => {
    expect(staging.json).toHaveResourceWithProperties(Namespace, {
      name: 'airflow',
      capabilities: { enabled_task_drivers: ['docker'], disabled_network_modes: ['host'] },
      // Not the executor's own node pool (airfleet-system): tasks never land beside the executor.
      node_pool_config: { default: 'airflow', allowed: ['airflow', 'airflow-memory'] },
    });
    const job = Object.values((staging.tf.resource ?? {})['nomad_job'] ?? {})[0] as {
      hcl2: { vars: Record<string, string> };
    };
    expect(job.hcl2.vars['node_pool']).toBe('airfleet-system');
  });

  it('gives the executor an ACL policy and role, and mints no token', () => {
    expect(staging.json).toHaveResourceWithProperties(AclRole, {
      name: 'airfleet-staging-executor',
      policy: [{ name: `\${nomad_acl_policy.executor-policy.name}` }],
    });
    expect(staging.json).toHaveResourceWithProperties(AclPolicy, {
      name: 'airfleet-staging-executor-workload',
      job_acl: { namespace: `\${nomad_namespace.system-namespace.name}`, job_id: 'airfleet-executor' },
    });
    expect(staging.tf.resource).not.toHaveProperty('nomad_acl_token');
    const rules = executorAclRules('airflow', ['a', 'b', 'a']);
    expect(rules).toContain('namespace "airflow" {');
    expect(rules).toContain('"submit-job"');
    expect(rules.match(/node_pool "/g)).toHaveLength(2);
    // An attempt's secretEnv goes into its job's variable, under the prefix the backend is given.
    expect(rules).toMatch(
      /variables \{\s+path "nomad\/jobs\/airfleet-\*" \{\s+capabilities = \["write", "read", "destroy"\]/,
    );
    expect(nomadBackendEnv(staging.stack.env)['AIRFLEET_NOMAD_JOB_PREFIX']).toBe('airfleet');
  });

  it('deploys the executor service from the jobspec file, escaped for Terraform, with variables', () => {
    const job = onlyResource(staging.tf, 'nomad_job');
    const source = readFileSync(DEFAULT_JOBSPEC, 'utf8');
    expect(job['jobspec']).toBe(escapeForTerraform(source));
    expect(String(job['jobspec'])).toContain(`"$\${NOMAD_PORT_http}"`);
    expect(job['hcl2']).toEqual({
      vars: expect.objectContaining({
        environment: 'staging',
        namespace: `\${nomad_namespace.system-namespace.name}`,
        task_namespace: `\${nomad_namespace.task-namespace.name}`,
        count: '2',
        database_secret_arn: expect.stringMatching(/cross-stack-reference-input-staging-data/),
        image: expect.stringMatching(/repository_url.*:0\.1\.0$/),
      }),
    });
    expect(job).toMatchObject({ detach: false, purge_on_destroy: true });
  });

  it('leaves the executor job out where the executor runs on ECS, but keeps its role', () => {
    expect(dev.tf.resource).not.toHaveProperty('nomad_job');
    expect(dev.json).toHaveResourceWithProperties(AclRole, { name: 'airfleet-dev-executor' });
  });

  it('pins the Nomad provider and passes every guard', () => {
    expect(staging.tf.terraform.required_providers).toEqual({ nomad: { source: 'hashicorp/nomad', version: '2.5.2' } });
    expect(staging.errors).toEqual([]);
    expect(dev.errors).toEqual([]);
  });
});
