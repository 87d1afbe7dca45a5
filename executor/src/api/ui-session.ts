import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ForbiddenError, UnauthorizedError } from '../errors.ts';
import type { ExecutorService } from '../service/executor-service.ts';
import { parseToken, SCOPES } from '../store/tokens.ts';
import { noContent, replies } from './schemas.ts';

/**
 * The dashboard's login: the browser hands an API token over once (`POST /v1/session`) and gets it back as
 * an HttpOnly, SameSite=Strict cookie, so page scripts never hold it, no URL ever carries it, and a reload
 * keeps the session. Every data call then goes to the same authenticated API as any client's; the cookie
 * is only read when a request has no Authorization header (bearer auth is unchanged), and never for the
 * worker protocol.
 *
 * Cross-site request forgery: a SameSite=Strict cookie is not sent with requests other sites start, and a
 * request the cookie authenticates that changes anything must also carry the header `x-airfleet-csrf: 1`,
 * which a page of another origin cannot add without a CORS preflight this service never grants; when the
 * browser says where the request comes from (`Sec-Fetch-Site`), that must be this origin.
 */
export const SESSION_COOKIE = 'airfleet_session';
export const CSRF_HEADER = 'x-airfleet-csrf';
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** The API token of the session cookie, for a request that has no Authorization header; undefined if none. */
export function sessionToken(request: FastifyRequest): string | undefined {
  const token = readCookie(request.headers.cookie, SESSION_COOKIE);
  if (token === undefined) return undefined;
  if (!SAFE_METHODS.has(request.method)) assertSameOrigin(request);
  return token;
}

function assertSameOrigin(request: FastifyRequest): void {
  if (request.headers[CSRF_HEADER] !== '1') {
    throw new ForbiddenError(
      `header ${CSRF_HEADER}: a request authenticated by the dashboard's session cookie that changes something ` +
        `must carry "${CSRF_HEADER}: 1" (the dashboard sends it); other clients send "Authorization: Bearer <token>"`,
      [{ field: `header.${CSRF_HEADER}`, rule: 'must be 1' }],
    );
  }
  const site = request.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin') {
    throw new ForbiddenError(
      `header sec-fetch-site: '${String(site).slice(0, 40)}': the dashboard's session works from its own origin only`,
      [{ field: 'header.sec-fetch-site', rule: 'same-origin' }],
    );
  }
}

/** One cookie's value from a Cookie header (RFC 6265 syntax; values are never percent-decoded here). */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0 || part.slice(0, eq).trim() !== name) continue;
    const value = part.slice(eq + 1).trim();
    return value.length > 0 ? value : undefined;
  }
  return undefined;
}

function cookie(request: FastifyRequest, value: string, maxAgeSeconds?: number): string {
  // Secure when the browser came over TLS (directly, or through a proxy that says so): a header can only make
  // the cookie stricter here, never looser.
  const secure = request.protocol === 'https' || request.headers['x-forwarded-proto'] === 'https';
  return [
    `${SESSION_COOKIE}=${value}`,
    // Only the API reads it (the static files are public): browsers do not isolate cookies by port, so a
    // narrower path keeps it away from other services on the same host (Airflow's UI lives under /, /api/v2).
    'Path=/v1',
    'HttpOnly',
    'SameSite=Strict',
    ...(secure ? ['Secure'] : []),
    ...(maxAgeSeconds !== undefined ? [`Max-Age=${maxAgeSeconds}`] : []),
  ].join('; ');
}

const sessionView = z
  .object({
    name: z.string().describe("the token's name"),
    scopes: z.array(z.enum(SCOPES)),
  })
  .meta({ id: 'Session' });

export function sessionRoutes(service: ExecutorService): FastifyPluginAsyncZod {
  return async (app) => {
    app.post(
      '/v1/session',
      {
        // The login itself: the token is in the body. Nothing is readable here without a valid token.
        config: { auth: 'public' },
        schema: {
          summary: `Dashboard login: checks an API token and sets it as an HttpOnly, SameSite=Strict cookie (needs the ${CSRF_HEADER}: 1 header)`,
          tags: ['dashboard'],
          security: [],
          body: z.object({ token: z.string().min(1).max(256) }).strict(),
          response: replies({ 200: sessionView }),
        },
      },
      async (request, reply) => {
        assertSameOrigin(request);
        const token = request.body.token.trim();
        if (token.startsWith('afw_')) {
          throw new ForbiddenError(
            'token: this is a worker token; the dashboard takes an API token (aft_…): `airfleet token create --name me --scopes read`',
            [{ field: 'body.token', rule: 'an API token' }],
          );
        }
        const principal = parseToken(token)?.prefix === 'aft' ? await service.authenticate(token) : null;
        if (principal?.kind !== 'api') {
          throw new UnauthorizedError(
            'token: unknown or revoked; paste a whole API token (aft_…), e.g. from `airfleet token create --name me --scopes read`',
          );
        }
        if (!principal.scopes.includes('read') && !principal.scopes.includes('admin')) {
          throw new ForbiddenError(
            `token: the dashboard needs the 'read' scope and this token has ${principal.scopes.join(', ')}; ` +
              'create one with `airfleet token create --scopes read` (add submit to cancel, or use admin to manage workers)',
            [{ field: 'body.token', rule: "scope 'read' or 'admin'" }],
          );
        }
        reply.header('set-cookie', cookie(request, token));
        reply.header('cache-control', 'no-store');
        return { name: principal.name, scopes: principal.scopes };
      },
    );

    app.get(
      '/v1/session',
      {
        config: { auth: 'read' },
        schema: {
          summary: 'Who the caller is: the name and scopes of its token (the dashboard shows what the scopes allow)',
          tags: ['dashboard'],
          response: replies({ 200: sessionView }),
        },
      },
      async (request) => {
        const p = request.principal;
        if (p?.kind !== 'api') throw new UnauthorizedError();
        return { name: p.name, scopes: p.scopes };
      },
    );

    app.delete(
      '/v1/session',
      {
        // Logging out clears the browser's cookie; it reads and changes nothing on the service.
        config: { auth: 'public' },
        schema: {
          summary: `Dashboard logout: clears the session cookie (needs the ${CSRF_HEADER}: 1 header)`,
          tags: ['dashboard'],
          security: [],
          response: replies({ 204: noContent }),
        },
      },
      async (request, reply: FastifyReply) => {
        assertSameOrigin(request);
        reply.header('set-cookie', cookie(request, '', 0));
        reply.status(204);
      },
    );
  };
}
