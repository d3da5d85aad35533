/**
 * Free TCP ports. Prefer letting a server bind port 0 and report its port; use `freePort()` only for
 * servers that cannot (nginx, Portkey). The port is free when returned; something else could take it
 * before the server binds, which on a bench machine practically never happens.
 */

import net from 'node:net';

export function freePort(host = '127.0.0.1') {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ host, port: 0, exclusive: true }, () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}
