import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTestCa,
  logOf,
  makeCertificate,
  makeTempDir,
  readFrom,
  startGateway,
  startProtocolBackend,
  waitFor,
  type BackendProcess,
  type GatewayProcess,
  type TestCa,
} from '../harness/index.ts';

/** One GET on a connection of its own (no keep-alive), so that successive ones go to each worker in turn. */
function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = httpRequest({ host: '127.0.0.1', port, path, agent: false, headers: { connection: 'close' }, signal: AbortSignal.timeout(10_000) }, (response) => {
      let body = '';
      response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
      response.on('error', reject);
    });
    request.on('error', reject);
    request.end();
  });
}

/** The name of the client certificate the backend saw on each of `count` requests, or the gateway's error class. */
async function seen(port: number, count = 6): Promise<string[]> {
  const answers: string[] = [];
  for (let index = 0; index < count; index += 1) {
    const answer = await get(port, '/mutual/who');
    const body = JSON.parse(answer.body) as { clientCertificate?: string; error?: string };
    answers.push(answer.status === 200 ? String(body.clientCertificate) : `${answer.status} ${body.error}`);
  }
  return answers;
}

/** The JSON lines of the gateway's log (primary and workers) written past byte `offset`. */
async function linesFrom(gateway: GatewayProcess, offset: number): Promise<{ msg?: string; code?: string; reason?: string; files?: string[] }[]> {
  return (await readFrom(gateway.process.logFile, offset)).split('\n').flatMap((line) => {
    try {
      return [JSON.parse(line) as { msg?: string }];
    } catch {
      return [];
    }
  });
}

const READ_AGAIN = 'a file the configuration names has changed: the configuration is read again with it and applied (its text is unchanged)';
const REFUSED_WITH_FILE = 'a file the running configuration names has changed and the configuration is refused with it';

describe.each([1, 2])("an upstream client certificate renewed on disk is sent with no edit of the configuration (workers: %i)", (workers) => {
  let dir: string;
  let serverCa: TestCa;
  let newClientCa: TestCa;
  let backend: BackendProcess;
  let gateway: GatewayProcess;
  const client = { certFile: '', keyFile: '' };

  beforeAll(async () => {
    dir = await makeTempDir('sb-upstream-renewal-');
    await Promise.all(['server-ca', 'client-ca', 'stray'].map((folder) => mkdir(join(dir, folder))));
    [serverCa, newClientCa] = await Promise.all([createTestCa(join(dir, 'server-ca')), createTestCa(join(dir, 'client-ca'))]);
    const [served, old] = await Promise.all([serverCa.issue('backend', 'backend.test'), serverCa.issue('gateway-old', 'gateway-old.test', { clientAuth: true })]);
    client.certFile = old.certFile;
    client.keyFile = old.keyFile;
    // The backend trusts both client CAs and answers with the name on the certificate it was sent.
    const clientCas = join(dir, 'client-cas.pem');
    await writeFile(clientCas, (await readFile(serverCa.caFile, 'utf8')) + (await readFile(newClientCa.caFile, 'utf8')));
    backend = await startProtocolBackend({ mode: 'https', name: 'mutual-1', ...served, clientCaFile: clientCas });
    gateway = await startGateway(`
listen: 127.0.0.1:{{port}}
${workers > 1 ? 'workers: { count: 2, heartbeatTimeout: 60s }' : ''}
accessLog: false
defaults:
  tls: { caFile: ${serverCa.caFile}, serverName: backend.test }
services:
  mutual:
    instances: [{ host: 127.0.0.1, port: ${backend.port}, protocol: https }]
    tls: { certFile: ${client.certFile}, keyFile: ${client.keyFile} }
    healthCheck: false
    outlierDetection: false
    retries: false
routes:
  - { path: /mutual, service: mutual, stripPrefix: true }
`);
  }, 60_000);

  afterAll(async () => {
    await gateway?.process.stop();
    await backend?.process.kill();
  });

  it('sends the renewed pair written one file at a time, and keeps it when a broken one replaces it', async () => {
    const configText = await readFile(gateway.configPath, 'utf8');
    expect(await seen(gateway.port)).toEqual(Array(6).fill('gateway-old.test'));

    // Renewed by the new CA: the certificate first, its key next, each replaced by rename.
    let offset = (await stat(gateway.process.logFile)).size;
    const renewed = await newClientCa.issue('gateway-new', 'gateway-new.test', { clientAuth: true });
    await rename(renewed.certFile, client.certFile);
    await rename(renewed.keyFile, client.keyFile);
    await waitFor(async () => (await seen(gateway.port)).every((name) => name === 'gateway-new.test'), { timeoutMs: 15_000, message: `the renewed certificate sent by every worker:\n${await logOf(gateway.process)}` });
    expect((await linesFrom(gateway, offset)).filter((line) => line.msg === READ_AGAIN).length).toBeGreaterThanOrEqual(1);

    // A broken replacement (the key of another pair): refused with the path and the reason, the renewed pair keeps serving.
    offset = (await stat(gateway.process.logFile)).size;
    const stray = await makeCertificate(join(dir, 'stray'), 'stray', { key: 'ec', names: ['stray.test'] });
    await rename(stray.keyFile, client.keyFile);
    await waitFor(async () => (await linesFrom(gateway, offset)).some((line) => line.msg?.startsWith(REFUSED_WITH_FILE)), { timeoutMs: 15_000, message: `the broken pair refused:\n${await logOf(gateway.process)}` });
    const refusal = (await linesFrom(gateway, offset)).find((line) => line.msg?.startsWith(REFUSED_WITH_FILE))!;
    expect(refusal.reason).toContain('services.mutual.tls');
    expect(refusal.files).toContain(client.keyFile);
    expect(await seen(gateway.port)).toEqual(Array(6).fill('gateway-new.test'));
    // All of it with the configuration file as it was written.
    expect(await readFile(gateway.configPath, 'utf8')).toBe(configText);
  });
});
