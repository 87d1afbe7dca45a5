import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { COMPONENTS } from '../src/airfleet-stack.ts';
import { environments } from '../src/config/environments/index.ts';
import { DEPLOY_FLAGS, parseDeployArgs } from '../src/deploy-args.ts';

// Every command in the shell code blocks of README.md, stacks/README.md and docs/*.md, checked against
// the repository as `bash scripts/setup.sh` leaves it: the program is on PATH after setup (`zx` is not:
// only `npx zx` is), the file it runs exists and parses, the npm script exists, and each flag is one the
// program accepts (deploy.mjs through its own parser; other programs by the flag in their sources). A
// command the test does not know fails it, so a new kind of documented command gets a check too.

const root = resolve(__dirname, '../..');
const docs = ['README.md', 'stacks/README.md', ...readdirSync(join(root, 'docs')).map((f) => `docs/${f}`)].filter((f) =>
  f.endsWith('.md'),
);
const packageJson = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> };

/** Programs the docs call that this repository does not ship: they are not checked here. */
const EXTERNAL = new Set([
  'aws',
  'nomad',
  'terraform',
  'tofu',
  'pip',
  'docker',
  'apt-get',
  'export',
  'cd',
  'curl',
  'rm',
  'chmod',
  'umask',
]);

interface Documented {
  doc: string;
  line: string;
  argv: string[];
}

function shellBlocks(text: string): string[] {
  return [...text.matchAll(/^```(?:bash|sh|shell)\n([\s\S]*?)^```/gm)].map((m) => m[1]!);
}

