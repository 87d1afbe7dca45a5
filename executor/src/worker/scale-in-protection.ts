import { AutoScalingClient, SetInstanceProtectionCommand } from '@aws-sdk/client-auto-scaling';
import type { Logger } from 'pino';

/** What the agent tells when it becomes busy (before a task starts) and idle (after its last one ends). */
export interface BusyHook {
  busy(): Promise<void>;
  idle(): void;
}

/** How long a task waits for its instance to be protected before it starts anyway (the drain hook remains). */
const PROTECT_TIMEOUT_MS = 10_000;

/**
 * A worker on an EC2 Auto Scaling group keeps its own instance out of scale-in while it runs tasks:
 * protected before its first task starts, unprotected once it has none, so target tracking only ever
 * removes idle instances. Calls are serialized and made only on a change.
 */
export class AsgScaleInProtection implements BusyHook {
  private readonly client: AutoScalingClient;
  private readonly group: string;
  private readonly instanceId: string;
  private readonly logger: Logger;
  private protectedNow: boolean | null = null;
  private chain: Promise<void> = Promise.resolve();

  constructor(options: { group: string; instanceId: string; logger: Logger; client?: AutoScalingClient }) {
    this.group = options.group;
    this.instanceId = options.instanceId;
    this.logger = options.logger;
    this.client = options.client ?? new AutoScalingClient({});
  }

  private set(on: boolean): Promise<void> {
    this.chain = this.chain.then(async () => {
      if (this.protectedNow === on) return;
      try {
        await this.client.send(
          new SetInstanceProtectionCommand({
            AutoScalingGroupName: this.group,
            InstanceIds: [this.instanceId],
            ProtectedFromScaleIn: on,
          }),
        );
        this.protectedNow = on;
        this.logger.info({ group: this.group, instance: this.instanceId, protected: on }, 'scale-in protection set');
      } catch (error) {
        this.logger.warn(
          { group: this.group, instance: this.instanceId, protected: on, err: (error as Error).message },
          'could not set scale-in protection; will try again at the next change',
        );
      }
    });
    return this.chain;
  }

  async busy(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.set(true),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, PROTECT_TIMEOUT_MS);
      }),
    ]);
    clearTimeout(timer);
  }

  idle(): void {
    void this.set(false);
  }

  /** Waits for the calls under way (tests, shutdown). */
  settled(): Promise<void> {
    return this.chain;
  }
}

/** This instance's id: AIRFLEET_INSTANCE_ID, or the instance metadata service (IMDSv2). */
export async function instanceId(env: NodeJS.ProcessEnv = process.env): Promise<string> {
  if (env.AIRFLEET_INSTANCE_ID) return env.AIRFLEET_INSTANCE_ID;
  const base = 'http://169.254.169.254/latest';
  const token = await (
    await fetch(`${base}/api/token`, {
      method: 'PUT',
      headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '60' },
      signal: AbortSignal.timeout(2_000),
    })
  ).text();
  const response = await fetch(`${base}/meta-data/instance-id`, {
    headers: { 'x-aws-ec2-metadata-token': token },
    signal: AbortSignal.timeout(2_000),
  });
  if (!response.ok) throw new Error(`the instance metadata service answered ${response.status}`);
  return (await response.text()).trim();
}
