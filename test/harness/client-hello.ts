import { createServer, type AddressInfo } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

/** The ClientHello a node:tls client sends for `servername`, as bytes, caught by a listener that answers nothing. */
export function clientHello(servername: string): Promise<Buffer> {
  return new Promise((resolve) => {
    const catcher = createServer((socket) =>
      socket.once('data', (chunk: Buffer) => {
        resolve(chunk);
        socket.destroy();
        catcher.close();
      }),
    );
    catcher.listen(0, '127.0.0.1', () => tlsConnect({ host: '127.0.0.1', port: (catcher.address() as AddressInfo).port, servername, rejectUnauthorized: false }).on('error', () => undefined));
  });
}
