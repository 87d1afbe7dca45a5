import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, extname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyPluginAsync, FastifyReply } from 'fastify';

/**
 * The dashboard's static files (executor/ui, compiled by `npm run build` into executor/ui/dist), served at
 * `/ui`. These routes are public: they hold no data, and every data call the page makes goes to the
 * authenticated API. The files are read once at start into memory (a few hundred KB), and only names found
 * there are served, so no request path ever reaches the file system.
 *
 * Headers: a Content-Security-Policy that allows this origin's own scripts, styles and API only (nothing
 * from outside, no inline script), frames only from the origins given in `frameAncestors` (Airflow's UI,
 * for the plugin's view); hashed assets are immutable, index.html is revalidated on every load.
 */
export interface UiOptions {
  /** The compiled dashboard; default executor/ui/dist next to this module's package. */
  dir?: string;
  /** CSP frame-ancestors sources besides 'self' (config `uiFrameAncestors`). */
  frameAncestors?: readonly string[];
}

interface StaticFile {
  body: Buffer;
  type: string;
  immutable: boolean;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json; charset=utf-8',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

/** Where the compiled dashboard is: executor/ui/dist, from executor/src/api (sources) or executor/dist/api. */
export function defaultUiDir(): string {
  // jest runs the sources as CommonJS (__dirname); Node runs them, or dist, as ES modules.
  const here = typeof __dirname === 'string' ? __dirname : dirname(fileURLToPath(import.meta.url));
  return join(here, '..', '..', 'ui', 'dist');
}

function loadFiles(dir: string): Map<string, StaticFile> {
  const files = new Map<string, StaticFile>();
  if (!existsSync(join(dir, 'index.html'))) return files;
  const walk = (at: string) => {
    for (const name of readdirSync(at)) {
      const path = join(at, name);
      if (statSync(path).isDirectory()) walk(path);
      else {
        const rel = relative(dir, path).split(sep).join('/');
        files.set(rel, {
          body: readFileSync(path),
          type: TYPES[extname(name)] ?? 'application/octet-stream',
          // Vite names what it bundles by content hash (assets/index-3f2a1b.js): safe to keep for a year.
          immutable: rel.startsWith('assets/'),
        });
      }
    }
  };
  walk(dir);
  return files;
}

export function uiRoutes(options: UiOptions = {}): FastifyPluginAsync {
  return async (app) => {
    const dir = options.dir ?? defaultUiDir();
    const files = loadFiles(dir);
    const csp = [
      "default-src 'self'",
      "script-src 'self'",
      "style-src 'self'",
      "img-src 'self' data:",
      "connect-src 'self'",
      "object-src 'none'",
      "base-uri 'none'",
      "form-action 'self'",
      `frame-ancestors ${["'self'", ...(options.frameAncestors ?? [])].join(' ')}`,
    ].join('; ');

    const send = (reply: FastifyReply, file: StaticFile) =>
      reply
        .header('content-type', file.type)
        .header('content-security-policy', csp)
        .header('x-content-type-options', 'nosniff')
        .header('referrer-policy', 'no-referrer')
        .header('cache-control', file.immutable ? 'public, max-age=31536000, immutable' : 'no-cache')
        .send(file.body);

    const index = (reply: FastifyReply) => {
      const file = files.get('index.html');
      if (file) return send(reply, file);
      return reply
        .status(503)
        .header('content-type', 'text/plain; charset=utf-8')
        .header('cache-control', 'no-store')
        .send(
          `The dashboard is not built: no ${join(dir, 'index.html')}.\n` +
            'Run `npm run build` in the repository (it compiles executor/ui), then restart the service.\n',
        );
    };

    const routeOptions = { config: { auth: 'public' as const }, schema: { hide: true } };
    app.get('/ui', routeOptions, async (_request, reply) => reply.redirect('/ui/', 302));
    app.get('/ui/', routeOptions, async (_request, reply) => index(reply));
    app.get<{ Params: { '*': string } }>('/ui/*', routeOptions, async (request, reply) => {
      const file = files.get(request.params['*']);
      if (file && request.params['*'] !== 'index.html') return send(reply, file);
      // The app routes in the fragment (#/workers), so any other path is a mistyped address or a stale asset.
      return reply
        .status(404)
        .header('content-type', 'text/plain; charset=utf-8')
        .send(`No such file of the dashboard: /ui/${request.params['*'].slice(0, 200)}. Open /ui/ instead.\n`);
    });
  };
}
