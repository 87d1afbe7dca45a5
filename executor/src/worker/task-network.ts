import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import type Docker from 'dockerode';

const run = promisify(execFile);

/**
 * Link-local addresses, where clouds serve instance metadata and credentials (169.254.169.254 on AWS, GCP
 * and Azure; 169.254.170.2 for ECS task roles). A task that reached them would get the worker's instance
 * role, and with it whatever the role may read (the enroll token, for one).
 */
export const BLOCKED_RANGE = '169.254.0.0/16';
const COMMENT = 'airfleet: task containers may not reach link-local (instance metadata) addresses';

/** The task network could not be set up as safe: the worker does not start (fail closed). */
export class TaskNetworkError extends Error {
  override name = 'TaskNetworkError';
}

/** Linux caps interface names at 15 characters; a longer network name gets a short, stable bridge name. */
function bridgeNameFor(network: string): string {
  if (/^[A-Za-z0-9_.-]{1,15}$/.test(network)) return network;
  return `af-${createHash('sha256').update(network).digest('hex').slice(0, 12)}`;
}

/** The user-defined bridge network task containers join, created when missing; returns its bridge device. */
async function ensureNetwork(docker: Docker, name: string): Promise<string> {
  const find = async () => (await docker.listNetworks({ filters: { name: [name] } })).find((n) => n.Name === name);
  let network = await find();
  if (!network) {
    try {
      await docker.createNetwork({
        Name: name,
        Driver: 'bridge',
        CheckDuplicate: true,
        Labels: { 'airfleet.role': 'task-network' },
        Options: { 'com.docker.network.bridge.name': bridgeNameFor(name) },
      });
    } catch (error) {
      // Another worker on this host may have created it at the same moment.
      if (!(await find())) {
        throw new TaskNetworkError(`could not create the task network '${name}': ${(error as Error).message}`);
      }
    }
    network = await find();
  }
  if (!network) throw new TaskNetworkError(`the task network '${name}' vanished while it was being set up`);
  if (network.Driver !== 'bridge') {
    throw new TaskNetworkError(
      `the task network '${name}' exists with driver '${network.Driver}'; it must be a bridge network (remove it, or choose another with --task-network)`,
    );
  }
  return network.Options?.['com.docker.network.bridge.name'] ?? `br-${network.Id.slice(0, 12)}`;
}

/**
 * One REJECT rule per chain for traffic from the bridge to the blocked range: DOCKER-USER (Docker's chain
 * for user rules, consulted before its own in FORWARD) for traffic routed off the host, INPUT for the host
 * itself (a metadata proxy on the host would be reached through INPUT). REJECT, not DROP: the task sees
 * "No route to host" at once instead of hanging, and so does its user, in the task's log.
 */
async function ensureRejectRules(bridge: string): Promise<void> {
  const spec = [
    '-i',
    bridge,
    '-d',
    BLOCKED_RANGE,
    '-m',
    'comment',
    '--comment',
    COMMENT,
    '-j',
    'REJECT',
    '--reject-with',
    'icmp-admin-prohibited',
  ];
  for (const chain of ['DOCKER-USER', 'INPUT']) {
    try {
      await run('iptables', ['-w', '-n', '-L', chain]);
    } catch (error) {
      throw new TaskNetworkError(
        `cannot block instance metadata for task containers: iptables has no chain ${chain} here (${stderrOf(error)}). ` +
          "The worker must run in the Docker host's network namespace, as root or with CAP_NET_ADMIN; or start it " +
          'with --host-network to run tasks on the host network, where they can reach the metadata service.',
      );
    }
    try {
      await run('iptables', ['-w', '-C', chain, ...spec]);
      continue; // already there (another worker on this host, or an earlier start)
    } catch {
      // not there yet: insert it first in the chain
    }
    try {
      await run('iptables', ['-w', '-I', chain, '1', ...spec]);
    } catch (error) {
      throw new TaskNetworkError(
        `cannot block instance metadata for task containers: \`iptables -I ${chain} -i ${bridge} -d ${BLOCKED_RANGE} -j REJECT\` failed (${stderrOf(error)}). ` +
          'Run the worker as root (or with CAP_NET_ADMIN), install that rule yourself before starting it, or start ' +
          'it with --host-network to run tasks on the host network, where they can reach the metadata service.',
      );
    }
  }
}

function stderrOf(error: unknown): string {
  const stderr = (error as { stderr?: string }).stderr?.trim();
  return stderr || (error as Error).message;
}

/**
 * Sets up the network task containers run on: the user-defined bridge `name` with link-local addresses
 * rejected, checked before the worker takes any task. Returns the `NetworkMode` for task containers.
 */
export async function prepareTaskNetwork(
  docker: Docker,
  name: string,
): Promise<{ networkMode: string; bridge: string }> {
  const bridge = await ensureNetwork(docker, name);
  if (!existsSync(`/sys/class/net/${bridge}`)) {
    throw new TaskNetworkError(
      `the task network's bridge device ${bridge} is not visible to the worker: it must run in the Docker host's network namespace (or start it with --host-network)`,
    );
  }
  await ensureRejectRules(bridge);
  return { networkMode: name, bridge };
}
