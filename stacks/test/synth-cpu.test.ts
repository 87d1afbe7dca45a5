import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const SRC = fileURLToPath(new URL('../src', import.meta.url));
/** "A few seconds" on a 2-core CI machine; the whole app takes about 1.5 s of CPU on one. */
const CPU_BUDGET_MS = 5000;

interface Measurement {
  importMs: number;
  totalMs: number;
  stacks: number;
  providerModules: number;
  providerRootLoaded: boolean;
}

/**
 * Measured in a child `node` process, as `cdktf synth` runs the app: Node's own type stripping and module
 * loader, not jest's. CPU time (user + system, process.cpuUsage) includes Node's start, every import and
 * the synth of all environments to disk.
 */
function measure(): Measurement {
  const outdir = mkdtempSync(join(tmpdir(), 'airfleet-cpu-'));
  const script = `
    import { createRequire } from 'node:module';
    const cpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
    const { buildApp } = await import(${JSON.stringify(join(SRC, 'app.ts'))});
    const importMs = cpu();
    const { app, stacks } = buildApp({ outdir: ${JSON.stringify(outdir)} });
    app.synth();
    const loaded = Object.keys(createRequire(import.meta.url).cache);
    console.log(JSON.stringify({
      importMs,
      totalMs: cpu(),
      stacks: stacks.length,
      providerModules: loaded.filter((p) => p.includes('/@cdktf/provider-aws/lib/')).length,
      providerRootLoaded: loaded.some((p) => p.endsWith('/@cdktf/provider-aws/lib/index.js')),
    }));
  `;
  const stdout = execFileSync(process.execPath, ['--no-deprecation', '--input-type=module', '-e', script], {
    encoding: 'utf8',
    env: { ...process.env, CHECKPOINT_DISABLE: '1' },
  });
  return JSON.parse(stdout.trim().split('\n').pop()!) as Measurement;
}

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sources(join(dir, entry.name)) : entry.name.endsWith('.ts') ? [join(dir, entry.name)] : [],
  );
}

describe('synth cost', () => {
  it(`synthesizes every environment within ${CPU_BUDGET_MS / 1000} s of CPU, loading only the provider resources it uses`, () => {
    const m = measure();
    console.info(
      `synth of ${m.stacks} stacks: ${Math.round(m.totalMs)} ms CPU in total (${Math.round(m.importMs)} ms of it Node start and imports), ` +
        `${m.providerModules} @cdktf/provider-aws modules loaded`,
    );
    expect(m.stacks).toBe(22);
    expect(m.providerRootLoaded).toBe(false);
    expect(m.providerModules).toBeLessThan(100); // the package root would pull in 2,000+
    expect(m.totalMs).toBeLessThan(CPU_BUDGET_MS);
  });

  it('imports provider resources by deep path only', () => {
    const offenders = sources(SRC).filter((file) =>
      /from\s+['"]@cdktf\/provider-(aws|nomad)(\/lib)?(\/index\.js)?['"]/.test(readFileSync(file, 'utf8')),
    );
    expect(offenders).toEqual([]);
  });
});
