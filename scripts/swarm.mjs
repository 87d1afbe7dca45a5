#!/usr/bin/env zx
// zx scripts/swarm.mjs up|down|config: airfleet as a `docker stack` on a Docker Swarm (Air-Tasks' home), from
// the locally built images (bash images/build-all.sh): PostgreSQL, the executor service with the autoscaler
// on, and one worker service per queue, each autoscaled between its bounds. Secrets (database password,
// secret key, admin and enrollment tokens) are Docker secrets, mounted as files: none is in a service's
// environment, in the compose file or on a command line. GPU queues run docker-runtime workers on nodes
// labelled `airfleet.gpu=true`, and their tasks get GPUs through device requests (execConfig/resources.gpus).
//
//   zx scripts/swarm.mjs up [--stack airfleet] [--tag dev] [--queues default:4:1:4,gpu:1:0:2] [--gpu-queues gpu]
//                           [--port 8470]
//   zx scripts/swarm.mjs down [--stack airfleet] [--keep-secrets]
//   zx scripts/swarm.mjs config ...   (prints the stack file `up` deploys, nothing else)
//
// A queue is `name:slotsPerWorker:minWorkers:maxWorkers` (docs/autoscaler.md). The admin token is written to
// .airfleet/swarm-<stack>/admin.token (mode 0600), where the CLI finds it:
//   airfleet --data-dir .airfleet/swarm-<stack> --api-url http://127.0.0.1:8470 pools
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { $, argv, chalk } from 'zx';

$.verbose = false;
const root = new URL('..', import.meta.url).pathname;
const command = argv._[0];
const stack = String(argv.stack ?? 'airfleet');
const tag = String(argv.tag ?? process.env.AIRFLEET_IMAGE_TAG ?? 'dev');
const port = Number(argv.port ?? 8470);
const gpuQueues = new Set(
  String(argv['gpu-queues'] ?? '')
    .split(',')
    .filter(Boolean),
);
const stateDir = join(root, '.airfleet', `swarm-${stack}`);

const fail = (message) => {
  process.stderr.write(`${chalk.red('swarm:')} ${message}\n`);
  process.exit(1);
};
const say = (message) => process.stdout.write(`${chalk.cyan('swarm:')} ${message}\n`);

if (!/^[a-z0-9][a-z0-9-]{0,30}$/.test(stack)) fail(`--stack ${stack}: use a-z, 0-9 and - (at most 31 characters)`);

/** `name:slots:min:max`, validated here; the service validates the pools again (with every error named). */
function parseQueues(text) {
  return text.split(',').map((spec) => {
    const [name, slots = '4', min = '1', max = '4'] = spec.split(':');
    const numbers = [slots, min, max].map(Number);
    if (!/^[a-z0-9][a-z0-9-]{0,40}$/.test(name ?? '') || numbers.some((n) => !Number.isInteger(n) || n < 0)) {
      fail(`--queues ${spec}: expected name:slotsPerWorker:minWorkers:maxWorkers, e.g. default:4:1:4`);
    }
    const [slotsPerWorker, minWorkers, maxWorkers] = numbers;
    if (slotsPerWorker < 1 || maxWorkers < 1 || maxWorkers < minWorkers) {
      fail(`--queues ${spec}: slotsPerWorker and maxWorkers must be at least 1, and maxWorkers at least minWorkers`);
    }
    return { name, slotsPerWorker, minWorkers, maxWorkers, gpu: gpuQueues.has(name) };
  });
}
const queues = parseQueues(String(argv.queues ?? 'default:4:1:4'));
for (const q of gpuQueues) if (!queues.some((x) => x.name === q)) fail(`--gpu-queues ${q}: not one of --queues`);

const SECRETS = {
  pg_password: () => randomBytes(24).toString('base64url'),
  secret_key: () => randomBytes(32).toString('base64'),
  admin_token: () => `aft_${randomBytes(9).toString('hex')}_${randomBytes(24).toString('base64url')}`,
  enroll_token: () => `aft_${randomBytes(9).toString('hex')}_${randomBytes(24).toString('base64url')}`,
};
const secretName = (key) => `${stack}_${key}`;

