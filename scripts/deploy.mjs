#!/usr/bin/env zx
// Synthesizes one environment and plans, applies or destroys its stacks with terraform or tofu, one
// dependency wave after the other (destroys in reverse), so a stack only runs once the stacks it reads
// from (through their remote state) are there. `--bootstrap` creates the state bucket and its KMS key.
//
//   npx zx scripts/deploy.mjs --env staging [--plan | --destroy | --bootstrap] [--stacks data,batch]
//
// Every flag is in stacks/src/deploy-args.ts (DEPLOY_USAGE) and stacks/README.md ("Deploying"). Checks the
// engine, the credentials each selected stack needs and the state bucket before touching anything, and
// says what to do when one is missing.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { createInterface } from 'node:readline';
import { $, chalk, path, which } from 'zx';
import { BootstrapError, bootstrapConfig } from '../stacks/src/bootstrap.ts';
import { environments } from '../stacks/src/config/environments/index.ts';
import { ConfigError, parseEnvironments } from '../stacks/src/config/validate.ts';
import { DEPLOY_USAGE, DeployArgsError, parseDeployArgs } from '../stacks/src/deploy-args.ts';
import {
  DeployPlanError,
  dependencyWaves,
  deploymentOrder,
  describeOutput,
  environmentsIn,
  unselectedDependencies,
  unselectedDependents,
  upstreamReads,
} from '../stacks/src/deploy-plan.ts';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
// Local state (dev) and the bootstrap's state live in .airfleet/ next to the output directory.
const outdir = path.resolve(process.env.CDKTF_OUTDIR ?? path.join(root, 'cdktf.out'));
const localDir = path.resolve(outdir, '..', '.airfleet');
const MIN_ENGINE = { terraform: [1, 10], tofu: [1, 10] }; // S3 native locking (use_lockfile)
const NOMAD_VARIABLES = ['NOMAD_TOKEN', 'NOMAD_CACERT', 'NOMAD_CLIENT_CERT', 'NOMAD_CLIENT_KEY'];

class DeployError extends Error {}

$.verbose = false;
$.quiet = true;
$.env = { ...process.env, CHECKPOINT_DISABLE: '1', TF_IN_AUTOMATION: '1', TF_INPUT: '0' };

const step = (text) => console.log(chalk.bold(`==> ${text}`));
const note = (text) => console.log(chalk.dim(`    ${text}`));
const seconds = (since) => `${((Date.now() - since) / 1000).toFixed(1)}s`;
const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;

