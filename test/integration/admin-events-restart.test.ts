// A client of /api/events that followed a gateway across a restart resumes with an id of the run
// before: it must be told to read the state again (`resync`), however many events the new run has
// issued meanwhile, never handed the new run's events after that number as if nothing was missed.
// So must one that followed another gateway behind the same admin address: every run numbers its
// events from a random id of its own.
import { afterEach, describe, expect, it } from 'vitest';
import { adminClient } from '../harness/admin-client.ts';
import { freePort, logOf, startGateway, waitFor, type GatewayProcess } from '../harness/index.ts';
import type { SseConnection } from '../harness/sse-client.ts';

const WITHIN_MS = 10_000;

function configText(backendPort: number, extraServices = 0): string {
  const extra = Array.from({ length: extraServices }, (_, index) => `  extra-${index}: { instances: ["127.0.0.1:${backendPort + 1 + index}"] }`);
  return [
    'listen: 127.0.0.1:{{port}}',
    'admin: 127.0.0.1:{{adminPort}}',
    'accessLog: false',
    'services:',
    `  user: { instances: ["127.0.0.1:${backendPort}"] }`,
    ...extra,
    'routes:',
    '  - { path: /, service: user }',
    '',
  ].join('\n');
}

/** The ids the admin listener has buffered in this run, oldest first (a replay from 0), once there are more than `atLeast`. */
async function bufferedIds(adminUrl: string, atLeast = 0): Promise<number[]> {
  const admin = adminClient(adminUrl);
  return waitFor(
    async () => {
      const stream = await admin.events('0');
      try {
        // The replay is written at once on connecting; the event after the last one it had waits for a change.
        await waitFor(() => stream.messages.length > atLeast || undefined, { timeoutMs: 1_000, message: 'the replay' }).catch(() => undefined);
        const ids = stream.messages.map((message) => Number(message.id));
        return ids.length > atLeast ? ids : undefined;
      } finally {
        stream.close();
      }
    },
    { timeoutMs: WITHIN_MS, message: `more than ${atLeast} buffered events` },
  );
}

describe('admin event ids across a gateway restart', () => {
  let gateway: GatewayProcess | undefined;
  let stream: SseConnection | undefined;

  afterEach(async () => {
    stream?.close();
    await gateway?.process.stop();
  });

  it('sends resync to a client resuming from an id of the run before, even once the new run has issued more events than that one', async () => {
    const backendPort = await freePort();

    gateway = await startGateway(configText(backendPort));
    const firstRun = await bufferedIds(`http://127.0.0.1:${gateway.adminPort}`);
    const lastOfFirstRun = firstRun.at(-1)!;
    await gateway.process.stop();

    // Back on its admin port; should another process have taken it meanwhile, the harness moves it to a
    // fresh one, and the client follows it there: what it is told depends on the id it resumes from.
    gateway = await startGateway(configText(backendPort), {}, { firstPorts: { adminPort: gateway.adminPort } });
    const adminUrl = `http://127.0.0.1:${gateway.adminPort}`;
    // More events in this run than in the one before: with ids counted from 1 in each run, the new
    // run would have issued the old client's id too, and replayed only what came after it.
    await gateway.writeConfig(configText(backendPort, firstRun.length + 1));
    const secondRun = await bufferedIds(adminUrl, firstRun.length + 1).catch(async (error: Error) => {
      throw new Error(`${error.message}\n${await logOf(gateway!.process)}`);
    });

    stream = await adminClient(adminUrl).events(String(lastOfFirstRun));
    // A partial replay never gets this far: what arrived is then asserted below.
    await waitFor(() => stream!.messages.length > secondRun.length || undefined, { timeoutMs: WITHIN_MS, message: 'the resync and the replay' }).catch(() => undefined);
    const [resync, ...replayed] = stream.messages;
    expect(resync).toMatchObject({ event: 'resync', id: '' });
    expect(JSON.parse(resync!.data)).toMatchObject({ type: 'resync', data: { lastEventId: lastOfFirstRun, oldestId: secondRun[0] } });
    expect(replayed.slice(0, secondRun.length).map((message) => Number(message.id))).toEqual(secondRun);
  }, 60_000);
});

describe('admin event ids across two gateways behind one admin address', () => {
  const gateways: GatewayProcess[] = [];
  let stream: SseConnection | undefined;

  afterEach(async () => {
    stream?.close();
    await Promise.all(gateways.splice(0).map((running) => running.process.stop()));
  });

  it('sends resync and all it holds to a client resuming on one gateway from an id the other issued, and the two issue no id in common', async () => {
    const backendPort = await freePort();
    const [gatewayA, gatewayB] = await Promise.all([startGateway(configText(backendPort)), startGateway(configText(backendPort))]);
    gateways.push(gatewayA, gatewayB);
    const [urlA, urlB] = [`http://127.0.0.1:${gatewayA.adminPort}`, `http://127.0.0.1:${gatewayB.adminPort}`];
    const [idsA, idsB] = await Promise.all([bufferedIds(urlA), bufferedIds(urlB)]);
    expect(idsB.filter((id) => id >= idsA[0]! && id <= idsA.at(-1)!)).toEqual([]);
    expect(idsA.filter((id) => id >= idsB[0]! && id <= idsB.at(-1)!)).toEqual([]);

    // A client that followed gateway A reconnects, and the admin address sends it to gateway B.
    const lastOfA = idsA.at(-1)!;
    stream = await adminClient(urlB).events(String(lastOfA));
    await waitFor(() => stream!.messages.length > idsB.length || undefined, { timeoutMs: WITHIN_MS, message: 'the resync and the replay' }).catch(() => undefined);
    const [resync, ...replayed] = stream.messages;
    expect(resync).toMatchObject({ event: 'resync', id: '' });
    expect(JSON.parse(resync!.data)).toMatchObject({ type: 'resync', data: { lastEventId: lastOfA, oldestId: idsB[0] } });
    expect(replayed.slice(0, idsB.length).map((message) => Number(message.id))).toEqual(idsB);
  }, 60_000);
});
