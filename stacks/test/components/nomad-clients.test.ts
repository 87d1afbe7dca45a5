import { AutoscalingGroup } from '@cdktf/provider-aws/lib/autoscaling-group/index.js';
import { LaunchTemplate } from '@cdktf/provider-aws/lib/launch-template/index.js';
import { DOCKER_AUTH_FILE, nomadClientUserData } from '../../src/components/nomad-clients.ts';
import { environments } from '../../src/config/environments/index.ts';
import { parseEnvironments } from '../../src/config/validate.ts';
import { nomadBackendEnv } from '../../src/lib/nomad-backend-env.ts';
import { renderNomadClientConfig } from '../../src/lib/nomad-client-config.ts';
import { resources, synthEnvironment, userData } from '../support/synth.ts';

const staging = synthEnvironment('staging').get('nomad-clients');
const dev = synthEnvironment('dev').get('nomad-clients');

function templateFor(tf: typeof staging.tf, pool: string) {
  return Object.values(resources(tf, 'aws_launch_template')).find(
    (t) => t['name'] === `airfleet-staging-nomad-${pool}`,
  )!;
}

/** The cloud-config document of a pool, and the files it writes by path. */
function cloudConfig(pool: string) {
  const text = userData(templateFor(staging.tf, pool));
  expect(text.startsWith('#cloud-config\n')).toBe(true);
  const doc = JSON.parse(text.slice('#cloud-config\n'.length)) as {
    write_files: { path: string; content: string; permissions: string }[];
    runcmd: string[][];
  };
  return { doc, files: Object.fromEntries(doc.write_files.map((f) => [f.path, f])) };
}

