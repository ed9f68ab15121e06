import { request as http1Request, type IncomingHttpHeaders } from 'node:http';
import { connect } from 'node:http2';
import { Base64Stream } from '../../src/base64-stream.ts';

/** What a gRPC-Web client got: the head, the raw body, and HTTP trailers (a browser sees none). */
export interface WebAnswer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
  readonly trailers: Record<string, unknown>;
}

/** One gRPC-Web frame of a body: its flag byte and payload. */
export interface Frame {
  readonly flag: number;
  readonly payload: Buffer;
}

/** A helloworld message, hand-encoded: one string in field 1 (HelloRequest.name, HelloReply.message). */
export function message(text: string): Buffer {
  const bytes = Buffer.from(text);
  return Buffer.concat([Buffer.from([0x0a, bytes.length]), bytes]);
}

/** A length-prefixed frame (the 5-byte header of gRPC and gRPC-Web) around `payload`. */
export function frame(payload: Buffer, flag = 0): Buffer {
  const head = Buffer.alloc(5);
  head[0] = flag;
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

/** The request body of a call of `type` with the message `name`: in base64 for `-text`. */
export function callBody(type: string, name: string): Buffer {
  const bytes = frame(message(name));
  return type.includes('-text') ? Buffer.from(bytes.toString('base64'), 'latin1') : bytes;
}

/** The frames of an answer body of `type`; a `-text` body decoded by runs, as each piece may carry its own padding. */
export function framesOf(type: string, body: Buffer): Frame[] {
  const bytes = type.includes('-text') ? new Base64Stream().decode(body.toString('latin1')) : body;
  const frames: Frame[] = [];
  for (let offset = 0; offset + 5 <= bytes.length; ) {
    const length = bytes.readUInt32BE(offset + 1);
    frames.push({ flag: bytes[offset]!, payload: bytes.subarray(offset + 5, offset + 5 + length) });
    offset += 5 + length;
  }
  return frames;
}

/** What a gRPC-Web client reads of an answer: its messages, and its status and metadata from the trailer frame, or from the headers of a Trailers-Only answer. */
export function readAnswer(type: string, answer: WebAnswer): { messages: string[]; trailers: Record<string, string>; trailerFrame: boolean } {
  const frames = framesOf(type, answer.body);
  const messages = frames.filter((each) => each.flag === 0).map((each) => each.payload.subarray(2).toString());
  const last = frames.at(-1);
  if (last === undefined || last.flag !== 0x80) {
    const trailers = Object.fromEntries(Object.entries(answer.headers).filter(([name]) => name.startsWith('grpc-') || name.startsWith('x-')).map(([name, value]) => [name, String(value)]));
    return { messages, trailers, trailerFrame: false };
  }
  const lines = last.payload.toString('latin1').split('\r\n').filter(Boolean);
  const trailers = Object.fromEntries(lines.map((line) => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 1).trim()]));
  return { messages, trailers, trailerFrame: true };
}

/**
 * A gRPC-Web call over HTTP/1.1, as a browser sends it, to `helloworld.Greeter/<method>` (or to
 * `method` itself when it is a path) on the gateway's route `target`; `pieces` sends the body in
 * chunks of those sizes (chunked), else whole with a length.
 */
export function http1Call(port: number, target: string, method: string, type: string, name: string, pieces?: readonly number[], extra: Record<string, string> = {}, body = callBody(type, name)): Promise<WebAnswer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { 'content-type': type, 'x-grpc-web': '1', 'x-user-agent': 'grpc-web-javascript/0.1', 'x-target': target, accept: type, ...extra };
    if (pieces === undefined) headers['content-length'] = String(body.length);
    const path = method.startsWith('/') ? method : `/helloworld.Greeter/${method}`;
    const request = http1Request({ host: '127.0.0.1', port, method: 'POST', path, headers, agent: false }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode!, headers: response.headers, body: Buffer.concat(chunks), trailers: response.trailers }));
      response.on('error', reject);
    });
    request.on('error', reject);
    if (pieces === undefined) return void request.end(body);
    let offset = 0;
    for (const size of pieces) {
      request.write(body.subarray(offset, offset + size));
      offset += size;
    }
    request.end(body.subarray(offset));
  });
}

/** The same call over HTTP/2 (a gRPC-Web client of an h2c entry point). */
export function http2Call(port: number, target: string, method: string, type: string, name: string, extra: Record<string, string> = {}): Promise<WebAnswer> {
  return new Promise((resolve, reject) => {
    const session = connect(`http://127.0.0.1:${port}`);
    session.on('error', reject);
    const stream = session.request({ ':method': 'POST', ':path': `/helloworld.Greeter/${method}`, 'content-type': type, 'x-grpc-web': '1', 'x-target': target, ...extra });
    let headers: IncomingHttpHeaders = {};
    let trailers: Record<string, unknown> = {};
    const chunks: Buffer[] = [];
    stream.on('response', (received) => (headers = received as IncomingHttpHeaders));
    stream.on('trailers', (received) => (trailers = received));
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('error', reject);
    stream.on('close', () => {
      session.close();
      resolve({ status: Number(headers[':status']), headers, body: Buffer.concat(chunks), trailers });
    });
    stream.end(callBody(type, name));
  });
}
