import { connect, createServer, type Server, type Socket } from 'node:net';
import { freePort } from './ports.ts';

/**
 * A round-robin TCP load balancer on loopback, in front of several service instances, as a deployment puts
 * one: each new connection goes to the next instance that accepts it; a connection to an instance that dies
 * is cut, and the client's retry lands on a live one.
 */
export class TcpBalancer {
  readonly port: number;
  private readonly server: Server;
  private readonly targets: number[];
  private next = 0;
  private readonly open = new Set<Socket>();

  private constructor(port: number, targets: number[]) {
    this.port = port;
    this.targets = targets;
    this.server = createServer((client) => this.route(client, 0));
  }

  static async start(targets: number[]): Promise<TcpBalancer> {
    const balancer = new TcpBalancer(await freePort(), targets);
    await new Promise<void>((resolve) => balancer.server.listen(balancer.port, '127.0.0.1', resolve));
    return balancer;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  private route(client: Socket, tried: number): void {
    if (tried >= this.targets.length) {
      client.destroy();
      return;
    }
    const port = this.targets[this.next++ % this.targets.length]!;
    const upstream = connect(port, '127.0.0.1');
    let connected = false;
    upstream.once('connect', () => {
      connected = true;
      this.open.add(client).add(upstream);
      client.pipe(upstream).pipe(client);
      const drop = () => {
        client.destroy();
        upstream.destroy();
        this.open.delete(client);
        this.open.delete(upstream);
      };
      client.once('close', drop).once('error', drop);
      upstream.once('close', drop).once('error', drop);
    });
    upstream.once('error', () => {
      if (!connected) this.route(client, tried + 1);
    });
  }

  async stop(): Promise<void> {
    for (const s of this.open) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
