import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CONTAINER_USER, dockerTaskOptions, resolveSecretsDirs } from '../../src/worker/docker-task-options.ts';

/** What the docker runtime accepts from `execConfig.docker`, decided before any container exists. */
describe('docker task options', () => {
  let dir: string;
  let secrets: string;
  let linked: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'airfleet-opts-'));
    secrets = join(dir, 'secrets');
    mkdirSync(secrets);
    writeFileSync(join(secrets, 'token'), 'x');
    writeFileSync(join(dir, 'outside'), 'y');
    symlinkSync(join(dir, 'outside'), join(secrets, 'out-link'));
    symlinkSync(join(secrets, 'token'), join(secrets, 'in-link'));
    // The configured directory may itself be reached through a symlink.
    linked = join(dir, 'linked-secrets');
    symlinkSync(secrets, linked);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const mount = (source: string, dirs = [secrets]) =>
    dockerTaskOptions({ secrets: [{ source, target: '/run/s' }] }, resolveSecretsDirs(dirs));

  it('mounts a file inside a secrets directory, by its real path', () => {
    expect(mount(join(secrets, 'token')).mounts).toEqual([{ source: join(secrets, 'token'), target: '/run/s' }]);
    expect(mount(join(secrets, 'in-link')).mounts[0]!.source).toBe(join(secrets, 'token'));
    expect(mount(join(linked, 'token'), [linked]).mounts[0]!.source).toBe(join(secrets, 'token'));
  });

  it('refuses sources outside, through "..", through a symlink out, or with no secrets directory', () => {
    expect(() => mount('/var/run/docker.sock')).toThrow(
      `execConfig.docker.secrets.0.source: '/var/run/docker.sock' is outside this worker's secrets directories (${secrets})`,
    );
    expect(() => mount(`${secrets}/../outside`)).toThrow(/is not a normalized path \(no '\.\.', no '\/\/'\)/);
    expect(() => mount(`${secrets}//token`)).toThrow(/is not a normalized path/);
    expect(() => mount(join(secrets, 'out-link'))).toThrow(`resolves to '${join(dir, 'outside')}', which is outside`);
    expect(() => mount(join(secrets, 'missing'))).toThrow(/does not exist on this worker's host/);
    expect(() => mount(join(secrets, 'token'), [])).toThrow(/allows no secret mounts; start it with --secrets-dir DIR/);
    // A sibling whose name starts like the directory is not inside it.
    mkdirSync(`${secrets}-evil`, { recursive: true });
    writeFileSync(`${secrets}-evil/x`, 'z');
    expect(() => mount(`${secrets}-evil/x`)).toThrow(/is outside/);
  });

  it('says nothing about host files outside the secrets directories (not even whether they exist)', () => {
    const missing = '/no/such/file';
    const existing = '/etc/hostname';
    const say = (source: string) => {
      try {
        mount(source);
        return '';
      } catch (error) {
        return (error as Error).message.replace(source, 'X');
      }
    };
    expect(say(missing)).toBe(say(existing));
  });

  it('takes a user as name, uid, uid:gid or name:group and nothing else', () => {
    for (const ok of ['airflow', '50000', '50000:0', 'airflow:root', '_svc.x-1'])
      expect(CONTAINER_USER.test(ok)).toBe(true);
    for (const bad of ['', '0 --privileged', 'root;id', 'a:b:c', '../x', 'Airflow', `${'a'.repeat(40)}`]) {
      expect(CONTAINER_USER.test(bad)).toBe(false);
    }
    expect(() => dockerTaskOptions({ user: '99999999999' }, resolveSecretsDirs([]))).toThrow(/at most 2147483647/);
    expect(dockerTaskOptions({ user: '50000:0' }, resolveSecretsDirs([])).user).toBe('50000:0');
  });

  it('takes targets and working directories only as normalized absolute container paths', () => {
    const opts = (docker: unknown) => () => dockerTaskOptions(docker, resolveSecretsDirs([secrets]));
    expect(opts({ secrets: [{ source: join(secrets, 'token'), target: 'relative' }] })).toThrow(
      /execConfig\.docker\.secrets\.0\.target: target must be an absolute, normalized path/,
    );
    expect(opts({ secrets: [{ source: join(secrets, 'token'), target: '/a/../b' }] })).toThrow(/target must be/);
    expect(opts({ workingDir: '/' })).toThrow(/workingDir must be/);
    expect(opts({ labels: { 'airfleet.worker': 'spoof' } })).toThrow(/reserved/);
    expect(opts({ privileged: true })).toThrow(/execConfig\.docker/);
  });

  it('refuses secrets directories that are not absolute or do not exist, at start-up', () => {
    expect(() => resolveSecretsDirs(['relative/dir'])).toThrow("--secrets-dir 'relative/dir' must be an absolute path");
    expect(() => resolveSecretsDirs([join(dir, 'nope')])).toThrow(/does not exist; create it or fix the path/);
  });
});
