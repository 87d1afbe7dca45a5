import { realpathSync } from 'node:fs';
import { isAbsolute, normalize, posix, sep } from 'node:path';
import { z } from 'zod';
import { LIMITS } from '../domain/limits.ts';

/**
 * What a workload's `execConfig.docker` may ask of the docker runtime, checked on the worker before any
 * container exists. A `submit` token must not become root on the worker host: secret files are mounted only
 * from the directories the worker was started with (`--secrets-dir`), after resolving symlinks, and the
 * container's user is a name or number, nothing else.
 */

/** A path in the container: absolute, already normal (no `..`, no `//`, no trailing `/`). */
const containerPath = (what: string) =>
  z
    .string()
    .max(4_096)
    .refine((p) => p.startsWith('/') && p !== '/' && posix.normalize(p) === p && !p.split('/').includes('..'), {
      message: `${what} must be an absolute, normalized path in the container (no '..', no '//', not '/')`,
    });

const USER_NAME = '[a-z_][a-z0-9_.-]{0,31}';
const ID = '\\d{1,10}';
/** `name`, `uid`, `uid:gid`, `name:group` (what `docker run --user` takes, minus anything else). */
export const CONTAINER_USER = new RegExp(`^(?:${USER_NAME}|${ID})(?::(?:${USER_NAME}|${ID}))?$`);

const dockerExecConfig = z
  .object({
    secrets: z
      .array(
        z
          .object({
            source: z
              .string()
              .max(4_096)
              .refine((p) => isAbsolute(p), { message: 'source must be an absolute path on the worker host' }),
            target: containerPath('target'),
          })
          .strict(),
      )
      .max(32)
      .default([]),
    labels: z
      .record(z.string().min(1).max(128), z.string().max(1_024))
      .refine((labels) => Object.keys(labels).length <= LIMITS.labels, {
        message: `at most ${LIMITS.labels} labels`,
      })
      .refine((labels) => !Object.keys(labels).some((k) => k.startsWith('airfleet.')), {
        message: "label keys starting with 'airfleet.' are reserved for the worker",
      })
      .default({}),
    user: z
      .string()
      .regex(CONTAINER_USER, 'user must be a name, a uid, uid:gid or name:group (e.g. airflow, 50000, 50000:0)')
      .refine((u) => u.split(':').every((part) => !/^\d+$/.test(part) || Number(part) <= LIMITS.int32), {
        message: `user and group ids must be at most ${LIMITS.int32}`,
      })
      .optional(),
    workingDir: containerPath('workingDir').optional(),
  })
  .strict()
  .default({ secrets: [], labels: {} });

/** A read-only bind mount of one secret file (or directory), source already resolved to its real path. */
export interface SecretMount {
  source: string;
  target: string;
}

export interface DockerTaskOptions {
  mounts: SecretMount[];
  labels: Record<string, string>;
  user?: string;
  workingDir?: string;
}

/** The reasons a workload's `execConfig.docker` was refused, each naming its field. */
export class DockerOptionsError extends Error {
  override name = 'DockerOptionsError';
}

/**
 * Resolves a secret's source to a real path inside one of `allowedDirs` (themselves real paths), or says
 * why it cannot be mounted. Symlinks are resolved before the check, so a link inside an allowed directory
 * that points outside it is refused, and the resolved path is what gets mounted.
 */
function resolveSecretSource(source: string, dirs: SecretsDirs): { path: string } | { problem: string } {
  const allowedDirs = dirs.real;
  if (source.split('/').includes('..') || normalize(source) !== source) {
    return { problem: `'${source}' is not a normalized path (no '..', no '//'); name the file itself` };
  }
  if (allowedDirs.length === 0) {
    return {
      problem:
        'this worker allows no secret mounts; start it with --secrets-dir DIR (repeatable) naming the directories secrets may come from',
    };
  }
  const under = (path: string, list: readonly string[]) =>
    list.some((dir) => path === dir || path.startsWith(dir.endsWith(sep) ? dir : dir + sep));
  const within = (path: string) => under(path, allowedDirs);
  const outside = `is outside this worker's secrets directories (${allowedDirs.join(', ')}); only files in those may be mounted`;
  // The path as written first, without touching the file system: a submitter learns nothing about files
  // elsewhere on the host (not even whether they exist).
  if (!under(source, [...dirs.given, ...dirs.real])) return { problem: `'${source}' ${outside}` };
  let real: string;
  try {
    real = realpathSync(source);
  } catch {
    return { problem: `'${source}' does not exist on this worker's host` };
  }
  if (!within(real)) return { problem: `'${source}' resolves to '${real}', which ${outside}` };
  return { path: real };
}

/** Parses and checks `execConfig.docker` against this worker's secrets directories. */
export function dockerTaskOptions(execConfigDocker: unknown, dirs: SecretsDirs): DockerTaskOptions {
  const parsed = dockerExecConfig.safeParse(execConfigDocker ?? undefined);
  if (!parsed.success) {
    throw new DockerOptionsError(
      `execConfig.docker is invalid: ${parsed.error.issues
        .map((i) => `execConfig.docker.${i.path.join('.')}: ${i.message}`)
        .join('; ')}`,
    );
  }
  const options = parsed.data;
  const problems: string[] = [];
  const mounts: SecretMount[] = [];
  options.secrets.forEach((secret, i) => {
    const resolved = resolveSecretSource(secret.source, dirs);
    if ('problem' in resolved) problems.push(`execConfig.docker.secrets.${i}.source: ${resolved.problem}`);
    else mounts.push({ source: resolved.path, target: secret.target });
  });
  if (problems.length > 0) throw new DockerOptionsError(`secret mount refused: ${problems.join('; ')}`);
  return {
    mounts,
    labels: options.labels,
    ...(options.user ? { user: options.user } : {}),
    ...(options.workingDir ? { workingDir: options.workingDir } : {}),
  };
}

/** The worker's `--secrets-dir` values as given (normalized) and as real paths (symlinks resolved). */
export interface SecretsDirs {
  given: string[];
  real: string[];
}

/**
 * Checks the worker's `--secrets-dir` values once at start-up, so a typo stops the worker instead of
 * refusing every task later.
 */
export function resolveSecretsDirs(dirs: readonly string[]): SecretsDirs {
  const real = dirs.map((dir) => {
    if (!isAbsolute(dir)) throw new DockerOptionsError(`--secrets-dir '${dir}' must be an absolute path`);
    try {
      return realpathSync(dir);
    } catch {
      throw new DockerOptionsError(`--secrets-dir '${dir}' does not exist; create it or fix the path`);
    }
  });
  return { given: dirs.map((dir) => normalize(dir).replace(/(.)\/$/, '$1')), real };
}
