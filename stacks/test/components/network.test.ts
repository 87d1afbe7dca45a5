import { Subnet } from '@cdktf/provider-aws/lib/subnet/index.js';
import { Vpc } from '@cdktf/provider-aws/lib/vpc/index.js';
import { VpcEndpoint } from '@cdktf/provider-aws/lib/vpc-endpoint/index.js';
import { VpcSecurityGroupIngressRule } from '@cdktf/provider-aws/lib/vpc-security-group-ingress-rule/index.js';
import { resources, synthEnvironment } from '../support/synth.ts';

const dev = synthEnvironment('dev').get('network');
const prod = synthEnvironment('prod').get('network');

describe('network stack', () => {
  it('builds the VPC from the configured CIDR with DNS for private endpoints', () => {
    expect(dev.json).toHaveResourceWithProperties(Vpc, {
      cidr_block: '10.40.0.0/16',
      enable_dns_support: true,
      enable_dns_hostnames: true,
    });
  });

  it('puts one private subnet in every configured AZ, none with public IPs', () => {
    const subnets = Object.values(resources(prod.tf, 'aws_subnet')).filter((s) => s['cidr_block'] !== undefined);
    const privateOnes = subnets.filter((s) => (s['tags'] as Record<string, string>)['Tier'] === 'private');
    expect(privateOnes.map((s) => [s['availability_zone'], s['cidr_block']])).toEqual([
      ['eu-west-1a', '10.42.0.0/20'],
      ['eu-west-1b', '10.42.16.0/20'],
      ['eu-west-1c', '10.42.32.0/20'],
    ]);
    for (const subnet of subnets) expect(subnet['map_public_ip_on_launch']).toBe(false);
    expect(prod.json).toHaveResourceWithProperties(Subnet, {
      cidr_block: '10.42.240.0/24',
      availability_zone: 'eu-west-1a',
    });
  });

  it('has a NAT gateway per AZ in prod and a single one in dev', () => {
    expect(Object.keys(resources(prod.tf, 'aws_nat_gateway'))).toHaveLength(3);
    expect(Object.keys(resources(dev.tf, 'aws_nat_gateway'))).toHaveLength(1);
    // dev's private route tables all point at the one NAT gateway
    const natRoutes = Object.values(resources(dev.tf, 'aws_route')).filter((r) => r['nat_gateway_id']);
    expect(natRoutes).toHaveLength(2);
    expect(new Set(natRoutes.map((r) => r['nat_gateway_id'])).size).toBe(1);
  });

  it('saves NAT traffic with an S3 gateway endpoint and the configured interface endpoints', () => {
    expect(dev.json).toHaveResourceWithProperties(VpcEndpoint, {
      service_name: 'com.amazonaws.eu-west-1.s3',
      vpc_endpoint_type: 'Gateway',
    });
    const interfaces = Object.values(resources(dev.tf, 'aws_vpc_endpoint'))
      .filter((e) => e['vpc_endpoint_type'] === 'Interface')
      .map((e) => e['service_name']);
    expect(interfaces.sort()).toEqual(
      ['ecr.api', 'ecr.dkr', 'logs', 'secretsmanager'].map((s) => `com.amazonaws.eu-west-1.${s}`).sort(),
    );
    expect(dev.json).toHaveResourceWithProperties(VpcEndpoint, {
      private_dns_enabled: true,
      vpc_endpoint_type: 'Interface',
    });
    expect(dev.json).toHaveResourceWithProperties(VpcSecurityGroupIngressRule, {
      from_port: 443,
      to_port: 443,
      cidr_ipv4: '10.40.0.0/16',
    });
  });

  it('creates the compute security groups the database admits, with no inbound except Nomad from the VPC', () => {
    // By prefix: a replacement (create_before_destroy) must not collide with the group it replaces.
    const all = Object.values(resources(dev.tf, 'aws_security_group'));
    expect(all.filter((g) => 'name' in g)).toEqual([]);
    expect(all.map((g) => g['name_prefix'])).toEqual(
      expect.arrayContaining([
        'airfleet-dev-batch-',
        'airfleet-dev-nomad-clients-',
        'airfleet-dev-workers-',
        'airfleet-dev-executor-',
      ]),
    );
    const ingress = Object.values(resources(dev.tf, 'aws_vpc_security_group_ingress_rule'));
    expect(ingress.every((rule) => rule['cidr_ipv4'] === '10.40.0.0/16')).toBe(true);
    expect(ingress.map((r) => r['from_port']).sort()).toEqual([20000, 443, 4646].sort());
  });

  it('strips the default security group of its rules and passes every guard', () => {
    expect(Object.keys(resources(dev.tf, 'aws_default_security_group'))).toHaveLength(1);
    expect(dev.errors).toEqual([]);
    expect(prod.errors).toEqual([]);
  });
});
