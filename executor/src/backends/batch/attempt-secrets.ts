import {
  CreateSecretCommand,
  DeleteSecretCommand,
  PutSecretValueCommand,
  type SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import type { AwsCaller } from './aws-calls.ts';
import { TAG_ATTEMPT, TAG_WORKLOAD } from './job-spec.ts';

/**
 * Secrets of an attempt, kept out of its Batch job (docs/batch-secrets.md): anyone allowed
 * `batch:DescribeJobs` reads a job's command and environment, so the secret environment goes into a
 * Secrets Manager secret of its own, `<prefix>attempts/<workload id>/<attempt>`, that only the job role
 * (and the executor) may read. The job carries the secret's ARN in `AIRFLEET_SECRET_ENV_ID`, and
 * airfleet-batch-entry, the job's first process, reads it and runs the command with it. The secret is
 * deleted, without a recovery window, when the attempt ends.
 *
 * The name is derived from the attempt, so a submit repeated after a crash overwrites the same secret
 * instead of leaving a second one behind, and a restarted instance can delete it without a record of it.
 */
export class AttemptSecrets {
  private readonly client: SecretsManagerClient;
  private readonly caller: AwsCaller;
  private readonly prefix: string;

  constructor(client: SecretsManagerClient, caller: AwsCaller, prefix: string) {
    this.client = client;
    this.caller = caller;
    this.prefix = prefix;
  }

  nameOf(workloadId: string, attempt: number): string {
    return `${this.prefix}attempts/${workloadId}/${attempt}`;
  }

  /** Stores the attempt's secret environment; returns the secret's ARN for the job. */
  async put(workloadId: string, attempt: number, env: Record<string, string>, signal?: AbortSignal): Promise<string> {
    const name = this.nameOf(workloadId, attempt);
    const value = JSON.stringify(env);
    try {
      const created = await this.caller.call(
        'CreateSecret',
        () =>
          this.client.send(
            new CreateSecretCommand({
              Name: name,
              SecretString: value,
              Description: `airfleet: secret environment of attempt ${attempt} of workload ${workloadId}; deleted when it ends`,
              Tags: [
                { Key: TAG_WORKLOAD, Value: workloadId },
                { Key: TAG_ATTEMPT, Value: String(attempt) },
              ],
            }),
          ),
        signal ? { signal } : {},
      );
      return created.ARN!;
    } catch (error) {
      if ((error as Error).name !== 'ResourceExistsException') throw error;
      const updated = await this.caller.call(
        'PutSecretValue',
        () => this.client.send(new PutSecretValueCommand({ SecretId: name, SecretString: value })),
        signal ? { signal } : {},
      );
      return updated.ARN!;
    }
  }

  /** Deletes the attempt's secret at once (no recovery window); a secret that is not there is fine. */
  async delete(workloadId: string, attempt: number): Promise<void> {
    try {
      await this.caller.call('DeleteSecret', () =>
        this.client.send(
          new DeleteSecretCommand({ SecretId: this.nameOf(workloadId, attempt), ForceDeleteWithoutRecovery: true }),
        ),
      );
    } catch (error) {
      if ((error as Error).name !== 'ResourceNotFoundException') throw error;
    }
  }
}
