/**
 * cloud-init user data as `#cloud-config` followed by JSON. JSON is valid YAML, so there is no quoting to
 * get wrong, and the document is a pure function of its inputs: the same config always renders the same
 * bytes, and the guards can decode and inspect it.
 */

export interface CloudInitFile {
  path: string;
  content: string;
  /** @default '0644' */
  permissions?: string;
  /** @default 'root:root' */
  owner?: string;
}

export interface CloudConfig {
  files: CloudInitFile[];
  /** Commands run once, at first boot, in order (argv form, no shell). */
  runcmd: string[][];
}

export function renderCloudConfig(config: CloudConfig): string {
  const document = {
    write_files: config.files.map((f) => ({
      path: f.path,
      content: f.content,
      permissions: f.permissions ?? '0644',
      owner: f.owner ?? 'root:root',
    })),
    runcmd: config.runcmd,
  };
  return `#cloud-config\n${JSON.stringify(document, null, 2)}\n`;
}

/** A shell script with strict mode; `body` lines are joined as they are. */
export function shellScript(comment: string, body: readonly string[]): string {
  const header = comment
    .split('\n')
    .map((line) => `# ${line}`.trimEnd())
    .join('\n');
  return ['#!/bin/bash', header, 'set -euo pipefail', ...body, ''].join('\n');
}

/** Single-quotes a value for the shell. */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** Shell lines defining `imds <path>` (IMDSv2: a token first) and setting `id` to the instance id. */
export const IMDS_LINES: readonly string[] = [
  'imds() {',
  "  local t; t=$(curl -sf -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' http://169.254.169.254/latest/api/token)",
  '  curl -sf -H "X-aws-ec2-metadata-token: $t" "http://169.254.169.254/latest/$1"',
  '}',
  'id=$(imds meta-data/instance-id)',
];

/** Shell line setting `state` to this instance's Auto Scaling lifecycle state (e.g. Terminating:Wait). */
export function lifecycleStateLine(quotedRegion: string): string {
  return `state=$(aws autoscaling describe-auto-scaling-instances --region ${quotedRegion} --instance-ids "$id" --query 'AutoScalingInstances[0].LifecycleState' --output text)`;
}
