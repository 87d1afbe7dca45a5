import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildApp } from '../../stacks/src/app.ts';
import { motoAvailability, type StartedMoto, startMoto } from '../src/moto.ts';
import {
  findTerraform,
  mirroredProviders,
  missingFromMirror,
  PROVIDER_MIRROR,
  type RunResult,
  readStackJson,
  Terraform,
  writeAwsEndpointOverride,
  writeCliConfig,
} from '../src/terraform.ts';

// The synthesized stacks under a real terraform, offline: `init` against the local provider mirror and
// `validate` for every stack whose providers the mirror holds, then `apply` of the dev environment's AWS
// stacks to a moto server. Every stack keeps its state locally for the test (the app's localStateDir,
// which also points the cross-stack remote-state lookups at the local files). Whatever cannot run here
// (no terraform, no mirror, no moto, a provider the mirror lacks) is skipped with the reason printed.

interface Manifest {
  stacks: Record<string, { workingDirectory: string; synthesizedStackPath: string; dependencies: string[] }>;
}

interface StackUnderTest {
  name: string;
  dir: string;
  dependencies: string[];
  /** Required providers the mirror lacks; such a stack cannot even be initialised offline. */
  missing: string[];
}

const workdir = mkdtempSync(join(tmpdir(), 'airfleet-terraform-'));
const terraformBinary = findTerraform();
const mirrored = mirroredProviders();
const moto = motoAvailability();

function synthesize(name: string, only?: string[]): StackUnderTest[] {
  const outdir = join(workdir, name);
  buildApp({ outdir, localStateDir: join(workdir, `${name}-state`), ...(only ? { only } : {}) }).app.synth();
  const manifest = JSON.parse(readFileSync(join(outdir, 'manifest.json'), 'utf8')) as Manifest;
  return Object.entries(manifest.stacks).map(([stack, entry]) => ({
    name: stack,
    dir: join(outdir, entry.workingDirectory),
    dependencies: entry.dependencies,
    missing: missingFromMirror(readStackJson(join(outdir, entry.synthesizedStackPath)), mirrored),
  }));
}

const allStacks = synthesize('all');
const terraformReason = !terraformBinary.ok
  ? terraformBinary.reason
  : mirrored.size === 0
    ? `no providers in the mirror at ${PROVIDER_MIRROR} (and no registry to download from)`
    : undefined;
const cliConfig = writeCliConfig(join(workdir, 'terraform.rc'), mirrored);
const terraform = terraformBinary.ok ? terraformBinary : undefined;

function notMirrored(stack: StackUnderTest): string {
  return `${stack.missing.join(', ')} is not in the provider mirror at ${PROVIDER_MIRROR}, and no registry is reachable to download it`;
}

if (terraformReason) console.warn(`stacks-terraform: init, validate and apply are skipped: ${terraformReason}`);
for (const stack of allStacks.filter((s) => s.missing.length > 0)) {
  console.warn(`stacks-terraform: ${stack.name} cannot be validated or applied: ${notMirrored(stack)}`);
}

/** Runs `task` for every item, at most `limit` at a time. */
async function pool<T>(items: readonly T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  const queue = [...items];
  await Promise.all(
    Array.from({ length: Math.min(limit, queue.length) }, async () => {
      for (let item = queue.shift(); item !== undefined; item = queue.shift()) await task(item);
    }),
  );
}

afterAll(() => {
  rmSync(workdir, { recursive: true, force: true });
});

// Both long jobs start together, before any test: validation is CPU-bound, the applies mostly wait on
// moto and on the provider's polling, so they overlap well. Tests await the job they report on.
let validation: Promise<Map<string, RunResult>> = Promise.resolve(new Map());
let applying: Promise<void> = Promise.resolve();
let startValidation = () => {};
let startApply = () => {};

