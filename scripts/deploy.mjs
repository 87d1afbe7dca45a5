#!/usr/bin/env zx
// Synthesizes the airfleet CDKTF app and deploys one environment's stacks in dependency order.
//
//   zx scripts/deploy.mjs --env staging [--stacks data,batch] [--plan] [--engine terraform|tofu]
//
// Every stack is init → plan → apply of that saved plan, one after the other, so a stack only starts once
// the stacks it reads from (through their remote state) are deployed. `--plan` stops after the plans.
// Works with both engines because the synthesized JSON pins fully qualified providers. Checks the engine,
// the credentials and the state bucket before touching anything, and says what to do when one is missing.
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { $, chalk, minimist, path, which } from 'zx';
import { DeployPlanError, deploymentOrder, environmentsIn, unselectedDependencies } from '../stacks/src/deploy-plan.ts';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const outdir = path.join(root, 'cdktf.out');
const MIN_ENGINE = { terraform: [1, 10], tofu: [1, 10] }; // S3 native locking (use_lockfile)

const USAGE = `usage: zx scripts/deploy.mjs --env <dev|staging|prod> [--stacks a,b] [--plan] [--engine terraform|tofu]

  --env      environment to deploy (required)
  --stacks   only these components or stack names, e.g. data,batch (their dependencies must be deployed)
  --plan     plan every stack, apply nothing
  --engine   terraform (default) or tofu`;

class DeployError extends Error {}

const scriptIndex = process.argv.findIndex((arg) => arg.endsWith('deploy.mjs'));
const args = minimist(process.argv.slice(scriptIndex + 1), {
  string: ['env', 'stacks', 'engine'],
  boolean: ['plan', 'help'],
  default: { engine: 'terraform' },
  alias: { h: 'help' },
});

$.verbose = false;
$.quiet = true;
$.env = { ...process.env, CHECKPOINT_DISABLE: '1', TF_IN_AUTOMATION: '1', TF_INPUT: '0' };

const step = (text) => console.log(chalk.bold(`==> ${text}`));
const note = (text) => console.log(chalk.dim(`    ${text}`));
const seconds = (since) => `${((Date.now() - since) / 1000).toFixed(1)}s`;

async function main() {
  if (args.help) return console.log(USAGE);
  const unknown = Object.keys(args).filter((k) => !['_', 'env', 'stacks', 'plan', 'engine', 'help', 'h'].includes(k));
  if (unknown.length > 0 || args._.length > 0)
    throw new DeployError(`unknown argument ${[...unknown.map((k) => `--${k}`), ...args._].join(' ')}\n${USAGE}`);
  if (!args.env) throw new DeployError(`--env is required\n${USAGE}`);
  if (!['terraform', 'tofu'].includes(args.engine)) {
    throw new DeployError(`--engine must be terraform or tofu (got "${args.engine}")`);
  }
  const engine = await checkEngine(args.engine);

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

  const selection = args.stacks
    ? String(args.stacks)
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
    : undefined;
  const order = deploymentOrder(manifest, args.env, selection);
  const missing = unselectedDependencies(manifest, order);
  if (missing.length > 0) note(`not selected, must already be deployed: ${missing.join(', ')}`);

  const stacks = order.map((name) => {
    const entry = manifest.stacks[name];
    const config = JSON.parse(readFileSync(path.join(outdir, entry.synthesizedStackPath), 'utf8'));
    return { name, dir: path.join(outdir, entry.workingDirectory), config };
  });
  await checkCredentials(stacks);
  await checkStateBuckets(stacks);

  step(
    `${args.plan ? 'planning' : 'deploying'} ${order.length} stack${order.length === 1 ? '' : 's'} with ${args.engine}: ${order.join(' → ')}`,
  );
  const results = [];
  for (const [i, stack] of stacks.entries()) {
    const label = `[${i + 1}/${stacks.length}] ${stack.name}`;
    const t0 = Date.now();
    console.log(chalk.bold(label));
    await run(engine, stack, ['init', '-input=false', '-no-color'], 'init');
    const plan = await run(
      engine,
      stack,
      ['plan', '-input=false', '-no-color', '-detailed-exitcode', '-out=tfplan'],
      'plan',
      [0, 2],
    );
    const summary = (plan.stdout.match(/^(Plan: .*|No changes\..*)$/m) ?? ['(no summary)'])[0];
    note(summary);
    if (args.plan) {
      results.push({
        name: stack.name,
        outcome: plan.exitCode === 2 ? 'changes planned' : 'no changes',
        time: seconds(t0),
      });
      continue;
    }
    if (plan.exitCode === 2) {
      const apply = await run(engine, stack, ['apply', '-input=false', '-no-color', 'tfplan'], 'apply');
      note((apply.stdout.match(/^Apply complete!.*$/m) ?? ['applied'])[0]);
      results.push({ name: stack.name, outcome: 'applied', time: seconds(t0) });
    } else {
      results.push({ name: stack.name, outcome: 'up to date', time: seconds(t0) });
    }
  }
  step('done');
  for (const r of results) console.log(`    ${r.name.padEnd(28)} ${r.outcome.padEnd(16)} ${r.time}`);
}