/** Splits a line like a shell would for these purposes: quotes kept together, comments dropped. */
function words(line: string): string[] {
  const out: string[] = [];
  for (const m of line.matchAll(/'[^']*'|"[^"]*"|(#.*$)|\S+/g)) {
    if (m[1] !== undefined) break;
    out.push(m[0].replace(/^(['"])(.*)\1$/, '$2'));
  }
  return out;
}

/** A synopsis's optional parts as one concrete command: `[--engine terraform|tofu]` -> `--engine terraform`. */
function concrete(line: string): string {
  return line.replace(/\[([^\]]*)\]/g, (_, inner: string) => inner).replace(/(\S+?)\|\S+/g, '$1');
}

const commands: Documented[] = docs.flatMap((doc) =>
  shellBlocks(readFileSync(join(root, doc), 'utf8')).flatMap((block) =>
    block
      .replace(/\\\n/g, ' ')
      .split('\n')
      .flatMap((line) => concrete(line).split('&&'))
      .map((part) => ({ doc, line: part.trim(), argv: words(part).filter((_, i, all) => !isAssignment(all, i)) }))
      .filter((c) => c.argv.length > 0),
  ),
);

function isAssignment(all: string[], i: number): boolean {
  return all.slice(0, i + 1).every((w) => /^[A-Z_][A-Z0-9_]*=/.test(w));
}

function flagsOf(argv: readonly string[]): string[] {
  return argv.filter((a) => /^--[a-z]/.test(a)).map((a) => a.slice(2).split('=')[0]!);
}

function sourcesOf(files: readonly string[]): string {
  return files.map((f) => readFileSync(join(root, f), 'utf8')).join('\n');
}

function filesUnder(dir: string): string[] {
  return readdirSync(join(root, dir), { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && /\.(ts|mjs)$/.test(e.name))
    .map((e) => join(e.parentPath.slice(root.length + 1), e.name));
}

/** The problem with one documented command, or undefined when it checks out. */
function problemWith(argv: string[]): string | undefined {
  const [first, ...rest] = argv;
  const program = first!.replace(/^\(/, ''); // a subshell: `(umask 077 && ...)`
  if (program === 'zx') return '`zx` is not on PATH after scripts/setup.sh: write `npx zx`';
  if (program === 'npx' && rest[0] === 'zx') return scriptProblem(rest[1], rest.slice(2));
  if (program === 'node') return existsSync(join(root, rest[0] ?? '')) ? undefined : `no file ${rest[0]}`;
  if (program === 'bash') {
    const file = rest[0] ?? '';
    if (!existsSync(join(root, file))) return `no file ${file}`;
    const check = spawnSync('bash', ['-n', join(root, file)], { encoding: 'utf8' });
    return check.status === 0 ? undefined : `bash -n ${file}: ${check.stderr}`;
  }
  if (program === 'npm') return npmProblem(rest);
  if (program === 'npx' && rest[0] === 'airfleet') return airfleetProblem(rest.slice(1));
  if (program === 'npx' && rest[0] === 'cdktf') return cdktfProblem(rest.slice(1));
  if (program === 'npx' && rest[0] === 'jest') {
    const pattern = rest[rest.indexOf('--testPathPatterns') + 1];
    const tests = [...filesUnder('stacks/test'), ...filesUnder('integration/test')];
    return pattern && !tests.some((t) => t.includes(pattern)) ? `no test file matches ${pattern}` : undefined;
  }
  if (program && EXTERNAL.has(program)) return undefined;
  return `the docs test does not know how to check \`${program}\`: add a case to stacks/test/docs-commands.test.ts`;
}

function scriptProblem(file: string | undefined, args: string[]): string | undefined {
  if (!file || !existsSync(join(root, file))) return `no script ${file}`;
  if (file === 'scripts/deploy.mjs') {
    try {
      const parsed = parseDeployArgs(args);
      const unknownEnv = parsed.env && !(parsed.env in environments) ? `no environment ${parsed.env}` : undefined;
      const prefix = `${parsed.env}-`;
      const unknownStack = parsed.stacks?.find(
        (s) => !(COMPONENTS as readonly string[]).includes(s.startsWith(prefix) ? s.slice(prefix.length) : s),
      );
      return unknownEnv ?? (unknownStack ? `no component ${unknownStack}` : undefined);
    } catch (error) {
      return (error as Error).message.split('\n')[0];
    }
  }
  const sources = sourcesOf(
    readdirSync(join(root, 'scripts'))
      .filter((f) => f.endsWith('.mjs'))
      .map((f) => `scripts/${f}`),
  );
  const unknown = flagsOf(args).filter((f) => !sources.includes(`'${f}'`) && !sources.includes(`argv.${f}`));
  return unknown.length > 0 ? `${file} reads no flag ${unknown.map((f) => `--${f}`).join(', ')}` : undefined;
}

function npmProblem(args: string[]): string | undefined {
  const name = args[0] === 'run' ? args[1] : args[0];
  if (!name || !packageJson.scripts[name]) return `package.json has no script "${name}"`;
  const dash = args.indexOf('--');
  const flags = dash === -1 ? [] : flagsOf(args.slice(dash + 1));
  const script = packageJson.scripts[name]!.match(/scripts\/\S+\.mjs/)?.[0];
  if (flags.length === 0 || !script) return undefined;
  const sources = sourcesOf([script, ...filesUnder('scripts/bench').filter((f) => f.endsWith('.mjs'))]);
  const unknown = flags.filter((f) => !sources.includes(`'${f}'`) && !sources.includes(`--${f}`));
  return unknown.length > 0 ? `${script} reads no flag ${unknown.map((f) => `--${f}`).join(', ')}` : undefined;
}

function airfleetProblem(args: string[]): string | undefined {
  const sources = sourcesOf(filesUnder('executor/src/cli'));
  const command = args[0];
  if (!command || !sources.includes(`.command('${command}`)) return `airfleet has no command ${command}`;
  const dash = args.indexOf('--');
  const unknown = flagsOf(dash === -1 ? args : args.slice(0, dash)).filter(
    (f) => !new RegExp(`['\\s,]--${f}(?![\\w-])`).test(sources),
  );
  return unknown.length > 0 ? `airfleet ${command} has no flag ${unknown.map((f) => `--${f}`).join(', ')}` : undefined;
}

function cdktfProblem(args: string[]): string | undefined {
  const [command, ...rest] = args;
  if (!['synth', 'deploy', 'destroy', 'diff'].includes(command ?? '')) return `cdktf ${command} is not documented here`;
  const bin = join(root, 'node_modules/.bin/cdktf');
  if (!existsSync(bin)) return 'cdktf-cli is not installed (node_modules/.bin/cdktf)';
  const bundle = readFileSync(join(root, 'node_modules/cdktf-cli/bundle/bin/cmds/handlers.js'), 'utf8');
  const cli = readFileSync(join(root, 'node_modules/cdktf-cli/bundle/bin/cdktf.js'), 'utf8');
  const unknown = flagsOf(rest).filter((f) => !bundle.includes(f) && !cli.includes(f));
  if (unknown.length > 0) return `cdktf ${command} has no flag ${unknown.map((f) => `--${f}`).join(', ')}`;
  const stack = rest.find((a) => !a.startsWith('-'));
  if (!stack) return undefined;
  const env = Object.keys(environments).find((e) => stack.startsWith(`${e}-`));
  const component = env ? stack.slice(env.length + 1) : '';
  return env && (COMPONENTS as readonly string[]).includes(component) ? undefined : `no stack ${stack}`;
}

describe('documented commands', () => {
  it('finds the shell blocks of the docs', () => {
    expect(commands.length).toBeGreaterThan(20);
    expect(commands.some((c) => c.argv[2] === 'scripts/deploy.mjs')).toBe(true);
  });

  it.each(commands.map((c) => [`${c.doc}: ${c.line}`, c] as const))('%s', (_, command) => {
    expect(problemWith(command.argv)).toBeUndefined();
  });

  it('lists every deploy flag in the usage text and in stacks/README.md', () => {
    const readme = readFileSync(join(root, 'stacks/README.md'), 'utf8');
    const missing = DEPLOY_FLAGS.filter((f) => f !== 'help' && !readme.includes(`--${f}`));
    expect(missing).toEqual([]);
  });

  it('runs `npx zx scripts/deploy.mjs --help` as documented', () => {
    const result = spawnSync('npx', ['zx', 'scripts/deploy.mjs', '--help'], { cwd: root, encoding: 'utf8' });
    expect({ status: result.status, stderr: result.stderr }).toEqual({ status: 0, stderr: '' });
    expect(result.stdout).toContain('usage: npx zx scripts/deploy.mjs --env');
  });

  it('knows a wrong flag when it sees one', () => {
    expect(problemWith(['zx', 'scripts/smoke.mjs'])).toMatch(/npx zx/);
    expect(problemWith(['npx', 'zx', 'scripts/deploy.mjs', '--env', 'dev', '--endpiont', 'x'])).toMatch(/endpiont/);
    expect(problemWith(['npx', 'cdktf', 'deploy', 'dev-network', '--skip-lock'])).toMatch(/skip-lock/);
    expect(problemWith(['npx', 'airfleet', 'serve', '--databse-url', 'x'])).toMatch(/databse-url/);
    expect(problemWith(['npm', 'run', 'smoek'])).toMatch(/smoek/);
  });
});
