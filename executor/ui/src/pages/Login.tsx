import { useState } from 'preact/hooks';
import { ApiError, call } from '../api.ts';
import type { Session } from '../types.ts';

/** What a refused sign-in means, and what to do. */
function loginError(err: unknown): string {
  if (!(err instanceof ApiError)) return String(err);
  if (err.status === 401) {
    return 'That token is unknown or revoked. Paste a whole API token (aft_…), e.g. from `airfleet token create --name me --scopes read`.';
  }
  if (err.status === 403) {
    return `This token cannot open the dashboard: it needs the read scope (${err.message}).`;
  }
  return err.message;
}

/**
 * Sign in with an API token. The token goes to POST /v1/session once (as its Authorization header) and comes
 * back as an HttpOnly cookie:
 * this page does not keep it (the field is cleared), and it never appears in an address.
 */
export function Login(props: { onSignedIn: (s: Session) => void; reason?: string | null }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    if (!token.trim()) {
      setError('Paste an API token first (aft_…).');
      return;
    }
    const typed = token.trim();
    if (typed.startsWith('afw_')) {
      setError('This is a worker token, for the worker protocol only. Sign in with an API token (aft_…).');
      return;
    }
    if (!/^[\x21-\x7e]+$/.test(typed)) {
      setError('An API token is one word of letters, digits and _ (aft_…): paste it whole, without spaces.');
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const session = await call<Session>('POST', '/v1/session', { bearer: typed });
      setToken('');
      props.onSignedIn(session);
    } catch (err) {
      setError(loginError(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <main id="main" class="login">
      <form class="login-card" onSubmit={submit} aria-describedby="login-help">
        <h1>
          <img src="/ui/favicon.svg" alt="" width={28} height={28} /> airfleet
        </h1>
        {props.reason ? (
          <p class="notice notice-info" role="status">
            {props.reason}
          </p>
        ) : null}
        <label for="token">API token</label>
        <input
          id="token"
          name="token"
          type="password"
          autocomplete="off"
          spellcheck={false}
          placeholder="aft_…"
          value={token}
          onInput={(e) => setToken((e.target as HTMLInputElement).value)}
          aria-invalid={error ? true : undefined}
          aria-describedby={error ? 'login-error' : undefined}
        />
        {error ? (
          <p id="login-error" class="field-error" role="alert">
            {error}
          </p>
        ) : null}
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
        <div id="login-help" class="help">
          <p>
            A token with the <code>read</code> scope shows everything; <code>submit</code> adds cancelling workloads,{' '}
            <code>admin</code> managing workers. Make one with{' '}
            <code>airfleet token create --name me --scopes read,submit</code>; on a first start the service wrote an
            admin token to <code>&lt;data-dir&gt;/admin.token</code>.
          </p>
          <p>The token is kept in an HttpOnly cookie of this site until you sign out or close the browser.</p>
        </div>
      </form>
    </main>
  );
}
