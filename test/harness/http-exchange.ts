import { request as httpRequest, type Agent, type IncomingHttpHeaders } from 'node:http';

/** A whole HTTP answer, body as text. */
export interface HttpAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** Settings of `sendRequest`. */
export interface SendRequestOptions {
  readonly method?: string;
  readonly headers?: Record<string, string>;
  /** The address to connect to, which is also the client's side: 127.0.0.1 (default) or ::1. */
  readonly host?: string;
  /** A request body, sent as given (set `content-length` yourself). */
  readonly body?: string;
}

/**
 * One request on a fresh connection with node:http, which sends the path exactly as written (no
 * normalisation, unlike fetch) and lets Host be set; rejects after 10 s without an answer.
 */
export function sendRequest(port: number, path: string, options: SendRequestOptions = {}): Promise<HttpAnswer> {
  const method = options.method ?? 'GET';
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest({ host: options.host ?? '127.0.0.1', port, path, method, headers: options.headers ?? {}, agent: false }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body }));
      response.on('error', reject);
    });
    outgoing.setTimeout(10_000, () => outgoing.destroy(new Error(`${method} ${path} timed out`)));
    outgoing.on('error', reject);
    outgoing.end(options.body);
  });
}

/**
 * GET `path` through `agent` (its connections kept for the next call); resolves with the status,
 * rejects after `timeoutMs` without an answer or when the connection closes before the whole answer.
 */
export function getStatus(port: number, path: string, agent: Agent, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest({ host: '127.0.0.1', port, path, agent, timeout: timeoutMs }, (response) => {
      response.resume();
      response.on('end', () => resolve(response.statusCode ?? 0));
      // A connection closed mid-body aborts the response with neither 'end' nor (unlisted) 'error', and the
      // idle timeout goes with the socket; after 'end' this is a no-op.
      response.on('close', () => reject(new Error(`GET ${path}: the connection closed before the whole answer`)));
    });
    outgoing.on('timeout', () => outgoing.destroy(new Error(`no answer to a request within ${timeoutMs} ms`)));
    outgoing.on('error', reject);
    outgoing.end();
  });
}
