import type { FastifyReply, FastifyRequest } from 'fastify';
import { ForbiddenError, UnauthorizedError } from '../errors.ts';
import type { ExecutorService, Principal } from '../service/executor-service.ts';
import type { Scope } from '../store/tokens.ts';
import { sessionToken } from './ui-session.ts';

/** What a route needs: nothing (health only), an API token with a scope, or a worker's own token. */
export type AuthRequirement = 'public' | Scope | 'worker';

declare module 'fastify' {
  interface FastifyContextConfig {
    auth?: AuthRequirement;
  }
  interface FastifyRequest {
    principal: Principal | null;
  }
}

/** Every route must declare its requirement; one that forgets gets the strictest (admin). */
export function authHook(service: ExecutorService) {
  return async (request: FastifyRequest, _reply: FastifyReply): Promise<void> => {
    const need: AuthRequirement = request.routeOptions.config.auth ?? 'admin';
    if (need === 'public') return;
    const header = request.headers.authorization;
    // The dashboard's session cookie stands in for the header only when there is none (api/ui-session.ts).
    const token = header?.startsWith('Bearer ')
      ? header.slice(7).trim()
      : header === undefined && need !== 'worker'
        ? sessionToken(request)
        : undefined;
    if (!token) throw new UnauthorizedError();
    const principal = await service.authenticate(token);
    if (!principal) throw new UnauthorizedError('invalid or revoked token');
    request.principal = principal;
    if (need === 'worker') {
      if (principal.kind !== 'worker') throw new ForbiddenError('worker token (from `airfleet worker` registration)');
      return;
    }
    if (principal.kind !== 'api') throw new ForbiddenError(need);
    if (!principal.scopes.includes('admin') && !principal.scopes.includes(need)) throw new ForbiddenError(need);
  };
}

export function workerIdOf(request: FastifyRequest): string {
  const principal = request.principal;
  if (principal?.kind !== 'worker') throw new UnauthorizedError();
  return principal.workerId;
}
