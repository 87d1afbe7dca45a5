import { ConflictError, LogOffsetError } from '../errors.ts';
import type { Queryable } from './db.ts';

export const LOG_STREAMS = ['stdout', 'stderr'] as const;
export type LogStream = (typeof LOG_STREAMS)[number];

/**
 * Log chunks keyed by (workload, attempt, stream, offset); a stream is the concatenation of its chunks in
 * offset order, with no gaps and no overlaps. An append is accepted only at the stream's stored length, so
 * the store can never hold a gap or two versions of the same bytes. A writer that retries an upload whose
 * answer it lost sends the same chunk at the same offset again: that is acknowledged as a no-op. Anything
 * else at an offset the store already has, or past its end, is refused with the stored length, where the
 * writer resumes (worker/log-spool.ts does).
 */
export async function appendLogChunk(
  q: Queryable,
  chunk: { workloadId: string; attempt: number; stream: LogStream; offset: number; data: Buffer },
  owner?: { workerId: string },
): Promise<number> {
  // With an owner (a pull worker), the chunk is taken only while that worker holds the attempt: checked in
  // the same statement, so an upload costs one round trip.
  const { rows } = await q.query<{ inserted: number | null; current: number; same: boolean; owned: boolean }>(
    `WITH cur AS (
       SELECT coalesce((SELECT "offset" + length(data) FROM log_chunks
                        WHERE workload_id = $1::uuid AND attempt = $2 AND stream = $3
                        ORDER BY "offset" DESC LIMIT 1), 0)::bigint AS len
     ),
     owned AS (
       SELECT $6::uuid IS NULL OR EXISTS (SELECT 1 FROM workloads
                                          WHERE id = $1::uuid AND attempt = $2 AND worker_id = $6::uuid) AS ok
     ),
     ins AS (
       INSERT INTO log_chunks (workload_id, attempt, stream, "offset", data)
       SELECT $1::uuid, $2, $3, $4, $5 FROM cur, owned WHERE cur.len = $4 AND owned.ok
       ON CONFLICT DO NOTHING
       RETURNING "offset" + length(data) AS len
     )
     SELECT (SELECT len FROM ins)::float8 AS inserted, (SELECT len FROM cur)::float8 AS current,
            (SELECT ok FROM owned) AS owned,
            EXISTS (SELECT 1 FROM log_chunks WHERE workload_id = $1::uuid AND attempt = $2 AND stream = $3
                      AND "offset" = $4 AND length(data) = length($5::bytea)) AS same`,
    [chunk.workloadId, chunk.attempt, chunk.stream, chunk.offset, chunk.data, owner?.workerId ?? null],
  );
  const row = rows[0]!;
  if (!row.owned) throw new NotYoursError(chunk.workloadId, chunk.attempt);
  if (row.inserted !== null) return Number(row.inserted);
  if (row.same) return Number(row.current);
  throw new LogOffsetError(
    `the service holds ${row.current} bytes of ${chunk.stream} for attempt ${chunk.attempt}; a chunk of ` +
      `${chunk.data.length} bytes at offset ${chunk.offset} does not continue it: resend from offset ${row.current}`,
    Number(row.current),
  );
}

/** The attempt is not (or no longer) the uploading worker's. */
export class NotYoursError extends ConflictError {
  constructor(workloadId: string, attempt: number) {
    super(`logs for attempt ${attempt} of ${workloadId} do not belong to this worker; drop them`);
  }
}

const MAX_CHUNKS_PER_READ = 256;

export interface LogSlice {
  data: Buffer;
  /** Offset to ask for next. */
  nextOffset: number;
}

/**
 * Bytes of one stream from `offset`, up to `maxBytes` (whole chunks, so a reply may be slightly longer).
 * Chunks that start before `offset` but reach past it are cut, so any offset is a valid place to resume.
 */
export async function readLog(
  q: Queryable,
  workloadId: string,
  attempt: number,
  stream: LogStream,
  offset: number,
  maxBytes: number,
): Promise<LogSlice> {
  const { rows } = await q.query<{ offset: number; data: Uint8Array }>(
    `SELECT "offset"::float8 AS "offset", data FROM log_chunks
     WHERE workload_id = $1::uuid AND attempt = $2 AND stream = $3 AND "offset" + length(data) > $4
     ORDER BY "offset" LIMIT $5`,
    // Bounded per request: enough chunks for maxBytes when they are large, never the whole stream.
    [workloadId, attempt, stream, offset, MAX_CHUNKS_PER_READ],
  );
  const parts: Buffer[] = [];
  let position = offset;
  let size = 0;
  for (const row of rows) {
    const start = Number(row.offset);
    if (start > position) break; // a gap: the chunk before it has not arrived yet
    const data = Buffer.from(row.data);
    const slice = data.subarray(position - start);
    parts.push(slice);
    position += slice.length;
    size += slice.length;
    if (size >= maxBytes) break;
  }
  return { data: Buffer.concat(parts), nextOffset: position };
}

/** Where the stored bytes of one stream of an attempt end (writers that append in order leave no gaps). */
export async function storedLength(
  q: Queryable,
  workloadId: string,
  attempt: number,
  stream: LogStream,
): Promise<number> {
  const { rows } = await q.query<{ end: number | null }>(
    `SELECT ("offset" + length(data))::float8 AS "end" FROM log_chunks
     WHERE workload_id = $1::uuid AND attempt = $2 AND stream = $3 ORDER BY "offset" DESC LIMIT 1`,
    [workloadId, attempt, stream],
  );
  return Number(rows[0]?.end ?? 0);
}
