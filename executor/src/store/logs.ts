import type { Queryable } from './db.ts';

export const LOG_STREAMS = ['stdout', 'stderr'] as const;
export type LogStream = (typeof LOG_STREAMS)[number];

/**
 * Log chunks keyed by (workload, attempt, stream, offset). A worker that retries an upload after a timeout
 * sends the same offset again; the primary key makes that a no-op instead of a duplicated line.
 */
export async function appendLogChunk(
  q: Queryable,
  chunk: { workloadId: string; attempt: number; stream: LogStream; offset: number; data: Buffer },
): Promise<void> {
  await q.query(
    `INSERT INTO log_chunks (workload_id, attempt, stream, "offset", data) VALUES ($1::uuid, $2, $3, $4, $5)
     ON CONFLICT DO NOTHING`,
    [chunk.workloadId, chunk.attempt, chunk.stream, chunk.offset, chunk.data],
  );
}

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
     ORDER BY "offset"`,
    [workloadId, attempt, stream, offset],
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
    `SELECT max("offset" + length(data))::float8 AS "end" FROM log_chunks
     WHERE workload_id = $1::uuid AND attempt = $2 AND stream = $3`,
    [workloadId, attempt, stream],
  );
  return Number(rows[0]?.end ?? 0);
}
