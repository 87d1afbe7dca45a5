// The Celery peer (`npm run bench -- --vs celery`): a Celery 5.7 worker (prefork, one process per core, the
// durable settings of scripts/bench/celery_app.py) on a Redis broker, driven by scripts/bench/celery_driver.py.
//
// Redis is Debian's: `redis-server` from PATH if installed (apt-get install -y redis-server), otherwise the
// bench fetches Debian's redis-server and redis-tools packages (the binary is in the latter) and the two
// libraries it needs with `apt-get download` and unpacks them under .bench/redis (dpkg -x): no root, no
// system service started. It runs on
// 127.0.0.1 with a random password from a 0600 config file, the append-only file on (appendfsync everysec) and
// no RDB snapshots.
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { stopChild } from './children.mjs';
import { CpuMeter } from './cpu.mjs';
import { benchDir, ensureVenv, log, root } from './venv.mjs';

const CELERY = 'celery[redis]==5.7.0';
export const CELERY_VERSION = CELERY.split('==')[1];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The redis-server binary and the environment it runs with; fetched from Debian on first use. */
export function ensureRedis() {
  try {
    const path = execFileSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).trim();
    if (path) return { bin: path, env: {}, source: 'PATH' };
  } catch {}
  const dir = join(benchDir, 'redis');
  const bin = join(dir, 'usr/bin/redis-server');
  const env = { LD_LIBRARY_PATH: join(dir, 'usr/lib/x86_64-linux-gnu') };
  if (!existsSync(bin)) {
    const debs = join(dir, 'debs');
    mkdirSync(debs, { recursive: true });
    log(`celery: first use: fetching Debian's redis-server with apt-get download into ${dir}`);
    try {
      execFileSync('apt-get', ['download', '-q', 'redis-server', 'redis-tools', 'libjemalloc2', 'liblzf1'], {
        cwd: debs,
        stdio: ['ignore', 'inherit', 'pipe'],
      });
    } catch (error) {
      throw new Error(
        `celery: the Celery peer needs a Redis server and apt-get download failed (${String(error.stderr ?? error.message).trim()}). ` +
          'Install it with `apt-get install -y redis-server`, or run `apt-get update` and rerun the bench.',
      );
    }
    for (const deb of readdirSync(debs).filter((f) => f.endsWith('.deb'))) {
      execFileSync('dpkg', ['-x', join(debs, deb), dir]);
    }
  }
  return { bin, env, source: '.bench/redis (Debian packages)' };
}

function redisPing(port, password) {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    let data = '';
    s.on('data', (d) => {
      data += d;
      if (data.includes('+PONG')) {
        s.destroy();
        resolve(true);
      }
    });
    s.on('error', () => resolve(false));
    s.on('connect', () => s.write(`AUTH ${password}\r\nPING\r\n`));
    setTimeout(() => {
      s.destroy();
      resolve(false);
    }, 1000);
  });
}

async function freePort() {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Starts Redis and a Celery worker; returns { run(scenario), stop() }. */
export async function startCelery({ concurrency = availableParallelism() } = {}) {
  const venv = ensureVenv({ name: 'celery', locks: [join(root, 'scripts/bench/celery.lock')], requirements: [CELERY] });
  const redis = ensureRedis();
  const redisVersion = execFileSync(redis.bin, ['--version'], {
    encoding: 'utf8',
    env: { ...process.env, ...redis.env },
  }).trim();
  const run = join(benchDir, 'celery/run');
  rmSync(run, { recursive: true, force: true });
  mkdirSync(run, { recursive: true, mode: 0o700 });
  const port = await freePort();
  const password = randomBytes(24).toString('hex');
  writeFileSync(
    join(run, 'redis.conf'),
    [
      'bind 127.0.0.1',
      `port ${port}`,
      'protected-mode yes',
      `requirepass ${password}`,
      `dir ${run}`,
      'appendonly yes',
      'appendfsync everysec',
      'save ""',
      'daemonize no',
      `logfile ${join(run, 'redis.log')}`,
    ].join('\n'),
    { mode: 0o600 },
  );
  log(
    `celery: starting Redis on 127.0.0.1:${port} (${redisVersion.split(' ').slice(0, 3).join(' ')}, ${redis.source})`,
  );
  const server = spawn(redis.bin, [join(run, 'redis.conf')], {
    env: { ...process.env, ...redis.env },
    stdio: 'ignore',
  });
  let worker = null;
  const stop = async () => {
    await stopChild(worker);
    await stopChild(server);
  };
  try {
    const t0 = Date.now();
    while (!(await redisPing(port, password))) {
      if (server.exitCode !== null) throw new Error(`celery: redis-server exited at start; see ${run}/redis.log`);
      if (Date.now() - t0 > 30_000) throw new Error(`celery: Redis was not up after 30 s; see ${run}/redis.log`);
      await sleep(100);
    }
    const env = {
      PATH: `${join(venv, 'bin')}:${process.env.PATH}`,
      HOME: process.env.HOME ?? '/tmp',
      PYTHONPATH: join(root, 'scripts/bench'),
      AIRFLEET_BENCH_BROKER_URL: `redis://:${password}@127.0.0.1:${port}/0`,
      AIRFLEET_BENCH_STARTS: join(run, 'starts.log'),
    };
    const logFile = join(run, 'worker.log');
    log(`celery: starting the worker (prefork, concurrency ${concurrency}); its log is ${logFile}`);
    worker = spawn(
      join(venv, 'bin/celery'),
      ['-A', 'celery_app', 'worker', '--pool', 'prefork', '--concurrency', String(concurrency), '-Q', 'bench'],
      { env, cwd: join(root, 'scripts/bench'), stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const out = createWriteStream(logFile);
    worker.stdout.pipe(out);
    worker.stderr.pipe(out);
    let driverPid = null;
    const meter = new CpuMeter({ worker: () => [worker.pid], broker: () => [server.pid], load: () => [driverPid] });

    async function runScenario(s) {
      rmSync(env.AIRFLEET_BENCH_STARTS, { force: true });
      const args = [
        join(root, 'scripts/bench/celery_driver.py'),
        `--rate=${s.rate}`,
        `--seconds=${s.seconds}`,
        `--backlog=${s.backlog}`,
      ];
      const driver = spawn(join(venv, 'bin/python'), args, { env, stdio: ['ignore', 'pipe', 'inherit'] });
      driverPid = driver.pid;
      const exited = new Promise((resolve) => driver.once('exit', resolve));
      let result = null;
      for await (const line of createInterface({ input: driver.stdout })) {
        if (line.startsWith('@mark ')) meter.sample(line.slice(6));
        else if (line.startsWith('{')) result = JSON.parse(line).result ?? result;
        if (worker.exitCode !== null) throw new Error(`celery: the worker exited; see ${logFile}`);
      }
      const code = await exited;
      if (code !== 0 || !result)
        throw new Error(`celery: the driver exited with ${code}; the worker's log is ${logFile}`);
      result.cpu = {
        rate: meter.between('rate-start', 'rate-end'),
        backlog: meter.between('backlog-start', 'backlog-end'),
      };
      result.concurrency = concurrency;
      result.redis = redisVersion;
      return result;
    }
    return { run: runScenario, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