async function main() {
  const scriptIndex = process.argv.findIndex((arg) => arg.endsWith('deploy.mjs'));
  const args = parseDeployArgs(process.argv.slice(scriptIndex + 1), process.env);
  if (args.help) return console.log(DEPLOY_USAGE);
  const env = parseEnvironments(environments).find((e) => e.name === args.env);
  if (!env) {
    throw new DeployError(`no environment "${args.env}"; defined: ${Object.keys(environments).join(', ')}`);
  }
  if (args.mode === 'destroy' && env.production) await confirmProductionDestroy(env, args);

  const engine = await checkEngine(args.engine);
  configureProviders(args);
  if (args.endpoint) {
    // The AWS provider, the S3 backend and the aws CLI all read AWS_ENDPOINT_URL (the SDKs' variable).
    $.env.AWS_ENDPOINT_URL = args.endpoint;
    note(`every AWS call goes to ${args.endpoint}`);
  }
  if (args.mode === 'bootstrap') return bootstrap(engine, env);

  step(`synthesizing ${args.env}`);
  const started = Date.now();
  const synth = await $({
    cwd: root,
    nothrow: true,
    env: { ...$.env, AIRFLEET_ENVIRONMENTS: args.env, CDKTF_OUTDIR: outdir },
  })`node --no-deprecation stacks/src/main.ts`;
  if (synth.exitCode !== 0) throw new DeployError(`synthesis failed:\n${synth.stderr || synth.stdout}`);
  const manifest = JSON.parse(readFileSync(path.join(outdir, 'manifest.json'), 'utf8'));
  note(
    `${Object.keys(manifest.stacks).length} stacks in ${seconds(started)} (environments: ${environmentsIn(manifest).join(', ')})`,
  );

  const order = deploymentOrder(manifest, args.env, args.stacks);
  const stackOf = (name) => {
    const entry = manifest.stacks[name];
    const config = JSON.parse(readFileSync(path.join(outdir, entry.synthesizedStackPath), 'utf8'));
    return { name, dir: path.join(outdir, entry.workingDirectory), config };
  };
  const stacks = new Map(deploymentOrder(manifest, args.env).map((name) => [name, stackOf(name)]));
  const selected = order.map((name) => stacks.get(name));
  const skipped = checkNomad(selected, args, order);
  await checkAwsCredentials(selected.filter((s) => !skipped.has(s.name)));
  await checkStateBuckets(selected);

  const tf = new Engine(engine, stacks);
  if (args.mode === 'destroy') return destroy(tf, manifest, args, order);

  const missing = unselectedDependencies(manifest, order);
  if (missing.length > 0) note(`not selected, must already be deployed: ${missing.join(', ')}`);
  // A plan changes no state, so every stack can be planned at once: one whose upstream is not applied yet
  // finds its outputs missing either way.
  const waves = args.mode === 'plan' ? [order] : dependencyWaves(manifest, order);
  const how =
    args.mode === 'plan'
      ? `planning ${plural(order.length, 'stack')} with ${args.engine}, ${args.parallelism} at a time`
      : `deploying ${plural(order.length, 'stack')} with ${args.engine} in ${plural(waves.length, 'wave')}: ${waves.map((w) => w.join(' + ')).join(' → ')}`;
  step(how);
  const results = [];
  const waiting = new Map();
  let failure;
  for (const wave of waves) {
    await pool(wave, args.parallelism, async (name) => {
      const stack = stacks.get(name);
      const t0 = Date.now();
      const label = `[${order.indexOf(name) + 1}/${order.length}] ${name}`;
      const log = (text) => note(`${label}: ${text}`);
      try {
        if (skipped.has(name)) {
          log(`skipped: ${skipped.get(name)}`);
          return results.push({ name, outcome: 'skipped (Nomad credentials)', time: '' });
        }
        await tf.init(stack, log);
        const blockers = await tf.missingUpstream(stack, waiting);
        if (blockers.length > 0) {
          const text = blockers.map((b) => `${b.stack} (${b.outputs.join(', ')})`).join('; ');
          if (args.mode === 'apply') {
            throw new DeployError(
              `${name} reads outputs that are not there yet: ${text}. Deploy ${blockers.map((b) => b.stack).join(', ')} first, or add ${blockers.length === 1 ? 'it' : 'them'} to --stacks.`,
            );
          }
          waiting.set(name, blockers);
          log(`not planned: waits for ${text}`);
          return results.push({ name, outcome: 'waits for upstream outputs', time: seconds(t0) });
        }
        const plan = await tf.run(
          stack,
          ['plan', '-input=false', '-detailed-exitcode', '-out=tfplan'],
          'plan',
          log,
          [0, 2],
        );
        log((plan.stdout.match(/^(Plan: .*|No changes\..*)$/m) ?? ['(no summary)'])[0]);
        if (args.mode === 'plan' || plan.exitCode === 0) {
          const outcome = plan.exitCode === 2 ? 'changes planned' : args.mode === 'plan' ? 'no changes' : 'up to date';
          return results.push({ name, outcome, time: seconds(t0) });
        }
        const apply = await tf.run(stack, ['apply', '-input=false', 'tfplan'], 'apply', log);
        log((apply.stdout.match(/^Apply complete!.*$/m) ?? ['applied'])[0]);
        tf.forgetOutputs(name);
        results.push({ name, outcome: 'applied', time: seconds(t0) });
      } catch (error) {
        failure ??= error;
        results.push({ name, outcome: 'FAILED', time: seconds(t0) });
      }
    });
    if (failure) break;
  }
  summary(results, order);
  if (failure) {
    const untouched = order.filter((n) => !results.some((r) => r.name === n));
    if (untouched.length > 0) failure.message += `\nNot started: ${untouched.join(', ')}.`;
    throw failure;
  }
  if (waiting.size > 0) {
    note(
      `${plural(waiting.size, 'stack')} could not be planned until the stacks before ${waiting.size === 1 ? 'it are' : 'them are'} applied: ${[...waiting.keys()].join(', ')}`,
    );
  }
}

