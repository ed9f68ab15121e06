import { createSecureContext } from 'node:tls';
import { z } from 'zod';
import { errorMessage } from '../../src/errors.ts';
import { duration, listenAddress, section } from './schema-values.ts';

/** An entry point's name: letters, digits, `-` and `_` (it appears in logs, metrics and route filters). */
export const entryPointName = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be 1 to 64 letters, digits, "-" or "_"');

/** A certificate and its key as file paths (relative ones from the configuration file's folder). */
export const certificatePair = section({
  certFile: z.string().min(1, 'expected the path of a PEM certificate (chain)'),
  keyFile: z.string().min(1, 'expected the path of a PEM private key'),
});

/**
 * Client certificates at a TLS entry point (Traefik's `clientAuth`, nginx's `ssl_verify_client`):
 * `require` refuses a connection without a certificate the CA bundle vouches for, `optional` asks
 * for one and lets the request pass, telling the upstream the result.
 */
const clientAuthSettings = section({
  caFile: z.string().min(1, 'expected the path of a PEM bundle of the CA certificates client certificates must chain to'),
  mode: z.enum(['require', 'optional']).optional(),
});

const tlsSettings = section({
  certificates: z.array(certificatePair).min(1, 'expected at least one { certFile, keyFile }'),
  defaultCertificate: certificatePair.optional(),
  // TLS 1.0 and 1.1 are deprecated (RFC 8996) and refused by OpenSSL 3's default security level anyway.
  minVersion: z.enum(['TLSv1.2', 'TLSv1.3']).optional(),
  ciphers: z.string().min(1, 'expected an OpenSSL cipher list such as "ECDHE+AESGCM:ECDHE+CHACHA20"').superRefine(cipherListIssue).optional(),
  clientAuth: clientAuthSettings.optional(),
});

/**
 * Refuses an OpenSSL cipher list that OpenSSL itself refuses (no cipher it knows, a bad rule), with
 * its reason: the list is tried on a context here, so a typo fails the load instead of the listener.
 */
function cipherListIssue(ciphers: string, context: z.RefinementCtx): void {
  try {
    createSecureContext({ ciphers });
  } catch (error) {
    context.addIssue({ code: 'custom', message: `OpenSSL refuses this cipher list (${errorMessage(error)})` });
  }
}

/** A PROXY protocol version sent to upstreams before the client's bytes (HAProxy's `send-proxy` / `send-proxy-v2`). */
export const proxyProtocolVersion = z.union([z.literal(1), z.literal(2)], { error: 'expected 1 (text) or 2 (binary)' });

const SNI_NAME = /^(?:\*\.)?[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*$/;

const entryPointFields = section({
  listen: listenAddress,
  protocol: z.enum(['http', 'https', 'tcp']).optional(),
  service: z.string().min(1).optional(),
  sni: z.record(z.string().regex(SNI_NAME, 'expected a DNS name or *.suffix'), z.string().min(1)).optional(),
  passthrough: z.boolean().optional(),
  proxyProtocol: proxyProtocolVersion.optional(),
  idleTimeout: duration.optional(),
  h2c: z.boolean().optional(),
  http2: z.boolean().optional(),
  tls: tlsSettings.optional(),
  middlewares: z.array(z.string().min(1)).optional(),
});

/** One `entryPoints` entry: an address, a protocol, and the options that fit that protocol. */
export const entryPointSchema = entryPointFields.superRefine((entryPoint, context) => {
  const problem = (path: string, message: string) => context.addIssue({ code: 'custom', path: [path], message });
  const https = entryPoint.protocol === 'https';
  if (entryPoint.protocol === 'tcp') return tcpIssues(entryPoint, problem);
  for (const key of ['service', 'sni', 'passthrough', 'proxyProtocol', 'idleTimeout'] as const) {
    if (entryPoint[key] !== undefined) problem(key, `${key} is for tcp entry points (add protocol: tcp)`);
  }
  if (https && entryPoint.tls === undefined) problem('tls', 'an https entry point needs tls: { certificates: [{ certFile, keyFile }] }');
  if (!https && entryPoint.tls !== undefined) problem('tls', 'tls belongs to https entry points (add protocol: https)');
  if (https && entryPoint.h2c !== undefined) problem('h2c', 'h2c is for http entry points; an https entry point offers HTTP/2 through ALPN (http2)');
  if (!https && entryPoint.http2 !== undefined) problem('http2', 'http2 is for https entry points; an http entry point takes h2c: true for HTTP/2 with prior knowledge');
});

/**
 * What a tcp entry point may and must set: a service, or an `sni` table (then the service is the
 * fallback), TLS terminated (`tls`) or passed through (`passthrough`) but not both, no HTTP options.
 */
function tcpIssues(entryPoint: z.output<typeof entryPointFields>, problem: (path: string, message: string) => void): void {
  const passthrough = entryPoint.passthrough === true;
  if (entryPoint.service === undefined && (entryPoint.sni === undefined || Object.keys(entryPoint.sni).length === 0)) problem('service', 'a tcp entry point forwards to one service: add service: <name> (or an sni table, with passthrough: true or tls)');
  if (passthrough && entryPoint.tls !== undefined) {
    problem('passthrough', 'passthrough forwards the TLS bytes to the instance, which holds the certificate, while tls terminates TLS at the gateway: keep one');
  }
  if (entryPoint.sni !== undefined && entryPoint.tls === undefined && !passthrough) {
    problem('sni', 'sni routing reads the TLS server name: add passthrough: true (the instances terminate TLS) or tls (the gateway terminates it)');
  }
  if (entryPoint.h2c !== undefined) problem('h2c', 'h2c is for http entry points; a tcp entry point forwards bytes');
  if (entryPoint.http2 !== undefined) problem('http2', 'http2 is for https entry points; a tcp entry point forwards bytes');
  if (entryPoint.middlewares !== undefined) problem('middlewares', 'middlewares act on HTTP requests; a tcp entry point forwards bytes');
}

/** The `entryPoints` section: at least one, by name. */
export const entryPointsSchema = z
  .record(entryPointName, entryPointSchema)
  .refine((entryPoints) => Object.keys(entryPoints).length > 0, 'expected at least one entry point');

/** One `entryPoints` entry as parsed. */
export type EntryPointInput = z.output<typeof entryPointSchema>;