describe('nomad-clients stack', () => {
  it('has a launch template and an Auto Scaling group per client pool', () => {
    expect(Object.keys(resources(staging.tf, 'aws_autoscaling_group'))).toHaveLength(3);
    expect(staging.json).toHaveResourceWithProperties(AutoscalingGroup, {
      name: 'airfleet-staging-nomad-general',
      min_size: 1,
      max_size: 6,
      instance_refresh: expect.objectContaining({ strategy: 'Rolling' }),
    });
    expect(staging.json).toHaveResourceWithProperties(LaunchTemplate, {
      name: 'airfleet-staging-nomad-memory',
      instance_type: 'r7i.xlarge',
    });
  });

  it('allows IMDSv2 only and encrypts the root volume', () => {
    const template = templateFor(staging.tf, 'general');
    expect(template['metadata_options']).toEqual({
      http_endpoint: 'enabled',
      http_tokens: 'required',
      http_put_response_hop_limit: 1,
      instance_metadata_tags: 'disabled',
    });
    expect(template['block_device_mappings']).toEqual([
      expect.objectContaining({ ebs: expect.objectContaining({ encrypted: 'true', volume_type: 'gp3' }) }),
    ]);
  });

  it('writes the Nomad client config: read-only host volumes, node pool, meta, server_join and the tls block', () => {
    const hcl = cloudConfig('general').files['/etc/nomad.d/nomad.hcl']!.content;
    expect(hcl).toContain('node_pool = "airflow"');
    expect(hcl).toMatch(/host_volume "config" \{\s+path\s+= "\/opt\/airfleet\/config"\s+read_only = true\s+\}/);
    expect(hcl).toMatch(/host_volume "dags" \{\s+path\s+= "\/opt\/airfleet\/dags"\s+read_only = true\s+\}/);
    expect(hcl).toMatch(/meta \{\s+queue\s+= "default"\s+instance_type = "m7i\.xlarge"/);
    expect(hcl).toContain('retry_join = ["provider=aws tag_key=airfleet:nomad-server tag_value=staging"]');
    const tls = hcl.slice(hcl.indexOf('tls {'));
    for (const line of [
      'http                   = true',
      'rpc                    = true',
      'ca_file                = "/etc/nomad.d/tls/ca.pem"',
      'cert_file              = "/etc/nomad.d/tls/client.pem"',
      'key_file               = "/etc/nomad.d/tls/client-key.pem"',
      'verify_server_hostname = true',
      'verify_https_client    = true',
    ]) {
      expect(tls).toContain(line);
    }
    const memory = cloudConfig('memory').files['/etc/nomad.d/nomad.hcl']!.content;
    expect(memory).toMatch(/queue\s+= "memory"/);
    expect(memory).toContain('node_pool = "airflow-memory"');
  });

  it('fetches the TLS material from SSM SecureString at every agent start, so none of it is in user data', () => {
    const { files, doc } = cloudConfig('general');
    const fetch = files['/usr/local/sbin/airfleet-nomad-tls']!;
    expect(fetch.permissions).toBe('0750');
    // The CA is shared; the client certificate and key are the pool's own.
    for (const name of ['ca.pem', 'pools/general/client.pem', 'pools/general/client-key.pem']) {
      expect(fetch.content).toContain(`'/airfleet/staging/nomad-tls/${name}'`);
    }
    expect(cloudConfig('memory').files['/usr/local/sbin/airfleet-nomad-tls']!.content).toContain(
      "'/airfleet/staging/nomad-tls/pools/memory/client-key.pem'",
    );
    expect(fetch.content).toContain('--with-decryption');
    expect(files['/etc/systemd/system/nomad.service.d/airfleet.conf']!.content).toContain(
      'ExecStartPre=/usr/local/sbin/airfleet-nomad-tls',
    );
    expect(doc.runcmd).toEqual([['/usr/local/sbin/airfleet-bootstrap']]);
    const all = JSON.stringify(doc);
    expect(all).not.toMatch(/BEGIN [A-Z ]*(PRIVATE KEY|CERTIFICATE)/);
  });

  it("gives each pool its own role: its own TLS parameters, and the executor's rights on the executor's pool only", () => {
    const statementsOf = (tf: typeof staging.tf, pool: string) => {
      const role = Object.entries(resources(tf, 'aws_iam_role')).find(
        ([, r]) => r['name'] === `airfleet-${tf === dev.tf ? 'dev' : 'staging'}-nomad-${pool}`,
      )!;
      const policy = Object.values(resources(tf, 'aws_iam_role_policy')).find((p) =>
        String(p['role']).includes(`aws_iam_role.${role[0]}.`),
      )!;
      return (JSON.parse(String(policy['policy'])) as { Statement: { Sid: string; Resource: unknown }[] }).Statement;
    };
    const general = statementsOf(staging.tf, 'general');
    expect(general.find((s) => s.Sid === 'ReadTlsMaterial')!.Resource).toEqual([
      'arn:aws:ssm:eu-west-1:109876543210:parameter/airfleet/staging/nomad-tls/ca.pem',
      'arn:aws:ssm:eu-west-1:109876543210:parameter/airfleet/staging/nomad-tls/pools/general/client.pem',
      'arn:aws:ssm:eu-west-1:109876543210:parameter/airfleet/staging/nomad-tls/pools/general/client-key.pem',
    ]);
    // Airflow tasks run on general and memory: no executor rights there.
    expect(general.map((s) => s.Sid)).not.toEqual(expect.arrayContaining(['ReadDatabaseSecret']));
    expect(statementsOf(staging.tf, 'memory').map((s) => s.Sid)).not.toEqual(
      expect.arrayContaining(['SubmitBatchJobs']),
    );
    expect(statementsOf(staging.tf, 'system').map((s) => s.Sid)).toEqual(
      expect.arrayContaining(['ReadDatabaseSecret', 'SubmitBatchJobs']),
    );
    const profiles = Object.values(resources(staging.tf, 'aws_launch_template')).map(
      (t) => (t['iam_instance_profile'] as { arn: string })['arn'],
    );
    expect(new Set(profiles).size).toBe(3);
    // dev runs the executor on ECS: its clients get no database or Batch rights.
    expect(statementsOf(dev.tf, 'general').map((s) => s.Sid)).not.toEqual(
      expect.arrayContaining(['ReadDatabaseSecret']),
    );
  });

  it('drains a terminating client: a lifecycle hook, a guard that stops Nomad, drain_on_shutdown', () => {
    const hooks = Object.values(resources(staging.tf, 'aws_autoscaling_lifecycle_hook'));
    expect(hooks).toHaveLength(3);
    for (const hook of hooks) {
      expect(hook).toMatchObject({
        name: 'drain',
        lifecycle_transition: 'autoscaling:EC2_INSTANCE_TERMINATING',
        heartbeat_timeout: 720,
        default_result: 'CONTINUE',
      });
    }
    const { files } = cloudConfig('general');
    expect(files['/etc/nomad.d/nomad.hcl']!.content).toMatch(/drain_on_shutdown \{\s+deadline\s+= "600s"/);
    const guard = files['/usr/local/sbin/airfleet-nomad-drain-guard']!.content;
    expect(guard).toContain('systemctl stop nomad');
    expect(guard).toContain("--auto-scaling-group-name 'airfleet-staging-nomad-general'");
    expect(files['/usr/local/sbin/airfleet-bootstrap']!.content).toContain('airfleet-nomad-drain-guard.timer');
  });

  it('pulls the images the executor job and its tasks name from ECR with the instance role', () => {
    const [env] = parseEnvironments({ staging: environments.staging });
    const { files } = cloudConfig('general');
    expect(files['/etc/nomad.d/nomad.hcl']!.content).toMatch(
      new RegExp(`plugin "docker" \\{[\\s\\S]*auth \\{\\s+config = "${DOCKER_AUTH_FILE}"`),
    );
    const auth = JSON.parse(files[DOCKER_AUTH_FILE]!.content) as { credHelpers: Record<string, string> };
    // The registry of the nomad backend's default image (and of the executor's, the same registry).
    const registry = nomadBackendEnv(env!)['AIRFLEET_NOMAD_DEFAULT_IMAGE']!.split('/')[0]!;
    expect(auth).toEqual({ credHelpers: { [registry]: 'ecr-login' } });
    expect(files['/usr/local/sbin/airfleet-bootstrap']!.content).toContain(
      'dnf install -y amazon-ecr-credential-helper',
    );
  });

  it('renders user data deterministically from config alone', () => {
    const [env] = parseEnvironments({ staging: environments.staging });
    const pool = env!.nomad.clientPools.find((p) => p.name === 'general')!;
    expect(nomadClientUserData(env!, pool)).toBe(nomadClientUserData(env!, pool));
    expect(userData(templateFor(staging.tf, 'general'))).toBe(nomadClientUserData(env!, pool));
  });

  it('escapes HCL template sequences in rendered values', () => {
    const hcl = renderNomadClientConfig({
      region: 'global',
      datacenter: 'dc1',
      nodePool: 'p',
      serverJoin: ['a"b', `\${x}`],
      meta: { 'odd key': 'v' },
      hostVolumes: { config: '/c', dags: '/d' },
      tls: { caFile: '/ca', certFile: '/cert', keyFile: '/key' },
    });
    expect(hcl).toContain(`retry_join = ["a\\"b", "$\${x}"]`);
    expect(hcl).toContain('"odd key" = "v"');
  });

  it('passes every guard', () => {
    expect(staging.errors).toEqual([]);
    expect(dev.errors).toEqual([]);
  });
});