function summary(results, order) {
  step('done');
  const sorted = [...results].sort((a, b) => order.indexOf(a.name) - order.indexOf(b.name));
  for (const r of sorted) console.log(`    ${r.name.padEnd(28)} ${r.outcome.padEnd(28)} ${r.time}`);
}

/** Destroys the selected stacks in reverse dependency order, stopping at the first that fails. */
async function destroy(tf, manifest, args, order) {
  const dependents = unselectedDependents(manifest, args.env, order);
  for (const name of dependents) {
    const stack = tf.stacks.get(name);
    await tf.init(stack, () => {});
    const list = await tf.run(stack, ['state', 'list'], 'state list', () => {}, [0, 1]);
    if (list.exitCode === 0 && list.stdout.trim() !== '') {
      throw new DeployError(
        `${name} reads from ${order.filter((n) => manifest.stacks[name].dependencies.includes(n)).join(', ')} and is still deployed: destroy it first (add it to --stacks). Nothing was destroyed.`,
      );
    }
  }
  const waves = dependencyWaves(manifest, order).reverse();
  const reversed = waves.flat();
  step(`destroying ${plural(order.length, 'stack')} with ${args.engine}, dependents first: ${reversed.join(' → ')}`);
  const results = [];
  let failure;
  for (const wave of waves) {
    await pool(wave, args.parallelism, async (name) => {
      const stack = tf.stacks.get(name);
      const t0 = Date.now();
      const log = (text) => note(`[${reversed.indexOf(name) + 1}/${reversed.length}] ${name}: ${text}`);
      try {
        await tf.init(stack, log);
        const plan = await tf.run(
          stack,
          ['plan', '-destroy', '-input=false', '-detailed-exitcode', '-out=tfplan'],
          'plan -destroy',
          log,
          [0, 2],
        );
        if (plan.exitCode === 0) {
          log('nothing to destroy');
          return results.push({ name, outcome: 'nothing to destroy', time: seconds(t0) });
        }
        log((plan.stdout.match(/^Plan: .*$/m) ?? ['(no summary)'])[0]);
        const apply = await tf.run(stack, ['apply', '-input=false', 'tfplan'], 'destroy', log);
        const done = apply.stdout.match(/^(Destroy|Apply) complete! Resources: .*$/m)?.[0] ?? 'destroyed';
        log(done);
        results.push({ name, outcome: 'destroyed', time: seconds(t0) });
      } catch (error) {
        failure ??= error;
        results.push({ name, outcome: 'FAILED', time: seconds(t0) });
      }
    });
    if (failure) break;
  }
  summary(results, reversed);
  if (failure) {
    const untouched = reversed.filter((n) => !results.some((r) => r.name === n));
    if (untouched.length > 0) failure.message += `\nNot touched: ${untouched.join(', ')}.`;
    throw failure;
  }
}

/** Production destroys need the flag and the environment's name typed at the prompt (or on stdin). */
async function confirmProductionDestroy(env, args) {
  if (!args.allowProductionDestroy) {
    throw new DeployError(
      `${env.name} is a production environment: --destroy refuses it without --allow-production-destroy (which then asks for the environment's name). Nothing was changed.`,
    );
  }
  const what = args.stacks ? `the stacks ${args.stacks.join(', ')} of` : 'every stack of';
  process.stdout.write(chalk.red(`This destroys ${what} ${env.name}. Type the environment's name to go on: `));
  const rl = createInterface({ input: process.stdin });
  const answer = await new Promise((resolve) => {
    rl.once('line', (line) => resolve(line.trim()));
    rl.once('close', () => resolve(''));
  });
  rl.close();
  if (answer !== env.name) {
    throw new DeployError(`the answer was not "${env.name}": nothing was destroyed.`);
  }
}

/** Runs `task` for every item, at most `limit` at a time. */
async function pool(items, limit, task) {
  const queue = [...items];
  await Promise.all(
    Array.from({ length: Math.min(limit, queue.length) }, async () => {
      for (let item = queue.shift(); item !== undefined; item = queue.shift()) await task(item);
    }),
  );
}

/** One engine binary over the environment's stack directories. */
class Engine {
  constructor(binary, stacks) {
    this.binary = binary;
    this.stacks = stacks;
    this.initialised = new Map();
    this.outputs = new Map();
  }

