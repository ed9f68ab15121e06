import type { IncomingHttpHeaders } from 'node:http';
import type { TLSSocket } from 'node:tls';

/** The client-certificate check of the connection, as nginx's `$ssl_client_verify` says it: `SUCCESS`, `NONE` or `FAILED:<reason>`. */
export const CLIENT_VERIFY_HEADER = 'x-ssl-client-verify';

/** The subject of a verified client certificate, as nginx's `$ssl_client_s_dn` (RFC 4514 escaping, attributes in certificate order). */
export const CLIENT_SUBJECT_HEADER = 'x-ssl-client-s-dn';

/** Each connection's headers, worked out on its first request (HTTP/1.1 keep-alive reuses them). */
const verdicts = new WeakMap<object, { readonly verify: string; readonly subject: string | undefined }>();

/**
 * Drops the client-certificate headers from a client's request: only the gateway that checked the
 * certificate may say what it found, on any entry point (an upstream behind several would believe it).
 * Deleted only when there, which keeps the usual headers object out of dictionary mode. Their
 * spellings with underscores (`x_ssl_client_verify`) the request context removes with those of the
 * gateway's other headers (`otherSpellingsRemover`).
 */
export function stripClientCertificateHeaders(headers: IncomingHttpHeaders): void {
  if (headers[CLIENT_VERIFY_HEADER] !== undefined) delete headers[CLIENT_VERIFY_HEADER];
  if (headers[CLIENT_SUBJECT_HEADER] !== undefined) delete headers[CLIENT_SUBJECT_HEADER];
}

/**
 * Sets the client-certificate headers of a request that came over `socket`, a TLS connection of an
 * entry point with `tls.clientAuth` (an HTTP/2 request's socket stands for its session's):
 * `x-ssl-client-verify`, and `x-ssl-client-s-dn` when the certificate was verified.
 */
export function setClientCertificateHeaders(headers: IncomingHttpHeaders, socket: object): void {
  let verdict = verdicts.get(socket);
  if (!verdict) {
    const tls = socket as TLSSocket;
    const certificate = tls.getPeerX509Certificate?.();
    verdict = !certificate
      ? { verify: 'NONE', subject: undefined }
      : tls.authorized
        ? { verify: 'SUCCESS', subject: distinguishedName(certificate.subject) }
        : { verify: `FAILED:${String(tls.authorizationError ?? 'unknown')}`, subject: undefined };
    verdicts.set(socket, verdict);
  }
  headers[CLIENT_VERIFY_HEADER] = verdict.verify;
  if (verdict.subject !== undefined) headers[CLIENT_SUBJECT_HEADER] = verdict.subject;
}

/**
 * node:crypto's subject (one `type=value` per line) as one RFC 4514-style line: values escaped,
 * attributes joined by commas, and what is not printable ASCII percent-encoded, which no header may carry raw.
 */
function distinguishedName(subject: string): string {
  return subject
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => {
      const equals = line.indexOf('=');
      const value = line.slice(equals + 1).replace(/[,+"\\<>;]/g, (character) => `\\${character}`);
      return `${line.slice(0, equals + 1)}${value}`;
    })
    .join(',')
    .replace(/[^\x20-\x7e]/gu, (character) => encodeURIComponent(character));
}
