import { createServer } from 'node:net';

/**
 * A free TCP port on 127.0.0.1. Containers run with host networking, so each one must be told which loopback
 * port to bind; asking the kernel for an ephemeral port and releasing it is enough here because ports are
 * handed out round-robin and nothing else on a test machine competes for them.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === 'object') resolve(address.port);
        else reject(new Error('could not read the port the kernel assigned'));
      });
    });
  });
}
