// Python virtual environments of the benchmark's peers, made on first use from their committed locks and
// kept under .bench/ (gitignored). Like scripts/setup-airflow.sh: idempotent, stamped by the hash of what
// was installed, so a changed lock reinstalls and an unchanged one costs nothing.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const root = new URL('../..', import.meta.url).pathname;
/** Everything the peers install or write: venvs, Redis, Airflow homes, logs. */
export const benchDir = join(root, '.bench');
export const log = (msg) => process.stderr.write(`bench: ${msg}\n`);

/**
 * The venv `.bench/<name>/venv` holding `requirements` installed with every file of `locks` as constraints.
 * Returns the venv's directory; `bin(name)` gives its programs.
 */
export function ensureVenv({ name, locks, requirements }) {
  const dir = join(benchDir, name, 'venv');
  const stampFile = join(dir, '.airfleet-bench-stamp');
  const hash = createHash('sha256');
  for (const lock of locks) hash.update(readFileSync(lock));
  hash.update(requirements.join('\n'));
  const want = hash.digest('hex').slice(0, 16);
  const python = join(dir, 'bin/python');
  if (existsSync(python) && existsSync(stampFile) && readFileSync(stampFile, 'utf8').trim() === want) return dir;
  try {
    execFileSync('python3', ['-c', 'import venv, ensurepip'], { stdio: 'ignore' });
  } catch {
    throw new Error(`the ${name} peer needs python3 with venv (apt-get install -y python3 python3-venv)`);
  }
  const t0 = Date.now();
  log(`${name}: first use: installing ${requirements.join(' ')} into ${dir} (from ${locks.length} lock file(s))`);
  mkdirSync(dir, { recursive: true });
  if (!existsSync(python)) execFileSync('python3', ['-m', 'venv', dir], { stdio: 'inherit' });
  const constraints = locks.flatMap((l) => ['-c', l]);
  execFileSync(
    join(dir, 'bin/pip'),
    ['--disable-pip-version-check', '-q', 'install', '--progress-bar', 'off', ...constraints, ...requirements],
    { stdio: 'inherit' },
  );
  writeFileSync(stampFile, `${want}\n`);
  log(`${name}: installed in ${Math.round((Date.now() - t0) / 1000)} s`);
  return dir;
}
