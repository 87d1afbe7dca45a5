/**
 * What still holds the event loop open once every integration suite has ended. The tier runs in band, so a
 * suite that leaves a child process, a server, a socket or a timer behind keeps the jest process alive after
 * its last test: CI then waits out its whole time limit with every test passed (stop 23). The tier's jest
 * runs with --forceExit (scripts/test-integration.sh) so that cannot happen again; this report names what
 * was left so the suite that leaked it can be fixed.
 */

interface Handle {
  constructor: { name: string };
  _handle?: { hasRef?: () => boolean } | null;
  hasRef?: () => boolean;
  spawnargs?: string[];
  pid?: number;
  remoteAddress?: string;
  remotePort?: number;
  address?: () => unknown;
  fd?: number;
}

function isReferenced(handle: Handle): boolean {
  const probe = handle.hasRef ?? handle._handle?.hasRef?.bind(handle._handle);
  return probe ? probe.call(handle) : true;
}

function describe(handle: Handle): string {
  const kind = handle.constructor.name;
  if (handle.spawnargs) return `${kind} pid ${handle.pid}: ${handle.spawnargs.join(' ').slice(0, 200)}`;
  if (handle.remoteAddress) return `${kind} to ${handle.remoteAddress}:${handle.remotePort}`;
  const address = handle.address?.() as { address?: string; port?: number } | string | null | undefined;
  if (typeof address === 'string') return `${kind} on ${address}`;
  if (address?.port !== undefined) return `${kind} on ${address.address}:${address.port}`;
  return kind;
}

/** One line per referenced handle (standard streams left out), and the counts of every resource type. */
export function openHandleReport(): string[] {
  const standard = new Set<unknown>([process.stdin, process.stdout, process.stderr]);
  const active = (process as unknown as { _getActiveHandles(): Handle[] })._getActiveHandles();
  const lines = active.filter((handle) => !standard.has(handle) && isReferenced(handle)).map(describe);
  const counts = new Map<string, number>();
  for (const type of process.getActiveResourcesInfo()) counts.set(type, (counts.get(type) ?? 0) + 1);
  // Timers are resources, not handles; PipeWrap/TTYWrap counts include the standard streams.
  const resources = [...counts].map(([type, count]) => `${type} ×${count}`).join(', ');
  return [...lines, `resources: ${resources}`];
}
