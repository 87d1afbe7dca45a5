import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ForbiddenError, UnauthorizedError } from '../errors.ts';
import type { Principal } from '../service/executor-service.ts';
import { SCOPES } from '../store/tokens.ts';
import { noContent, replies } from './schemas.ts';

/**
 * The dashboard's login: the browser hands an API token over once (`POST /v1/session` with
 * `Authorization: Bearer <token>`) and gets it back as an HttpOnly, SameSite=Strict cookie, so page scripts never hold it, no URL ever carries it, and a reload
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

export function sessionRoutes(): FastifyPluginAsyncZod {
  return async (app) => {
    app.post(
      '/v1/session',
      {
        // The login is an authenticated request like any other: the token comes in the Authorization header
        // (which no other site's page can set without a CORS preflight this service never grants), the auth
        // hook checks it and its scope, and only then is it set as the cookie.
        config: { auth: 'read' },
        schema: {
          summary:
            'Dashboard login: sets the API token of the Authorization header as an HttpOnly, SameSite=Strict cookie for /v1',
          tags: ['dashboard'],
          response: replies({ 200: sessionView }),
        },
      },
      async (request, reply) => {
        const principal = apiPrincipal(request);
        const header = request.headers.authorization;
        // Signed in already (no header, the cookie authenticated this): the same cookie again, renewed.
        const token = header?.startsWith('Bearer ') ? header.slice(7).trim() : sessionToken(request);
        if (!token) throw new UnauthorizedError();
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
        const p = apiPrincipal(request);
        return { name: p.name, scopes: p.scopes };
      },
    );

    app.delete(
      '/v1/session',
      {
        // Authenticated too (by the cookie, with the CSRF header, or a bearer token): a page of another site
        // cannot sign the dashboard out. A revoked token's cookie cannot sign anything in; the page forgets it.
        config: { auth: 'read' },
        schema: {
          summary: `Dashboard logout: clears the session cookie (from the dashboard: with the ${CSRF_HEADER}: 1 header)`,
          tags: ['dashboard'],
          response: replies({ 204: noContent }),
        },
      },
      async (request, reply: FastifyReply) => {
        apiPrincipal(request);
        reply.header('set-cookie', cookie(request, '', 0));
        reply.status(204);
      },
    );
  };
}

function apiPrincipal(request: FastifyRequest): Extract<Principal, { kind: 'api' }> {
  const p = request.principal;
  if (p?.kind !== 'api') throw new UnauthorizedError();
  return p;
}
