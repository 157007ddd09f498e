import { once } from 'node:events';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy in front of a memcached server that counts round trips: a burst of bytes from the
 * client that starts while no reply is awaited is one trip out; it ends when the server answers.
 * Commands written together (small enough for one segment on loopback) count once.
 */
export interface RoundTripCounter {
  /** host:port to give the driver instead of the server's. */
  readonly address: string;
  /** Trips out since the start or the last reset(). */
  readonly trips: number;
  reset(): void;
  close(): Promise<void>;
}

export async function countRoundTrips(targetPort: number): Promise<RoundTripCounter> {
  let trips = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect({ host: '127.0.0.1', port: targetPort });
    sockets.add(client);
    sockets.add(upstream);
    let awaitingReply = false;
    client.on('data', (chunk) => {
      if (!awaitingReply) trips += 1;
      awaitingReply = true;
      upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      awaitingReply = false;
      client.write(chunk);
    });
    const close = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', close);
    upstream.on('close', close);
    client.on('error', close);
    upstream.on('error', close);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    address: `127.0.0.1:${port}`,
    get trips() {
      return trips;
    },
    reset() {
      trips = 0;
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}
