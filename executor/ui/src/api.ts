/**
 * Calls to the service's API from the page. The session is an HttpOnly cookie the page cannot read (set by
 * POST /v1/session, the one call that sends the token itself); every request carries `x-airfleet-csrf: 1`, which the service requires of any request
 * the cookie authenticates that changes something. Paths are absolute: the page is served by the API's own
 * origin, at /ui/.
 */

/** An answer the API refused, with its own words (they say what to do), or no answer at all (status 0). */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

type Query = Record<string, string | number | boolean | undefined | null>;

export interface CallOptions {
  query?: Query;
  body?: unknown;
  signal?: AbortSignal;
  /** Sign-in only: the token typed in, sent once as `Authorization: Bearer` (the cookie carries it after). */
  bearer?: string;
}

const unauthorizedListeners = new Set<(error: ApiError) => void>();

/** Called when the API says the session is no longer valid (token revoked, cookie gone): show the login. */
export function onUnauthorized(listener: (error: ApiError) => void): () => void {
  unauthorizedListeners.add(listener);
  return () => unauthorizedListeners.delete(listener);
}

export function queryString(query: Query | undefined): string {
  if (!query) return '';
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== '') params.set(k, String(v));
  const s = params.toString();
  return s ? `?${s}` : '';
}

export async function call<T>(method: string, path: string, options: CallOptions = {}): Promise<T> {
  let response: Response;
  try {
    response = await fetch(`${path}${queryString(options.query)}`, {
      method,
      credentials: 'same-origin',
      headers: {
        accept: 'application/json',
        'x-airfleet-csrf': '1',
        ...(options.bearer !== undefined ? { authorization: `Bearer ${options.bearer}` } : {}),
        ...(options.body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
  } catch (error) {
    if ((error as Error).name === 'AbortError') throw error;
    throw new ApiError(
      0,
      'unreachable',
      'The airfleet service does not answer. Check that it runs and that this page’s address reaches it; the page retries by itself.',
    );
  }
  if (response.status === 204) return undefined as T;
  const text = await response.text();
  let body: unknown = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    // Not JSON: a proxy's error page, say. Its status says enough.
  }
  if (!response.ok) {
    const b = (body ?? {}) as { error?: string; message?: string };
    const error = new ApiError(
      response.status,
      b.error ?? `http_${response.status}`,
      b.message ?? `The service answered HTTP ${response.status} ${response.statusText}.`,
    );
    if (response.status === 401 && path !== '/v1/session') for (const l of unauthorizedListeners) l(error);
    throw error;
  }
  return body as T;
}

export const get = <T>(path: string, query?: Query, signal?: AbortSignal) =>
  call<T>('GET', path, { ...(query ? { query } : {}), ...(signal ? { signal } : {}) });

export const post = <T>(path: string, body?: unknown) => call<T>('POST', path, body === undefined ? {} : { body });

export const patch = <T>(path: string, body: unknown) => call<T>('PATCH', path, { body });

export const del = <T>(path: string) => call<T>('DELETE', path);

/** A path segment: worker names and workload keys may hold any character. */
export const seg = (value: string) => encodeURIComponent(value);

export function isAbort(error: unknown): boolean {
  return (error as Error)?.name === 'AbortError';
}

/** Sleeps `ms`, or until the signal aborts (then rejects with an AbortError). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new DOMException('aborted', 'AbortError'));
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        reject(new DOMException('aborted', 'AbortError'));
      },
      { once: true },
    );
  });
}