/** The stack file: JSON is YAML, so `docker stack deploy -c -` takes it as it is. */
function stackFile() {
  const image = (name) => `local/airfleet-${name}:${tag}`;
  // Readable by root only, but the enrollment token: process-runtime workers run as the image's own user.
  const secretRef = (key) => ({ source: secretName(key), target: key, mode: key === 'enroll_token' ? 0o444 : 0o400 });
  const pools = queues.map((q) => ({
    name: q.name,
    queues: [q.name],
    slotsPerWorker: q.slotsPerWorker,
    minWorkers: q.minWorkers,
    maxWorkers: q.maxWorkers,
    // Stack deploy names the service <stack>_<service>.
    driver: { kind: 'swarm', service: `${stack}_worker-${q.name}` },
  }));
  const services = {
    postgres: {
      image: image('postgres'),
      environment: {
        POSTGRES_USER: 'airfleet',
        POSTGRES_DB: 'airfleet',
        POSTGRES_PASSWORD_FILE: '/run/secrets/pg_password',
        POSTGRES_LISTEN_ADDRESSES: '*',
      },
      secrets: [secretRef('pg_password')],
      volumes: ['pgdata:/var/lib/postgresql/data'],
      networks: ['airfleet'],
      // DNS round robin rather than a virtual IP: one replica needs no load balancing, and the virtual IPs
      // (IPVS) are missing on some kernels, where connections to them fail (EHOSTUNREACH).
      deploy: { replicas: 1, endpoint_mode: 'dnsrr', placement: { constraints: ['node.role == manager'] } },
    },
    executor: {
      image: image('executor'),
      command: ['serve'],
      // The autoscaler drives the worker services through the Engine API of a manager: the socket is
      // root's, so this service runs as root (the socket is root-equivalent in any case).
      user: 'root',
      environment: {
        AIRFLEET_HOST: '0.0.0.0',
        AIRFLEET_PORT: '8470',
        PGHOST: 'postgres',
        PGUSER: 'airfleet',
        PGDATABASE: 'airfleet',
        PGPASSWORD_FILE: '/run/secrets/pg_password',
        AIRFLEET_SECRET_KEY_FILE: '/run/secrets/secret_key',
        AIRFLEET_ADMIN_TOKEN_FILE: '/run/secrets/admin_token',
        AIRFLEET_ENROLL_TOKEN_FILE: '/run/secrets/enroll_token',
        AIRFLEET_POOLS: JSON.stringify(pools),
      },
      secrets: ['pg_password', 'secret_key', 'admin_token', 'enroll_token'].map(secretRef),
      volumes: ['/var/run/docker.sock:/var/run/docker.sock'],
      // Published on the manager that runs it (the routing mesh needs the virtual IPs too).
      ports: [{ target: 8470, published: port, protocol: 'tcp', mode: 'host' }],
      networks: ['airfleet'],
      deploy: { replicas: 1, endpoint_mode: 'dnsrr', placement: { constraints: ['node.role == manager'] } },
    },
  };
  for (const q of queues) {
    services[`worker-${q.name}`] = {
      image: image('executor'),
      // The image's entrypoint is `tini -- airfleet`.
      command: [
        'worker',
        '--queues',
        q.name,
        '--concurrency',
        String(q.slotsPerWorker),
        '--runtime',
        q.gpu ? 'docker' : 'process',
      ],
      ...(q.gpu ? { user: 'root', volumes: ['/var/run/docker.sock:/var/run/docker.sock'] } : {}),
      environment: {
        AIRFLEET_API_URL: 'http://executor:8470',
        AIRFLEET_TOKEN_FILE: '/run/secrets/enroll_token',
        // Swarm expands these per task: the autoscaler finds each worker's task by them.
        AIRFLEET_WORKER_NAME: '{{.Task.Name}}',
        AIRFLEET_WORKER_LABELS: `airfleet.pool=${q.name},swarm.task={{.Task.ID}}`,
      },
      secrets: [secretRef('enroll_token')],
      networks: ['airfleet'],
      deploy: {
        replicas: q.minWorkers,
        // A worker the autoscaler drained leaves with exit 0 and must stay down (autoscaler/drivers/swarm-driver.ts).
        restart_policy: { condition: 'on-failure', delay: '5s' },
        // SIGINT drains (running tasks finish); Swarm's stop sends SIGTERM, which would stop them.
        ...(q.gpu ? { placement: { constraints: ['node.labels.airfleet.gpu == true'] } } : {}),
      },
      stop_signal: 'SIGINT',
      stop_grace_period: '15m',
    };
  }
  return {
    version: '3.8',
    services,
    networks: { airfleet: { driver: 'overlay', attachable: true } },
    volumes: { pgdata: {} },
    secrets: Object.fromEntries(Object.keys(SECRETS).map((key) => [secretName(key), { external: true }])),
  };
}