  init(stack, log) {
    if (!this.initialised.has(stack.name)) {
      this.initialised.set(stack.name, this.run(stack, ['init', '-input=false'], 'init', log));
    }
    return this.initialised.get(stack.name);
  }

  forgetOutputs(name) {
    this.outputs.delete(name);
  }

  /** Outputs of a stack's current state (none when it was never applied). */
  outputsOf(name) {
    if (!this.outputs.has(name)) {
      const stack = this.stacks.get(name);
      this.outputs.set(
        name,
        this.init(stack, () => {}).then(async () => {
          const out = await this.run(stack, ['output', '-json'], 'output', () => {});
          return new Set(Object.keys(JSON.parse(out.stdout || '{}')));
        }),
      );
    }
    return this.outputs.get(name);
  }

  /** The upstream stacks whose outputs this stack reads and that do not have them (yet). */
  async missingUpstream(stack, waiting) {
    const blockers = [];
    for (const [upstream, outputs] of upstreamReads(stack.config)) {
      const upstreamStack = this.stacks.get(upstream);
      if (!upstreamStack) continue;
      const have = waiting.has(upstream) ? new Set() : await this.outputsOf(upstream);
      const lacking = outputs.filter((o) => !have.has(o));
      if (lacking.length > 0) {
        blockers.push({ stack: upstream, outputs: lacking.map((o) => describeOutput(upstreamStack.config, o)) });
      }
    }
    return blockers;
  }

  /** Runs one engine command in a stack directory; on failure, names the stack, the step and the way out. */
  async run(stack, argv, what, log, okCodes = [0]) {
    const t0 = Date.now();
    const result = await $({ cwd: stack.dir, nothrow: true })`${this.binary} ${argv} -no-color`;
    if (!okCodes.includes(result.exitCode)) {
      const output = `${result.stdout}\n${result.stderr}`.trim().split('\n').slice(-60).join('\n');
      if (what === 'init' && /NoSuchBucket|bucket does not exist|S3 bucket .* does not exist/i.test(output)) {
        throw new DeployError(`${stack.name}: ${bucketAdvice(stack.config.terraform.backend.s3)}\n\n${output}`);
      }
      if (
        what === 'init' &&
        /Failed to query available provider packages|could not connect to registry/i.test(output)
      ) {
        throw new DeployError(
          `${stack.name}: init could not install the providers (no registry reachable?). Offline, pass --provider-mirror DIR (a terraform filesystem mirror) or set TF_CLI_CONFIG_FILE.\n\n${output}`,
        );
      }
      if (
        /No valid credential sources found|InvalidClientTokenId|ExpiredToken|failed to refresh cached credentials/i.test(
          output,
        )
      ) {
        throw new DeployError(
          `${stack.name}: ${what} failed for lack of valid AWS credentials.\n${credentialAdvice()}\n\n${output}`,
        );
      }
      throw new DeployError(
        `${stack.name}: ${path.basename(this.binary)} ${what} failed (exit ${result.exitCode}).\n\n${output}`,
      );
    }
    if (what !== 'output' && what !== 'state list') log(`${what} ${seconds(t0)}`);
    return result;
  }
}

/** `--bootstrap`: the state bucket (and KMS key) of an environment with S3 state, from stacks/src/bootstrap.ts. */
async function bootstrap(engine, env) {
  const dir = path.join(localDir, 'bootstrap', env.name);
  let config;
  try {
    config = bootstrapConfig(env, path.join(localDir, 'bootstrap', `${env.name}.tfstate`));
  } catch (error) {
    if (error instanceof BootstrapError) return note(error.message);
    throw error;
  }
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'main.tf.json'), `${JSON.stringify(config, null, 2)}\n`);
  const stack = { name: `${env.name}-bootstrap`, dir, config };
  await checkAwsCredentials([stack]);
  const tf = new Engine(engine, new Map([[stack.name, stack]]));
  const log = (text) => note(`${stack.name}: ${text}`);
  step(
    `bootstrapping ${env.name}: state bucket ${env.state.bucket}${env.state.kmsKeyId ? ` and key ${env.state.kmsKeyId}` : ''}`,
  );
  await tf.init(stack, log);
  const plan = await tf.run(stack, ['plan', '-input=false', '-detailed-exitcode', '-out=tfplan'], 'plan', log, [0, 2]);
  if (plan.exitCode === 2) {
    const apply = await tf.run(stack, ['apply', '-input=false', 'tfplan'], 'apply', log);
    log((apply.stdout.match(/^Apply complete!.*$/m) ?? ['applied'])[0]);
  } else {
    log('already in place');
  }
  note(
    `its own state: ${path.relative(process.cwd(), path.join(localDir, 'bootstrap', `${env.name}.tfstate`))} (keep it)`,
  );
}

