/**
 * Preloaded (`node --import`) into an app under test whose code says `listen(3000)`: every server
 * listens on a free port instead, and prints `listening <port>` once it does.
 */
import { Server } from 'node:net';

const listen = Server.prototype.listen;

Server.prototype.listen = function listenOnFreePort(this: Server, ...args: unknown[]): Server {
  if (typeof args[0] === 'number') args[0] = 0;
  this.once('listening', () => {
    const address = this.address();
    if (typeof address === 'object' && address !== null) {
      process.stdout.write(`listening ${address.port}\n`);
    }
  });
  return Reflect.apply(listen, this, args) as Server;
} as Server['listen'];
