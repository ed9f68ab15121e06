import type { IncomingHttpHeaders } from 'node:http';
import { describe, expect, it } from 'vitest';
import { CLIENT_SUBJECT_HEADER, CLIENT_VERIFY_HEADER, setClientCertificateHeaders, stripClientCertificateHeaders } from './client-certificate.ts';

/** What a TLS socket tells of its peer: the parts `setClientCertificateHeaders` reads. */
function socketWith(subject: string | undefined, authorized: boolean, authorizationError?: string): object {
  return { getPeerX509Certificate: () => (subject === undefined ? undefined : { subject }), authorized, authorizationError };
}

describe('client-certificate headers', () => {
  it.each([
    ['a verified certificate', socketWith('C=FR\nO=Example\nCN=client.example.com', true), 'SUCCESS', 'C=FR,O=Example,CN=client.example.com'],
    ['a verified certificate whose values hold commas and non-ASCII', socketWith('O=Acme, Inc.\nCN=Zoë+1', true), 'SUCCESS', 'O=Acme\\, Inc.,CN=Zo%C3%AB\\+1'],
    ['no certificate', socketWith(undefined, false), 'NONE', undefined],
    ['a certificate that failed the check', socketWith('CN=stranger', false, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'), 'FAILED:UNABLE_TO_VERIFY_LEAF_SIGNATURE', undefined],
  ])('says what the check found for %s, and names only a verified subject', (_case, socket, verify, subject) => {
    const headers: IncomingHttpHeaders = { [CLIENT_SUBJECT_HEADER]: 'CN=forged' };
    stripClientCertificateHeaders(headers);
    setClientCertificateHeaders(headers, socket);
    expect([headers[CLIENT_VERIFY_HEADER], headers[CLIENT_SUBJECT_HEADER]]).toEqual([verify, subject]);
  });

  it('strips what a client sent in the headers the gateway sets', () => {
    const headers: IncomingHttpHeaders = { host: 'a', [CLIENT_VERIFY_HEADER]: 'SUCCESS', [CLIENT_SUBJECT_HEADER]: 'CN=admin' };
    stripClientCertificateHeaders(headers);
    expect(headers).toEqual({ host: 'a' });
  });
});