/** `--provider-mirror DIR`: a CLI config that installs providers from DIR and from nowhere else. */
function configureProviders(args) {
  if (!args.providerMirror) {
    if ($.env.TF_CLI_CONFIG_FILE) note(`providers as TF_CLI_CONFIG_FILE says (${$.env.TF_CLI_CONFIG_FILE})`);
    return;
  }
  const mirror = path.resolve(args.providerMirror);
  if (!existsSync(mirror)) throw new DeployError(`--provider-mirror ${mirror} does not exist`);
  mkdirSync(localDir, { recursive: true });
  const file = path.join(localDir, 'terraform.rc');
  writeFileSync(file, `provider_installation {\n  filesystem_mirror {\n    path = ${JSON.stringify(mirror)}\n  }\n}\n`);
  $.env.TF_CLI_CONFIG_FILE = file;
  note(`providers from the mirror ${mirror} only (${path.relative(process.cwd(), file)})`);
}

async function checkEngine(engine) {
  const binary = await which(engine, { nothrow: true });
  if (!binary) {
    const hint =
      engine === 'terraform'
        ? 'Install Terraform >= 1.10 (https://developer.hashicorp.com/terraform/install), or pass --engine tofu.'
        : 'Install OpenTofu >= 1.10 (https://opentofu.org/docs/intro/install/), or pass --engine terraform.';
    throw new DeployError(`${engine} is not on PATH. ${hint}`);
  }
  const out = await $({ nothrow: true })`${binary} version -json`;
  const version = out.exitCode === 0 ? JSON.parse(out.stdout).terraform_version : undefined;
  const [major = 0, minor = 0] = String(version ?? '0.0')
    .split('.')
    .map(Number);
  const [needMajor, needMinor] = MIN_ENGINE[engine];
  if (major < needMajor || (major === needMajor && minor < needMinor)) {
    throw new DeployError(
      `${engine} ${version ?? '(unknown version)'} at ${binary} is too old: the S3 state lock file needs ${needMajor}.${needMinor} or later.`,
    );
  }
  note(`${engine} ${version} (${binary})`);
  return binary;
}

function credentialAdvice() {
  return 'Provide AWS credentials the usual way: AWS_PROFILE (with `aws sso login`), AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a web identity token (CI), or an instance/container role.';
}

/**
 * The Nomad provider reads its address, token and TLS material from the environment. Only the stacks that
 * talk to Nomad need them: a plan skips those stacks when they are missing; an apply or destroy stops
 * before touching anything and names the `--stacks` that leave them out.
 */
function checkNomad(selected, args, order) {
  const nomad = selected.filter((s) => s.config.provider?.nomad);
  const missing = NOMAD_VARIABLES.filter((v) => !process.env[v]);
  if (nomad.length === 0 || missing.length === 0) return new Map();
  const names = nomad.map((s) => s.name);
  const reason = `${names.join(', ')} talk${names.length === 1 ? 's' : ''} to Nomad over mutual TLS with an ACL token; set ${missing.join(', ')} (a token with namespace, ACL and job rights; the CA and a client certificate the servers trust)`;
  if (args.mode === 'plan') return new Map(names.map((n) => [n, `set ${missing.join(', ')} to plan it`]));
  const others = order.filter((n) => !names.includes(n)).map((n) => n.slice(args.env.length + 1));
  throw new DeployError(
    `${reason}.${others.length > 0 ? `\nTo leave ${names.length === 1 ? 'it' : 'them'} out: --stacks ${others.join(',')}` : ''}\nNothing was changed.`,
  );
}

