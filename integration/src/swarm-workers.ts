import type Docker from 'dockerode';
import { testLabels } from './docker-env.ts';

/** Whether the local engine is a Swarm manager (`.ci/run` makes it one: `docker swarm init`). */
export async function isSwarmManager(docker: Docker): Promise<boolean> {
  const info = (await docker.info()) as { Swarm?: { ControlAvailable?: boolean } };
  return info.Swarm?.ControlAvailable === true;
}

export interface WorkerServiceOptions {
  name: string;
  image: string;
  apiUrl: string;
  /** A Swarm secret holding the enrollment token, mounted as a file (never in the service's environment). */
  tokenSecret: { id: string; name: string };
  queue: string;
  pool: string;
  concurrency: number;
  replicas: number;
  /** Host directory bind-mounted at /markers (the tasks' per-task markers). */
  markers: string;
}

/**
 * A replicated service of `airfleet worker` containers, the shape the autoscaler's Swarm driver expects
 * (executor/src/autoscaler/drivers/swarm-driver.ts): each worker named after its task and labelled with its
 * pool and task id (Swarm expands the templates in the environment), a restart condition of on-failure so a
 * worker that drained and left stays down, host networking to reach the service on 127.0.0.1.
 */
export async function createWorkerService(docker: Docker, o: WorkerServiceOptions): Promise<Docker.Service> {
  return docker.createService({
    Name: o.name,
    Labels: testLabels(),
    TaskTemplate: {
      ContainerSpec: {
        Image: o.image,
        // The image's entrypoint is `tini -- airfleet`.
        Args: ['worker', '--queues', o.queue, '--concurrency', String(o.concurrency), '--drain-timeout', '60'],
        Env: [
          `AIRFLEET_API_URL=${o.apiUrl}`,
          'AIRFLEET_TOKEN_FILE=/run/secrets/airfleet_enroll_token',
          'AIRFLEET_WORKER_NAME={{.Task.Name}}',
          `AIRFLEET_WORKER_LABELS=airfleet.pool=${o.pool},swarm.task={{.Task.ID}}`,
          'AIRFLEET_LOG_LEVEL=info',
        ],
        Labels: testLabels(),
        Mounts: [{ Type: 'bind', Source: o.markers, Target: '/markers' }],
        Secrets: [
          {
            SecretID: o.tokenSecret.id,
            SecretName: o.tokenSecret.name,
            File: { Name: 'airfleet_enroll_token', UID: '0', GID: '0', Mode: 0o444 },
          },
        ],
      },
      RestartPolicy: { Condition: 'on-failure', MaxAttempts: 3 },
      Networks: [{ Target: 'host' }],
    },
    Mode: { Replicated: { Replicas: o.replicas } },
  } as Docker.CreateServiceOptions);
}

export interface ServiceTask {
  ID: string;
  DesiredState: string;
  Status: { State: string; ContainerStatus?: { ExitCode?: number } };
}

export async function serviceTasks(docker: Docker, service: string): Promise<ServiceTask[]> {
  return (await docker.listTasks({ filters: { service: [service] } })) as ServiceTask[];
}

export async function replicasOf(docker: Docker, service: string): Promise<number> {
  const info = (await docker.getService(service).inspect()) as { Spec: { Mode: { Replicated: { Replicas: number } } } };
  return info.Spec.Mode.Replicated.Replicas;
}
