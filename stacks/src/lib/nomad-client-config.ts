/**
 * The Nomad client agent configuration (HCL) that cloud-init writes to /etc/nomad.d/nomad.hcl. It holds
 * paths to the TLS material, never the material: airfleet-nomad-tls fetches that at every agent start.
 */

export interface NomadClientConfigProps {
  region: string;
  datacenter: string;
  nodePool: string;
  /** Cloud auto-join or addresses, e.g. "provider=aws tag_key=nomad-server tag_value=prod". */
  serverJoin: readonly string[];
  /** Client meta, e.g. queue and instance_type; the executor's jobs constrain on it. */
  meta: Readonly<Record<string, string>>;
  /** Host directories for the `config` and `dags` host volumes (mounted read-only into tasks). */
  hostVolumes: { config: string; dags: string };
  tls: { caFile: string; certFile: string; keyFile: string };
  /** How long running allocations get to move elsewhere when the agent stops (instance refresh, scale-in). */
  drainDeadlineSeconds?: number;
  /** Docker config file (`credHelpers` per registry) the Docker driver takes registry credentials from. */
  dockerAuthFile?: string;
}

export const NOMAD_TLS_DIR = '/etc/nomad.d/tls';
export const NOMAD_TLS_FILES = {
  caFile: `${NOMAD_TLS_DIR}/ca.pem`,
  certFile: `${NOMAD_TLS_DIR}/client.pem`,
  keyFile: `${NOMAD_TLS_DIR}/client-key.pem`,
} as const;

/** An HCL string literal: JSON escaping plus HCL's template sequences (`${`, `%{`) doubled. */
export function hclString(value: string): string {
  return JSON.stringify(value)
    .replace(/\$\{/g, () => '$${')
    .replace(/%\{/g, '%%{');
}

function hclKey(key: string): string {
  return /^[A-Za-z_][A-Za-z0-9_-]*$/.test(key) ? key : hclString(key);
}

export function renderNomadClientConfig(props: NomadClientConfigProps): string {
  const meta = Object.entries(props.meta)
    .map(([k, v]) => `    ${hclKey(k)} = ${hclString(v)}`)
    .join('\n');
  const volume = (name: string, path: string) =>
    [`  host_volume ${hclString(name)} {`, `    path      = ${hclString(path)}`, '    read_only = true', '  }'].join(
      '\n',
    );
  return `# Nomad client agent, written by cloud-init (airfleet nomad-clients stack).
region     = ${hclString(props.region)}
datacenter = ${hclString(props.datacenter)}
data_dir   = "/opt/nomad/data"

client {
  enabled   = true
  node_pool = ${hclString(props.nodePool)}

  server_join {
    retry_join = [${props.serverJoin.map(hclString).join(', ')}]
  }

  meta {
${meta}
  }

  # Task configuration and DAG files, mounted read-only into every task by the executor's job template.
${volume('config', props.hostVolumes.config)}

${volume('dags', props.hostVolumes.dags)}

  # Stopping the agent (the drain lifecycle hook's guard does) drains the node first: allocations are
  # rescheduled elsewhere before the instance goes. No ACL token needed: the agent drains itself.
  drain_on_shutdown {
    deadline           = "${props.drainDeadlineSeconds ?? 600}s"
    force              = true
    ignore_system_jobs = true
  }
}

leave_on_terminate = true

acl {
  enabled = true
}

# Mutual TLS on HTTP and RPC; the files are fetched from SSM Parameter Store before the agent starts.
tls {
  http                   = true
  rpc                    = true
  ca_file                = ${hclString(props.tls.caFile)}
  cert_file              = ${hclString(props.tls.certFile)}
  key_file               = ${hclString(props.tls.keyFile)}
  verify_server_hostname = true
  verify_https_client    = true
}

plugin "docker" {
  config {
    allow_privileged = false
${
  props.dockerAuthFile
    ? `    # Registry credentials by registry (the environment's ECR through the instance role); others anonymous.
    auth {
      config = ${hclString(props.dockerAuthFile)}
    }
`
    : ''
}    # Tasks get files through the host volumes above, not through arbitrary bind mounts.
    volumes {
      enabled = false
    }
  }
}

telemetry {
  publish_allocation_metrics = true
  publish_node_metrics       = true
  prometheus_metrics         = true
}
`;
}