/** Fails early, with advice, when the stacks need AWS credentials and none can be found. */
async function checkAwsCredentials(stacks) {
  const needsAws = stacks.some((s) => s.config.provider?.aws || s.config.terraform?.backend?.s3);
  if (!needsAws) return;
  const aws = await which('aws', { nothrow: true });
  const region = stacks
    .map((s) => s.config.provider?.aws?.[0]?.region ?? s.config.terraform?.backend?.s3?.region)
    .find(Boolean);
  if (aws) {
    const id = await $({ nothrow: true })`${aws} sts get-caller-identity --output json --region ${region}`;
    if (id.exitCode !== 0) {
      throw new DeployError(
        `AWS credentials are missing or invalid: aws sts get-caller-identity said: ${id.stderr.trim()}\n${credentialAdvice()}`,
      );
    }
    note(`AWS identity ${JSON.parse(id.stdout).Arn}`);
  } else if (!(await hasAwsCredentialSource())) {
    throw new DeployError(`No AWS credentials found.\n${credentialAdvice()}`);
  } else {
    note('AWS credentials found (not verified: the aws CLI is not installed)');
  }
}

async function hasAwsCredentialSource() {
  const env = process.env;
  if (env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY) return true;
  if (env.AWS_PROFILE || env.AWS_WEB_IDENTITY_TOKEN_FILE) return true;
  if (env.AWS_CONTAINER_CREDENTIALS_FULL_URI || env.AWS_CONTAINER_CREDENTIALS_RELATIVE_URI) return true;
  const home = homedir();
  if (existsSync(env.AWS_SHARED_CREDENTIALS_FILE ?? path.join(home, '.aws', 'credentials'))) return true;
  if (existsSync(env.AWS_CONFIG_FILE ?? path.join(home, '.aws', 'config'))) return true;
  // An instance role: ask IMDSv2 for a token, briefly.
  try {
    const res = await fetch('http://169.254.169.254/latest/api/token', {
      method: 'PUT',
      headers: { 'X-aws-ec2-metadata-token-ttl-seconds': '60' },
      signal: AbortSignal.timeout(1000),
    });
    return res.ok;
  } catch {
    return false;
  }
}

function bucketAdvice(s3) {
  const env = path.basename(s3.key ?? '').split('-')[0];
  return (
    `the state bucket "${s3.bucket}" (${s3.region}) does not exist or is not readable with these credentials. ` +
    `Create it once (versioned, encrypted, private${s3.kms_key_id ? `, with the KMS key ${s3.kms_key_id}` : ''}):\n` +
    `  npx zx scripts/deploy.mjs --env ${env || '<env>'} --bootstrap`
  );
}

/** With the aws CLI at hand, checks each distinct state bucket (and KMS key) before the first init. */
async function checkStateBuckets(stacks) {
  const buckets = new Map();
  for (const s of stacks) {
    const s3 = s.config.terraform?.backend?.s3;
    if (s3) buckets.set(`${s3.bucket}@${s3.region}`, s3);
  }
  if (buckets.size === 0) return;
  const aws = await which('aws', { nothrow: true });
  if (!aws) return note('state bucket not checked ahead (no aws CLI); init will report it');
  for (const s3 of buckets.values()) {
    const head = await $({ nothrow: true })`${aws} s3api head-bucket --bucket ${s3.bucket} --region ${s3.region}`;
    if (head.exitCode !== 0) throw new DeployError(bucketAdvice(s3));
    if (s3.kms_key_id) {
      const key = await $({ nothrow: true })`${aws} kms describe-key --key-id ${s3.kms_key_id} --region ${s3.region}`;
      if (key.exitCode !== 0) {
        throw new DeployError(
          `the state's KMS key ${s3.kms_key_id} (${s3.region}) does not exist or is not usable with these credentials: the first state write would fail after resources were created. ${bucketAdvice(s3).split('\n').pop().trim()} creates it.`,
        );
      }
    }
    note(`state bucket ${s3.bucket} (${s3.region})${s3.kms_key_id ? `, key ${s3.kms_key_id}` : ''}`);
  }
}

try {
  await main();
} catch (error) {
  if (
    error instanceof DeployError ||
    error instanceof DeployPlanError ||
    error instanceof DeployArgsError ||
    error instanceof ConfigError
  ) {
    console.error(chalk.red(`deploy: ${error.message}`));
    process.exit(1);
  }
  throw error;
}
