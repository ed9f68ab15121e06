import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort, retryOnPortClash } from './ports.ts';
import { makeTempDir, ManagedProcess, readTail, removeTempDir } from './process.ts';
import { acceptsConnections } from './programs.ts';
import { waitFor } from './wait.ts';

/** Debian's haproxy (apt-get install haproxy). */
export const HAPROXY_BIN = '/usr/sbin/haproxy';

/** How HAProxy checks and retries, as the test states it (every value is in the generated haproxy.cfg). */
export interface HaproxyOptions {
  /** Health-check interval of each server (`inter`). */
  readonly checkIntervalMs: number;
  /** Failed checks before a server is marked down (`fall`). */
  readonly fall: number;
  /** Passed checks before it is up again (`rise`). */
  readonly rise: number;
  /** `retries`: connection attempts per request; with `option redispatch` the last ones go to another server. */
  readonly retries: number;
}

/** A running HAProxy in front of some gateways. */
export interface HaproxyProcess {
  readonly port: number;
  readonly url: string;
  readonly config: string;
  readonly process: ManagedProcess;
  /** Stops HAProxy (SIGTERM, SIGKILL after 5 s) and removes its directory. */
  close(): Promise<void>;
}

/** The haproxy.cfg of a round-robin HTTP frontend over `servers` (loopback ports), with active checks and redispatch. */
export function haproxyConfig(port: number, servers: readonly number[], options: HaproxyOptions): string {
  return `global
  maxconn 1000

defaults
  mode http
  timeout connect 1s
  timeout client 10s
  timeout server 10s
  timeout check 1s
  # A connection refused (the gateway is gone) or closed without an answer (an idle keep-alive
  # connection the gateway closed as it drained) is tried again; the last retry goes elsewhere.
  retries ${options.retries}
  option redispatch 1
  retry-on conn-failure empty-response

frontend gateways
  bind 127.0.0.1:${port}
  default_backend switchboard

backend switchboard
  balance roundrobin
  option httpchk GET /
  http-check expect status 200
${servers.map((server, index) => `  server gw${index + 1} 127.0.0.1:${server} check inter ${options.checkIntervalMs} fall ${options.fall} rise ${options.rise}`).join('\n')}
`;
}

/** Starts HAProxy (foreground, `-db`) over `servers` and waits until its frontend accepts connections. */
export function startHaproxy(servers: readonly number[], options: HaproxyOptions): Promise<HaproxyProcess> {
  return retryOnPortClash(async () => {
    const port = await freePort();
    const dir = await makeTempDir('sb-haproxy-');
    const config = haproxyConfig(port, servers, options);
    await writeFile(join(dir, 'haproxy.cfg'), config);
    const process = new ManagedProcess({ name: `haproxy:${port}`, command: HAPROXY_BIN, args: ['-db', '-f', join(dir, 'haproxy.cfg')], logFile: join(dir, 'haproxy.log'), cwd: dir });
    const close = async () => {
      await process.stop();
      await removeTempDir(dir);
    };
    process.start();
    try {
      const state = await waitFor(async () => (process.exitInfo !== undefined ? 'exited' : (await acceptsConnections(port)) && 'listening'), { timeoutMs: 10_000, message: `haproxy on port ${port} to listen` });
      if (state === 'exited') throw new Error(`haproxy exited at start-up\n${await readTail(process.logFile)}`);
    } catch (error) {
      await close();
      throw error;
    }
    return { port, url: `http://127.0.0.1:${port}`, config, process, close };
  });
}