describe('synthesized stacks under terraform', () => {
  beforeAll(() => {
    startValidation();
    startApply();
  });

  it('synthesizes every stack of every environment', () => {
    expect(allStacks.map((s) => s.name).sort()).toHaveLength(22);
  });

  describe(`terraform init and validate, providers from ${PROVIDER_MIRROR}`, () => {
    const validatable = terraformReason ? [] : allStacks.filter((s) => s.missing.length === 0).map((s) => s.name);
    const skipped = allStacks.filter((s) => terraformReason || s.missing.length > 0).map((s) => s.name);
    startValidation = () => {
      if (!terraform || validatable.length === 0) return;
      const tf = new Terraform({ binary: terraform.binary, cliConfigFile: cliConfig });
      validation = (async () => {
        const results = new Map<string, RunResult>();
        await pool(
          allStacks.filter((s) => validatable.includes(s.name)),
          2,
          async (stack) => {
            const init = await tf.init(stack.dir);
            results.set(stack.name, init.code === 0 ? await tf.validate(stack.dir) : init);
          },
        );
        return results;
      })();
      validation.catch(() => {});
    };

    if (validatable.length > 0) {
      it.each(validatable)(
        '%s initialises offline and validates',
        async (name) => {
          const result = (await validation).get(name)!;
          if (result.code !== 0) throw new Error(result.describe());
          const report = JSON.parse(result.stdout) as { valid: boolean; error_count: number };
          expect({ valid: report.valid, errors: report.error_count }).toEqual({ valid: true, errors: 0 });
        },
        15 * 60_000,
      );
    }
    if (skipped.length > 0) it.skip.each(skipped)('%s (skipped: see the warning printed above)', () => {});
  });

  describe('terraform apply of the dev AWS stacks to moto', () => {
    const applyReason = terraformReason ?? (moto.ok ? undefined : moto.reason);
    if (applyReason) console.warn(`stacks-terraform: apply to moto is skipped: ${applyReason}`);
    const devStacks = applyReason ? [] : synthesize('apply', ['dev']);
    // A stack is applied when its providers are mirrored and so is everything it depends on.
    const applicable = new Set<string>();
    // The manifest may list a stack before its dependencies: iterate to a fixed point.
    let changed = true;
    while (changed) {
      changed = false;
      for (const stack of devStacks) {
        if (applicable.has(stack.name) || stack.missing.length > 0) continue;
        if (stack.dependencies.every((d) => applicable.has(d))) {
          applicable.add(stack.name);
          changed = true;
        }
      }
    }
    const applied = devStacks.filter((s) => applicable.has(s.name)).map((s) => s.name);
    const notApplied = devStacks.filter((s) => !applicable.has(s.name));
    for (const stack of notApplied) {
      console.warn(
        `stacks-terraform: ${stack.name} is not applied: ${stack.missing.length > 0 ? notMirrored(stack) : 'it depends on a stack that cannot be applied'}`,
      );
    }

    let server: StartedMoto | undefined;
    let tf: Terraform | undefined;
    const results = new Map<string, RunResult | Error>();
    const timings: string[] = [];
    startApply = () => {
      if (!terraform || applied.length === 0) return;
      applying = applyAll(terraform.binary);
      // Failures surface in the tests that await it; keep an early rejection from being reported as unhandled.
      applying.catch(() => {});
    };

    async function applyAll(binary: string): Promise<void> {
      server = await startMoto();
      tf = new Terraform({
        binary,
        cliConfigFile: cliConfig,
        env: {
          AWS_ACCESS_KEY_ID: 'testing',
          AWS_SECRET_ACCESS_KEY: 'testing',
          AWS_REGION: 'eu-west-1',
          AWS_PROFILE: undefined,
          AWS_ENDPOINT_URL: undefined,
          AWS_CONFIG_FILE: join(workdir, 'no-aws-config'),
          AWS_SHARED_CREDENTIALS_FILE: join(workdir, 'no-aws-credentials'),
        },
      });
      const byName = new Map(devStacks.map((s) => [s.name, s]));
      for (const name of applied) writeAwsEndpointOverride(byName.get(name)!.dir, server.endpoint);

      // Apply in dependency waves, two stacks at a time: a stack starts once all it reads from is applied.
      const done = new Set<string>();
      const failed = new Set<string>();
      let remaining = [...applied];
      while (remaining.length > 0) {
        const ready = remaining.filter((n) => byName.get(n)!.dependencies.every((d) => done.has(d)));
        const blocked = remaining.filter((n) => byName.get(n)!.dependencies.some((d) => failed.has(d)));
        for (const name of blocked) {
          results.set(name, new Error(`${name} was not applied: a stack it depends on failed`));
          failed.add(name);
        }
        remaining = remaining.filter((n) => !blocked.includes(n));
        if (ready.length === 0) break;
        await pool(ready, 2, async (name) => {
          const t0 = Date.now();
          const dir = byName.get(name)!.dir;
          const init = await tf!.init(dir);
          const result = init.code === 0 ? await tf!.apply(dir) : init;
          results.set(name, result);
          (result.code === 0 ? done : failed).add(name);
          timings.push(`${name} ${((Date.now() - t0) / 1000).toFixed(0)} s`);
        });
        remaining = remaining.filter((n) => !ready.includes(n));
      }
      console.info(`stacks-terraform: applied to moto in waves: ${timings.join(', ')}`);
    }

    afterAll(async () => {
      await server?.stop();
    });

    if (applied.length > 0) {
      it.each(applied)(
        'applies %s',
        async (name) => {
          await applying;
          const result = results.get(name);
          if (result === undefined) throw new Error(`${name} was never applied`);
          if (result instanceof Error) throw result;
          if (result.code !== 0) throw new Error(`${result.describe()}\nmoto log:\n${server?.recentLog()}`);
          expect(result.stdout).toMatch(/Apply complete! Resources: \d+ added, 0 changed, 0 destroyed\./);
        },
        20 * 60_000,
      );

      it('leaves the outputs the rest of the fleet reads', async () => {
        await applying;
        const dir = (name: string) => devStacks.find((s) => s.name === name)!.dir;
        const network = await tf!.outputs(dir('dev-network'));
        expect(network['vpc_id']?.value).toMatch(/^vpc-/);
        expect(network['private_subnet_ids']?.value).toHaveLength(2);
        const registry = await tf!.outputs(dir('dev-registry'));
        expect(registry['worker_repository_url']?.value).toMatch(
          /\.dkr\.ecr\.eu-west-1\.amazonaws\.com\/airfleet-dev\/worker$/,
        );
        const data = await tf!.outputs(dir('dev-data'));
        expect(data['database_endpoint']?.value).toMatch(/:5432$/);
        expect(data['database_secret_arn']?.value).toMatch(/^arn:aws:secretsmanager:eu-west-1:\d{12}:secret:/);
        const batch = await tf!.outputs(dir('dev-batch'));
        expect(Object.keys(batch['job_queue_arns']?.value as object).sort()).toEqual(['default', 'light']);
        const executor = await tf!.outputs(dir('dev-executor'));
        expect(executor['executor_url']?.value).toMatch(/^http:\/\/airfleet-dev-executor-.*\.elb\.amazonaws\.com$/);
      });
    }
    if (notApplied.length > 0 || applyReason) {
      const names = applyReason ? ['dev AWS stacks'] : notApplied.map((s) => s.name);
      it.skip.each(names)('applies %s (skipped: see the warning printed above)', () => {});
    }
  });
});