/** Runs one engine command in a stack directory; on failure, prints its output and names the step. */
async function run(engine, stack, argv, what, okCodes = [0]) {
  const t0 = Date.now();
  const result = await $({ cwd: stack.dir, nothrow: true })`${engine} ${argv}`;
  if (!okCodes.includes(result.exitCode)) {
    const output = `${result.stdout}\n${result.stderr}`.trim();
    if (what === 'init' && /NoSuchBucket|bucket does not exist|S3 bucket .* does not exist/i.test(output)) {
      throw new DeployError(`${stack.name}: ${bucketAdvice(stack.config.terraform.backend.s3)}\n\n${output}`);
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
      `${stack.name}: ${engine} ${what} failed (exit ${result.exitCode}); later stacks were not touched.\n\n${output}`,
    );
  }
  note(`${what} ${seconds(t0)}`);
  return result;
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

/** Fails early, with advice, when the stacks need AWS or Nomad credentials and none can be found. */
async function checkCredentials(stacks) {
  const needsAws = stacks.some((s) => s.config.provider?.aws || s.config.terraform?.backend?.s3);
  if (needsAws) {
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
  const nomad = stacks.filter((s) => s.config.provider?.nomad);
  if (nomad.length > 0) {
    const missing = ['NOMAD_TOKEN', 'NOMAD_CACERT', 'NOMAD_CLIENT_CERT', 'NOMAD_CLIENT_KEY'].filter(
      (v) => !process.env[v],
    );
    if (missing.length > 0) {
      throw new DeployError(
        `${nomad.map((s) => s.name).join(', ')} talk${nomad.length === 1 ? 's' : ''} to Nomad over mutual TLS with an ACL token; set ${missing.join(', ')} ` +
          '(a management token or one with namespace, ACL and job rights; the CA and a client certificate the servers trust).',
      );
    }
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
  return (
    `the state bucket "${s3.bucket}" (${s3.region}) does not exist or is not readable with these credentials. ` +
    'Create it once, outside the stacks, with versioning and default encryption:\n' +
    `  aws s3api create-bucket --bucket ${s3.bucket} --region ${s3.region} --create-bucket-configuration LocationConstraint=${s3.region}\n` +
    `  aws s3api put-bucket-versioning --bucket ${s3.bucket} --versioning-configuration Status=Enabled\n` +
    `  aws s3api put-bucket-encryption --bucket ${s3.bucket} --server-side-encryption-configuration '{"Rules":[{"ApplyServerSideEncryptionByDefault":{"SSEAlgorithm":"aws:kms"}}]}'\n` +
    `  aws s3api put-public-access-block --bucket ${s3.bucket} --public-access-block-configuration BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true`
  );
}

/** With the aws CLI at hand, checks each distinct state bucket before the first init. */
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
    note(`state bucket ${s3.bucket} (${s3.region})`);
  }
}

try {
  await main();
} catch (error) {
  if (error instanceof DeployError || error instanceof DeployPlanError) {
    console.error(chalk.red(`deploy: ${error.message}`));
    process.exit(1);
  }
  throw error;
}
