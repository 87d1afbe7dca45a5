import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildApp } from '../../stacks/src/app.ts';
import {
  findTerraform,
  mirroredProviders,
  missingFromMirror,
  PROVIDER_MIRROR,
  type RunResult,
  readStackJson,
  Terraform,
  writeCliConfig,
} from '../src/terraform.ts';

// The synthesized stacks under a real terraform, offline: `init` against the local provider mirror and
// `validate` for every staging and prod stack whose providers the mirror holds. dev is applied, planned
// and destroyed on moto by deploy-walkthrough.test.ts, which covers its validation too. Every stack keeps
// its state locally for the test (the app's localStateDir). Whatever cannot run here (no terraform, no
// mirror, a provider the mirror lacks) is skipped with the reason printed.

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

// Validation starts before any test; each test awaits the result it reports on.
let validation: Promise<Map<string, RunResult>> = Promise.resolve(new Map());
let startValidation = () => {};

describe('synthesized stacks under terraform', () => {
  beforeAll(() => {
    startValidation();
  });

  it('synthesizes every stack of every environment', () => {
    expect(allStacks.map((s) => s.name).sort()).toHaveLength(22);
  });

  describe(`terraform init and validate of staging and prod, providers from ${PROVIDER_MIRROR}`, () => {
    const validated = allStacks.filter((s) => !s.name.startsWith('dev-'));
    const validatable = terraformReason ? [] : validated.filter((s) => s.missing.length === 0).map((s) => s.name);
    const skipped = validated.filter((s) => terraformReason || s.missing.length > 0).map((s) => s.name);
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
});
