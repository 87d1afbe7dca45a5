/**
 * Everything of the batch backend that needs the AWS SDK, loaded by {@link BatchBackend.start} only: the
 * three clients cost a service about 30 MB of memory, which one that does not run the backend should not
 * pay (the service imports batch-backend.ts whatever its backends).
 */
export {
  BatchClient,
  CancelJobCommand,
  DescribeJobQueuesCommand,
  DescribeJobsCommand,
  ListJobsCommand,
  SubmitJobCommand,
  TerminateJobCommand,
} from '@aws-sdk/client-batch';
export { CloudWatchLogsClient } from '@aws-sdk/client-cloudwatch-logs';
export { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
export { AttemptSecrets } from './attempt-secrets.ts';
export { batchHealthProblems } from './health-check.ts';
export { LogCopier } from './log-copier.ts';
