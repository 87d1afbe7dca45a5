import { DataAwsSsmParameter } from '@cdktf/provider-aws/lib/data-aws-ssm-parameter/index.js';
import { LaunchTemplate } from '@cdktf/provider-aws/lib/launch-template/index.js';
import { Construct } from 'constructs';
import type { MachineImageConfig } from '../config/schema.ts';
import { stackTags } from './tags.ts';

/** EC2's limit on user data, before base64 encoding. */
export const MAX_USER_DATA_BYTES = 16_384;

export interface HardenedLaunchTemplateProps {
  name: string;
  /** AMI by id, or by SSM parameter (resolved at plan time). @default the AMI the consumer picks (Batch) */
  machineImage?: MachineImageConfig;
  /** @default chosen by the consumer (Auto Scaling overrides, Batch) */
  instanceType?: string;
  instanceProfileArn?: string;
  securityGroupIds?: string[];
  /** Root volume size in GiB. */
  rootVolumeGb: number;
  /** @default '/dev/xvda' (Amazon Linux) */
  rootDeviceName?: string;
  /** cloud-init user data, plain text; encoded here. Must be a synth-time literal (see the secrets guard). */
  userData?: string;
  /** Tags for the instances and volumes it launches, next to the stack's (default_tags do not reach them). @default the stack's */
  instanceTags?: Record<string, string>;
}

/**
 * A launch template with the hardening every fleet shares: IMDSv2 only, with a hop limit of 1 so
 * containers on bridge networks cannot borrow the instance role; an encrypted gp3 root volume; detailed
 * monitoring; user data that is base64 of a literal.
 */
export class HardenedLaunchTemplate extends Construct {
  readonly template: LaunchTemplate;

  constructor(scope: Construct, id: string, props: HardenedLaunchTemplateProps) {
    super(scope, id);
    let imageId: string | undefined;
    if (props.machineImage && 'amiId' in props.machineImage) imageId = props.machineImage.amiId;
    else if (props.machineImage) {
      // A public String parameter: nothing to decrypt, and AF-PLAINTEXT-SECRETS refuses a decrypting read.
      imageId = new DataAwsSsmParameter(this, 'ami', {
        name: props.machineImage.ssmParameter,
        withDecryption: false,
      }).insecureValue;
    }
    const tags = { ...stackTags(this), ...props.instanceTags };
    if (props.userData !== undefined) {
      const bytes = Buffer.byteLength(props.userData, 'utf8');
      this.node.addValidation({
        validate: () =>
          bytes > MAX_USER_DATA_BYTES
            ? [
                `user data of ${props.name} is ${bytes} bytes; EC2 accepts at most ${MAX_USER_DATA_BYTES} (before base64)`,
              ]
            : [],
      });
    }
    this.template = new LaunchTemplate(this, 'template', {
      name: props.name,
      description: 'airfleet hardened launch template',
      ...(imageId !== undefined ? { imageId } : {}),
      ...(props.instanceType !== undefined ? { instanceType: props.instanceType } : {}),
      ...(props.instanceProfileArn !== undefined ? { iamInstanceProfile: { arn: props.instanceProfileArn } } : {}),
      ...(props.securityGroupIds !== undefined ? { vpcSecurityGroupIds: props.securityGroupIds } : {}),
      metadataOptions: {
        httpEndpoint: 'enabled',
        httpTokens: 'required',
        httpPutResponseHopLimit: 1,
        instanceMetadataTags: 'disabled',
      },
      blockDeviceMappings: [
        {
          deviceName: props.rootDeviceName ?? '/dev/xvda',
          ebs: {
            volumeSize: props.rootVolumeGb,
            volumeType: 'gp3',
            encrypted: 'true',
            deleteOnTermination: 'true',
          },
        },
      ],
      monitoring: { enabled: true },
      ...(props.userData !== undefined ? { userData: Buffer.from(props.userData, 'utf8').toString('base64') } : {}),
      updateDefaultVersion: true,
      ...(Object.keys(tags).length > 0
        ? {
            tagSpecifications: [
              { resourceType: 'instance', tags },
              { resourceType: 'volume', tags },
            ],
          }
        : {}),
    });
  }
}
