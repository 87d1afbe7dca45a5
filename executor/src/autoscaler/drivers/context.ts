import type { Logger } from 'pino';
import type { Worker } from '../../store/workers.ts';

/** What a driver may ask of the service. */
export interface DriverContext {
  logger: Logger;
  /** Tells a drained worker to leave: it deregisters and its process exits 0 (POST /v1/workers/:name/drain). */
  releaseWorker(worker: Worker): Promise<void>;
}