async function ensureSwarm() {
  const manager = (await $`docker info --format ${'{{.Swarm.ControlAvailable}}'}`).stdout.trim();
  if (manager !== 'true')
    fail('this engine is not a Swarm manager: run `docker swarm init` first (or run this on a manager)');
}

async function ensureImages() {
  for (const name of ['executor', 'postgres']) {
    const ok = await $`docker image inspect ${`local/airfleet-${name}:${tag}`}`.nothrow();
    if (ok.exitCode !== 0)
      fail(
        `image local/airfleet-${name}:${tag} is missing: build it with AIRFLEET_IMAGE_TAG=${tag} bash images/build-all.sh`,
      );
  }
}

/** Creates the secrets that do not exist yet; their values go through stdin only. Returns the admin token if made. */
async function ensureSecrets() {
  const existing = new Set((await $`docker secret ls --format ${'{{.Name}}'}`).stdout.split('\n').filter(Boolean));
  let admin = null;
  for (const [key, make] of Object.entries(SECRETS)) {
    if (existing.has(secretName(key))) continue;
    const value = make();
    await $({ input: value })`docker secret create --label airfleet.stack=${stack} ${secretName(key)} -`;
    if (key === 'admin_token') admin = value;
    say(`created Docker secret ${secretName(key)}`);
  }
  return admin;
}

if (command === 'config') {
  process.stdout.write(`${JSON.stringify(stackFile(), null, 2)}\n`);
} else if (command === 'up') {
  await ensureSwarm();
  await ensureImages();
  const admin = await ensureSecrets();
  if (admin) {
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    writeFileSync(join(stateDir, 'admin.token'), `${admin}\n`, { mode: 0o600 });
    chmodSync(join(stateDir, 'admin.token'), 0o600);
  }
  await $({ input: JSON.stringify(stackFile()) })`docker stack deploy --prune --resolve-image never -c - ${stack}`;
  say(
    `stack ${stack} deployed: executor on http://127.0.0.1:${port}, workers for ${queues.map((q) => q.name).join(', ')}`,
  );
  say(`try: airfleet --data-dir ${join('.airfleet', `swarm-${stack}`)} --api-url http://127.0.0.1:${port} pools`);
  if (gpuQueues.size > 0)
    say('GPU workers run on nodes labelled airfleet.gpu=true: docker node update --label-add airfleet.gpu=true <node>');
} else if (command === 'down') {
  await ensureSwarm();
  await $`docker stack rm ${stack}`.nothrow();
  // Secrets in use cannot be removed: wait for the stack's services to be gone.
  for (let i = 0; i < 60; i++) {
    const left = (await $`docker service ls -q --filter ${`label=com.docker.stack.namespace=${stack}`}`).stdout.trim();
    if (!left) break;
    await new Promise((r) => setTimeout(r, 1000));
  }
  if (!argv['keep-secrets']) {
    const names = Object.keys(SECRETS).map(secretName);
    for (const name of names) await $`docker secret rm ${name}`.nothrow();
    say(`removed the stack's secrets (${names.join(', ')}); the database volume ${stack}_pgdata is kept`);
  }
  say(`stack ${stack} removed`);
} else {
  fail(
    'usage: zx scripts/swarm.mjs up|down|config [--stack airfleet] [--tag dev] [--queues name:slots:min:max,...] [--gpu-queues q]',
  );
}
