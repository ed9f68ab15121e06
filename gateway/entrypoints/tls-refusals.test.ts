import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { metricsRegistry } from '../../src/metrics.ts';
import { recordTlsRefusal, TLS_REFUSAL_WARN_EVERY_MS, tlsFailureOf } from './tls-refusals.ts';

const failure = (code: string | undefined) => Object.assign(new Error('handshake failed'), { code });

describe('tlsFailureOf', () => {
  it.each([
    ['a client that sent no certificate', failure('ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE'), null, { reason: 'client-certificate', code: 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE' }],
    ['a certificate that failed verification (Node destroys the socket: a reset)', failure('ECONNRESET'), 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', { reason: 'client-certificate', code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' }],
    ['a client that rejected the gateway certificate', failure('ERR_SSL_TLSV1_ALERT_UNKNOWN_CA'), null, { reason: 'handshake', code: 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA' }],
    ['an error without a code', failure(undefined), null, { reason: 'handshake', code: undefined }],
  ])('classifies %s', (_case, error, authorizationError, expected) => {
    expect(tlsFailureOf(error, { authorizationError: authorizationError as unknown as Error })).toEqual(expected);
  });
});

describe('recordTlsRefusal', () => {
  it('counts every refusal and warns once per entry point and reason per period, the rest at debug', async () => {
    const lines: Array<{ level: number; reason: string; entryPoint: string }> = [];
    const log = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as (typeof lines)[number]) });
    const count = async (entryPoint: string, reason: string) =>
      (await metricsRegistry.getSingleMetric('switchboard_tls_handshake_failures_total')!.get()).values.find((value) => value.labels.entry_point === entryPoint && value.labels.reason === reason)?.value ?? 0;
    const socket = { remoteAddress: '192.0.2.7' };
    // Entry point names of this run alone: the counters and the warning limit are the process's (isolate: false, watch mode).
    const [web, other] = [`unit-web-${process.hrtime.bigint()}`, `unit-other-${process.hrtime.bigint()}`];
    const counts = () => Promise.all([count(web, 'plain-http'), count(web, 'client-certificate'), count(other, 'plain-http')]);
    const before = await counts();
    const start = 1_000_000;
    for (const at of [start, start + 1, start + 2]) recordTlsRefusal(log, web, 'plain-http', undefined, socket, at);
    recordTlsRefusal(log, web, 'client-certificate', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', socket, start + 3);
    recordTlsRefusal(log, other, 'plain-http', undefined, socket, start + 4);
    recordTlsRefusal(log, web, 'plain-http', undefined, socket, start + TLS_REFUSAL_WARN_EVERY_MS);
    const after = await counts();
    expect(after.map((value, index) => value - before[index]!)).toEqual([4, 1, 1]);
    const warnings = lines.filter((line) => line.level === 40).map((line) => `${line.entryPoint} ${line.reason}`);
    expect(warnings).toEqual([`${web} plain-http`, `${web} client-certificate`, `${other} plain-http`, `${web} plain-http`]);
    expect(lines.filter((line) => line.level === 20)).toHaveLength(2);
  });
});
