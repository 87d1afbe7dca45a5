// Stopping the processes the bench starts (the service, the local-backend instance, the peers' servers),
// one way for all of them.

/** Whether the process has ended: by itself (exitCode) or by a signal (signalCode, exitCode then null). */
const ended = (child) => child.exitCode !== null || child.signalCode !== null;

/**
 * Stops a child process: SIGTERM, SIGKILL after 15 s; resolves once it has exited, at once when it already
 * has (its 'exit' event will not come again). `group`: the child leads its own process group (spawned with
 * `detached`), and the whole group is signalled, so its own children (uvicorn's workers) go with it.
 */
export function stopChild(child, { group = false } = {}) {
  if (!child || ended(child)) return Promise.resolve();
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const signal = (name) => {
    try {
      if (group) process.kill(-child.pid, name);
      else child.kill(name);
    } catch {
      // Gone between the check and the signal: its 'exit' resolves the wait.
    }
  };
  signal('SIGTERM');
  const timer = setTimeout(() => signal('SIGKILL'), 15_000);
  return exited.finally(() => clearTimeout(timer));
}
