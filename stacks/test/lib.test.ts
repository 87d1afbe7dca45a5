import { TerraformStack, Testing } from 'cdktf';
import { cidrSubnet, isAnyAddress, parseCidr, subnetLayout } from '../src/lib/cidr.ts';
import { renderCloudConfig, shellQuote, shellScript } from '../src/lib/cloud-init.ts';
import { fargateSizeProblem } from '../src/lib/fargate.ts';
import { partitionOf, policyDocument } from '../src/lib/iam.ts';
import { HardenedLaunchTemplate, MAX_USER_DATA_BYTES } from '../src/lib/launch-template.ts';

describe('cidr', () => {
  it('computes subnets like cidrsubnet()', () => {
    expect(cidrSubnet('10.40.0.0/16', 4, 0)).toBe('10.40.0.0/20');
    expect(cidrSubnet('10.40.0.0/16', 4, 15)).toBe('10.40.240.0/20');
    expect(cidrSubnet('10.40.240.0/20', 4, 2)).toBe('10.40.242.0/24');
  });

  it('lays out private and public subnets without overlap', () => {
    expect(subnetLayout('10.0.0.0/20', 3)).toEqual({
      private: ['10.0.0.0/24', '10.0.1.0/24', '10.0.2.0/24'],
      public: ['10.0.15.0/28', '10.0.15.16/28', '10.0.15.32/28'],
    });
  });

  it('explains what is wrong with a bad CIDR', () => {
    expect(() => parseCidr('10.0.0.1/16')).toThrow(
      '"10.0.0.1/16" is not a network address: host bits are set (did you mean 10.0.0.0/16?)',
    );
    expect(() => parseCidr('10.0.0.0/33')).toThrow('has no valid prefix length (allowed: /0 to /32)');
    expect(() => cidrSubnet('10.0.0.0/16', 4, 16)).toThrow(
      'subnet number 16 does not fit in 4 bits (allowed: 0 to 15)',
    );
  });

  it('recognises "everywhere" in any spelling', () => {
    expect(['0.0.0.0/0', '::/0', '10.0.0.0/0', ' 0.0.0.0/00 '].every(isAnyAddress)).toBe(true);
    expect(['10.0.0.0/8', '0.0.0.0/1', '2001:db8::/32'].some(isAnyAddress)).toBe(false);
  });
});

describe('cloud-init', () => {
  it('renders #cloud-config as JSON, which YAML parsers read unchanged', () => {
    const text = renderCloudConfig({ files: [{ path: '/etc/x', content: 'a: "b"\n' }], runcmd: [['/bin/true']] });
    expect(text.split('\n')[0]).toBe('#cloud-config');
    expect(JSON.parse(text.slice(text.indexOf('\n') + 1))).toEqual({
      write_files: [{ path: '/etc/x', content: 'a: "b"\n', permissions: '0644', owner: 'root:root' }],
      runcmd: [['/bin/true']],
    });
  });

  it('quotes for the shell and writes strict-mode scripts', () => {
    expect(shellQuote("it's")).toBe(`'it'\\''s'`);
    expect(shellScript('why', ['true'])).toBe('#!/bin/bash\n# why\nset -euo pipefail\ntrue\n');
  });
});

describe('fargate sizes', () => {
  it('accepts valid pairs and names the allowed memory otherwise', () => {
    expect(fargateSizeProblem(1, 2048)).toBeUndefined();
    expect(fargateSizeProblem(0.25, 4096)).toBe(
      '4096 MiB does not fit 0.25 vCPU on Fargate; allowed: 512, 1024, 2048 MiB',
    );
    expect(fargateSizeProblem(3, 4096)).toBe('3 vCPU is not a Fargate size; allowed: 0.25, 0.5, 1, 2, 4, 8, 16');
  });
});

describe('iam', () => {
  it('writes policy documents with Allow by default', () => {
    expect(JSON.parse(policyDocument([{ Sid: 'A', Action: 's3:GetObject', Resource: 'arn:aws:s3:::b/*' }]))).toEqual({
      Version: '2012-10-17',
      Statement: [{ Effect: 'Allow', Sid: 'A', Action: 's3:GetObject', Resource: 'arn:aws:s3:::b/*' }],
    });
  });

  it('knows the partition of a region', () => {
    expect(['eu-west-1', 'cn-north-1', 'us-gov-west-1'].map(partitionOf)).toEqual(['aws', 'aws-cn', 'aws-us-gov']);
  });
});

describe('hardened launch template', () => {
  it('refuses user data EC2 would reject, naming the limit', () => {
    const stack = new TerraformStack(Testing.app(), 'lt');
    new HardenedLaunchTemplate(stack, 'big', {
      name: 'big',
      rootVolumeGb: 20,
      userData: 'x'.repeat(MAX_USER_DATA_BYTES + 1),
    });
    expect(() => Testing.synth(stack, true)).toThrow(
      /user data of big is 16385 bytes; EC2 accepts at most 16384 \(before base64\)/,
    );
  });
});
