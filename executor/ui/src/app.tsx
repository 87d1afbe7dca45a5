import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, del, get, onUnauthorized } from './api.ts';
import { Announcer } from './components/Announcer.tsx';
import { Notice } from './components/Notice.tsx';
import { Dispatch } from './pages/Dispatch.tsx';
import { Login } from './pages/Login.tsx';
import { Queues } from './pages/Queues.tsx';
import { Workers } from './pages/Workers.tsx';
import { WorkloadPage } from './pages/WorkloadPage.tsx';
import { Workloads } from './pages/Workloads.tsx';
import { href, navigate, type Route, useRoute } from './router.ts';
import { abilitiesOf, SessionContext } from './session.ts';
import { ThemeToggle } from './theme.tsx';
import type { Session } from './types.ts';

type SessionState =
  | { kind: 'checking' }
  | { kind: 'signed-out'; reason: string | null }
  | { kind: 'signed-in'; session: Session }
  | { kind: 'unreachable'; message: string };

const PAGES = [
  { path: 'workers', title: 'Workers' },
  { path: 'queues', title: 'Queues & pools' },
  { path: 'workloads', title: 'Workloads' },
  { path: 'dispatch', title: 'Dispatch' },
] as const;

export function App() {
  const [state, setState] = useState<SessionState>({ kind: 'checking' });
  const route = useRoute();

  const check = async () => {
    try {
      setState({ kind: 'signed-in', session: await get<Session>('/v1/session') });
    } catch (error) {
      if (error instanceof ApiError && (error.status === 401 || error.status === 403))
        setState({ kind: 'signed-out', reason: null });
      else setState({ kind: 'unreachable', message: (error as Error).message });
    }
  };

  useEffect(() => {
    void check();
    return onUnauthorized(() =>
      setState({
        kind: 'signed-out',
        reason: 'Your session ended: the token was revoked or the cookie is gone. Sign in again.',
      }),
    );
  }, []);

  if (state.kind === 'checking') return <p class="loading">Loading…</p>;
  if (state.kind === 'unreachable') {
    return (
      <main id="main" class="login">
        <Notice
          kind="error"
          title="The dashboard cannot reach the airfleet service"
          action={
            <button type="button" class="primary" onClick={() => void check()}>
              Try again
            </button>
          }
        >
          {state.message}
        </Notice>
      </main>
    );
  }
  if (state.kind === 'signed-out') {
    return <Login reason={state.reason} onSignedIn={(session) => setState({ kind: 'signed-in', session })} />;
  }

  const signOut = async () => {
    await del('/v1/session').catch(() => undefined);
    setState({ kind: 'signed-out', reason: 'Signed out.' });
  };

  return (
    <SessionContext.Provider value={abilitiesOf(state.session)}>
      {/* A button, not a #main link: the fragment is the router's. */}
      <button type="button" class="skip-link" onClick={skipToMain}>
        Skip to content
      </button>
      <header class="top">
        <a class="brand" href={href(['workers'])}>
          <img src="/ui/favicon.svg" alt="" width={22} height={22} /> airfleet
        </a>
        <nav aria-label="Pages">
          <ul>
            {PAGES.map((p) => (
              <li key={p.path}>
                <a href={href([p.path])} aria-current={currentPage(route) === p.path ? 'page' : undefined}>
                  {p.title}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <div class="who">
          <span class="who-name" title={`scopes: ${state.session.scopes.join(', ')}`}>
            {state.session.name} <span class="muted">({state.session.scopes.join(', ')})</span>
          </span>
          <ThemeToggle />
          <button type="button" class="link-button" onClick={() => void signOut()}>
            Sign out
          </button>
        </div>
      </header>
      <Page route={route} />
      <Announcer />
    </SessionContext.Provider>
  );
}

function currentPage(route: Route): string {
  return route.path[0] ?? 'workers';
}

function skipToMain() {
  document.getElementById('main')?.focus();
}

function Page({ route }: { route: Route }) {
  const main = useRef<HTMLElement>(null);
  const page = currentPage(route);
  const key = route.path.join('/');
  // A new page moves focus to its main region, so keyboard and screen-reader users start at its top.
  const first = useRef(true);
  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    main.current?.focus();
  }, [key]);
  useEffect(() => {
    if (!PAGES.some((p) => p.path === page)) navigate(href(['workers']), true);
  }, [page]);

  const title = route.path[1] ? 'Workload' : (PAGES.find((p) => p.path === page)?.title ?? 'Workers');
  useEffect(() => {
    document.title = `${title} · airfleet`;
  }, [title]);

  return (
    <main id="main" ref={main} tabIndex={-1}>
      {page === 'workers' ? <Workers query={route.query} /> : null}
      {page === 'queues' ? <Queues /> : null}
      {page === 'workloads' && route.path[1] ? <WorkloadPage key={route.path[1]} id={route.path[1]} /> : null}
      {page === 'workloads' && !route.path[1] ? <Workloads query={route.query} /> : null}
      {page === 'dispatch' ? <Dispatch /> : null}
    </main>
  );
}
