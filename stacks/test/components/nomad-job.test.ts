import {
  dockerTask,
  evaluateJobspec,
  parseJobspec,
  renderNomadVarTemplate,
  variableProblems,
} from '../../../integration/src/nomad-jobspec.ts';
import { EXECUTOR_JOB_ID } from '../../src/components/nomad.ts';
import { EXECUTOR_BACKENDS } from '../../src/lib/batch-targets.ts';
import { nomadBackendEnv } from '../../src/lib/nomad-backend-env.ts';
import { renderNomadClientConfig } from '../../src/lib/nomad-client-config.ts';
import { onlyResource, synthEnvironment } from '../support/synth.ts';

// The executor's Nomad job as the nomad stack hands it to Terraform (jobspec and hcl2 vars), read back the way
// Nomad reads it (stacks/jobs/executor.nomad.hcl is HCL2 with variables): the two must agree, or `nomad job run`
// refuses the job at apply time, and what the nomad backend needs must reach the task's environment.

const environments = ['staging', 'prod'] as const;
const synthesized = Object.fromEntries(environments.map((name) => [name, synthEnvironment(name)]));

function jobOf(name: (typeof environments)[number]) {
  const job = onlyResource(synthesized[name]!.get('nomad').tf, 'nomad_job');
  // Terraform hands Nomad the text with its own escapes undone (stacks/src/components/nomad.ts).
  const jobspec = String(job['jobspec'])
    .replace(/\$\$\{/g, '${')
    .replace(/%%\{/g, '%{');
  const vars = (job['hcl2'] as { vars: Record<string, string> }).vars;
  return { jobspec, vars };
}

describe.each(environments)('the executor job of %s', (name) => {
  const config = () => synthesized[name]!.stacks.nomad.env;

  it('gives every variable the jobspec declares without a default, and none it does not declare', async () => {
    const { jobspec, vars } = jobOf(name);
    const spec = await parseJobspec(jobspec);
    expect(variableProblems(spec, vars)).toEqual([]);
    // The check itself: a variable left out is found.
    const { nomad_node_pool: _, ...missing } = vars;
    expect(variableProblems(spec, missing)).toEqual(['variable "nomad_node_pool" has no default and no value']);
  });

  it('runs pool, batch and nomad, and hands the nomad backend its settings', async () => {
    const { jobspec, vars } = jobOf(name);
    const task = dockerTask(evaluateJobspec(await parseJobspec(jobspec), vars), 'executor');
    const backends = task.env['AIRFLEET_BACKENDS']!.split(',');
    expect(new Set(backends)).toEqual(new Set([...EXECUTOR_BACKENDS, 'pool', 'batch', 'nomad']));
    expect(backends).toHaveLength(new Set(backends).size);
    const expected = nomadBackendEnv(config());
    expect(Object.keys(expected).sort()).toEqual([
      'AIRFLEET_NOMAD_DATACENTERS',
      'AIRFLEET_NOMAD_DEFAULT_IMAGE',
      'AIRFLEET_NOMAD_HOST_VOLUMES',
      'AIRFLEET_NOMAD_JOB_PREFIX',
      'AIRFLEET_NOMAD_NODE_POOL',
    ]);
    for (const [key, value] of Object.entries(expected)) expect({ [key]: task.env[key] }).toEqual({ [key]: value });
    // The Task API socket with the workload identity.
    expect(task.env['NOMAD_ADDR']).toBe('unix://${NOMAD_SECRETS_DIR}/api.sock');
    expect(task.identityEnv).toBe(true);
  });

  it('serves HTTPS from a certificate and key Nomad renders from the job variable, checked over HTTPS', async () => {
    const { jobspec, vars } = jobOf(name);
    const task = dockerTask(evaluateJobspec(await parseJobspec(jobspec), vars), 'executor');
    const pem = { tls_cert: 'CERT PEM', tls_key: 'KEY PEM' };
    const rendered = Object.fromEntries(
      task.templates.map((t) => [
        t.destination,
        renderNomadVarTemplate(t.data, { [`nomad/jobs/${EXECUTOR_JOB_ID}`]: pem }),
      ]),
    );
    expect(rendered).toEqual({
      [task.env['AIRFLEET_TLS_CERT_FILE']!]: 'CERT PEM',
      [task.env['AIRFLEET_TLS_KEY_FILE']!]: 'KEY PEM',
    });
    for (const t of task.templates) {
      expect(t).toMatchObject({ perms: '0600', changeMode: 'noop', env: false });
      expect(t.destination).toMatch(/^\$\{NOMAD_SECRETS_DIR\}\//);
      // Nomad holds the task while the variable is missing.
      expect(renderNomadVarTemplate(t.data, {})).toBeNull();
    }
    expect(task.jobId).toBe(EXECUTOR_JOB_ID);
    expect(task.group.checks).toEqual([
      expect.objectContaining({ type: 'http', protocol: 'https', tls_skip_verify: true }),
    ]);
  });
});

describe('nomadBackendEnv', () => {
  it('names what the client pools define: datacenter, a task node pool, their host volumes, the task-runner image', () => {
    const staging = synthesized.staging!.stacks.nomad.env;
    const prod = synthesized.prod!.stacks.nomad.env;
    expect(nomadBackendEnv(prod)).toMatchObject({
      AIRFLEET_NOMAD_DATACENTERS: 'eu-west-1',
      AIRFLEET_NOMAD_NODE_POOL: 'airflow',
      AIRFLEET_NOMAD_DEFAULT_IMAGE: '210987654321.dkr.ecr.eu-west-1.amazonaws.com/airfleet-prod/task-runner:0.1.0',
    });
    // Staging's executor has a node pool of its own, where tasks may not go.
    expect(staging.executor).toMatchObject({ nodePool: 'airfleet-system' });
    expect(nomadBackendEnv(staging)['AIRFLEET_NOMAD_NODE_POOL']).toBe('airflow');
    // Every volume mounted is one every client defines.
    const client = renderNomadClientConfig({
      region: 'global',
      datacenter: 'eu-west-1',
      nodePool: 'airflow',
      serverJoin: [],
      meta: {},
      hostVolumes: { config: '/c', dags: '/d' },
      tls: { caFile: 'a', certFile: 'b', keyFile: 'c' },
    });
    const defined = [...client.matchAll(/host_volume "([^"]+)"/g)].map((m) => m[1]);
    const mounted = nomadBackendEnv(prod)
      ['AIRFLEET_NOMAD_HOST_VOLUMES']!.split(',')
      .map((p) => p.split('=')[0]);
    expect(mounted.sort()).toEqual(defined.sort());
  });
});
