import net from 'node:net';

/**
 * A TCP relay in front of a database server that counts round trips: a client send that starts
 * while none of its connection's sends is waiting for an answer begins one; whatever else the
 * client sends before the server answers (pipelined statements) rides in the same round trip.
 */
export interface RoundTripProxy {
  /** The relay's port on 127.0.0.1. */
  readonly port: number;
  /** Round trips on every connection since it was last set to 0. */
  roundTrips: number;
  close(): Promise<void>;
}

export async function roundTripProxy(upstreamPort: number): Promise<RoundTripProxy> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(upstreamPort, '127.0.0.1');
    sockets.add(client).add(upstream);
    let waiting = false;
    client.on('data', (chunk) => {
      if (!waiting) proxy.roundTrips += 1;
      waiting = true;
      upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      waiting = false;
      client.write(chunk);
    });
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const proxy: RoundTripProxy = {
    port: (server.address() as net.AddressInfo).port,
    roundTrips: 0,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return proxy;
}
