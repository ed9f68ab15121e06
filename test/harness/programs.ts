import { spawn } from 'node:child_process';
import { appendFile, readFile, rename, writeFile } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeTempDir, ManagedProcess, readTail } from './process.ts';
import { freePort, retryOnPortClash } from './ports.ts';
import { descendantsOf, killStillRunning, stillRunning } from './process-tree.ts';
import { waitFor } from './wait.ts';

/** The repository root, where the program bins live. */
export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BACKEND_SCRIPT = join(REPO_ROOT, 'test/fixtures/backend.mjs');
const AGENT_BIN = join(REPO_ROOT, 'bin/switchboard-agent.js');

/** A real test backend process (test/fixtures/backend.mjs) on a loopback port. */
export interface BackendProcess {
  readonly port: number;
  readonly process: ManagedProcess;
}

/** True when a TCP connection to 127.0.0.1:`port` is accepted right now. */
export function acceptsConnections(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolvePromise) => {
    const socket = createConnection({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolvePromise(true);
    });
    socket.once('error', () => resolvePromise(false));
  });
}

/**
 * Starts a backend on a free port (or `port`) and waits until it says it listens. Without `port`, a
 * clash with a program of the other test worker that bound the free port first starts it again on a
 * fresh one; a listener of that program on the port is not taken for the backend.
 */
export function startBackend(options: { port?: number; name?: string; delayMs?: number } = {}): Promise<BackendProcess> {
  return options.port === undefined ? retryOnPortClash(async () => startBackendOnce(await freePort(), options)) : startBackendOnce(options.port, options);
}

async function startBackendOnce(port: number, options: { name?: string; delayMs?: number }): Promise<BackendProcess> {
  const dir = await makeTempDir('sb-backend-');
  const process = new ManagedProcess({
    name: `backend:${port}`,
    command: globalThis.process.execPath,
    args: [BACKEND_SCRIPT, '--port', String(port), ...(options.name ? ['--name', options.name] : []), '--delay-ms', String(options.delayMs ?? 0)],
    logFile: join(dir, 'backend.log'),
  });
  process.start();
  // test/fixtures/backend.mjs prints "listening <port>" once bound, and exits on EADDRINUSE.
  const state = await waitFor(async () => (process.exitInfo !== undefined ? 'exited' : (await readFile(process.logFile, 'utf8')).includes(`listening ${port}\n`) && 'listening'), {
    timeoutMs: 10_000,
    message: `backend on port ${port} to listen`,
  }).catch(async (error: Error) => {
    await process.stop();
    throw error;
  });
  if (state === 'exited') throw new Error(`the backend on port ${port} exited before it listened\n${await readTail(process.logFile)}`);
  return { port, process };
}

const PROTOCOL_BACKEND_SCRIPT = join(REPO_ROOT, 'test/fixtures/backend-protocols.mjs');

/**
 * Starts test/fixtures/backend-protocols.mjs: a backend that speaks only `mode` (h2c without
 * HTTP/1.1, h2 over TLS without HTTP/1.1, or https) and answers what it received; waits until it accepts connections.
 * With `clientCaFile` it requires a client certificate that CA signed (mutual TLS).
 */
export async function startProtocolBackend(options: { mode: 'h2c' | 'h2' | 'https'; name: string; certFile?: string; keyFile?: string; clientCaFile?: string }): Promise<BackendProcess> {
  const port = await freePort();
  const dir = await makeTempDir('sb-backend-');
  const tls = options.certFile && options.keyFile ? ['--cert', options.certFile, '--key', options.keyFile, ...(options.clientCaFile ? ['--client-ca', options.clientCaFile] : [])] : [];
  const process = new ManagedProcess({
    name: `backend:${options.mode}:${port}`,
    command: globalThis.process.execPath,
    args: [PROTOCOL_BACKEND_SCRIPT, '--mode', options.mode, '--port', String(port), '--name', options.name, ...tls],
    logFile: join(dir, 'backend.log'),
  });
  process.start();
  await waitFor(() => acceptsConnections(port), { timeoutMs: 10_000, message: `${options.mode} backend on port ${port} to listen` });
  return { port, process };
}

/** The command line that starts a backend, for `switchboard-agent … -- <command>`. */
export function backendCommand(port: number, name?: string): string[] {
  return [globalThis.process.execPath, BACKEND_SCRIPT, '--port', String(port), ...(name ? ['--name', name] : [])];
}

/** Starts `switchboard-agent` with `args` as a real process; its log is in `process.logFile`. */
export async function startAgent(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<ManagedProcess> {
  const dir = await makeTempDir('sb-agent-');
  const agent = new ManagedProcess({
    name: `agent:${args.join(' ').slice(0, 60)}`,
    command: globalThis.process.execPath,
    args: [AGENT_BIN, ...args],
    logFile: join(dir, 'agent.log'),
    env: { ...globalThis.process.env, SWITCHBOARD_LOG_LEVEL: 'debug', ...env },
    cwd: REPO_ROOT,
  });
  agent.start();
  return agent;
}

/** `text` as it appears inside a JSON log line (quotes and backslashes escaped). */
export function asLogged(text: string): string {
  return JSON.stringify(text).slice(1, -1);
}

/** The log of a managed process, for assertion messages. */
export function logOf(process: ManagedProcess): Promise<string> {
  return readTail(process.logFile);
}

/** A line of a program's JSON log: its level (pino's number: 20 debug, 30 info, 40 warn), message and other fields. */
export interface JsonLogLine {
  readonly level: number;
  readonly msg: string;
  readonly component?: string;
  readonly [field: string]: unknown;
}

/** How many bytes `process` has logged: where a window of its log that `jsonLogLinesFrom` reads begins. */
export async function logSize(process: ManagedProcess): Promise<number> {
  return (await readFile(process.logFile)).length;
}

/** The JSON lines `process` has logged from byte `from` of its log on (the harness's own lines left out). */
export async function jsonLogLinesFrom(process: ManagedProcess, from = 0): Promise<JsonLogLine[]> {
  const text = (await readFile(process.logFile)).subarray(from).toString('utf8');
  return text
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as JsonLogLine);
}

/**
 * The access-log line `process` wrote for the request to `path` (its exact path), parsed, once it is
 * in the log: the first with that path followed by a status, as an access line (or the line of an
 * answer its listener gave in the request's place) has it, so no other line naming the path is taken.
 */
export async function accessLineOf(process: ManagedProcess, path: string, options: { timeoutMs?: number } = {}): Promise<Record<string, unknown>> {
  const field = `"path":${JSON.stringify(path)},"status":`;
  const line = await waitFor(async () => (await readFile(process.logFile, 'utf8')).split('\n').find((text) => text.includes(field)), {
    ...options,
    message: `the access line of ${path}`,
  });
  return JSON.parse(line) as Record<string, unknown>;
}

const GATEWAY_BIN = join(REPO_ROOT, 'bin/switchboard.js');

/** A real `switchboard` process with its configuration file, which tests may rewrite. */
export interface GatewayProcess {
  readonly port: number;
  readonly url: string;
  /** The port that stood for `{{adminPort}}` in the configuration. */
  readonly adminPort: number;
  /** The port that stood for each `{{port:<name>}}` in the configuration (a second entry point's), by name. */
  readonly ports: Readonly<Record<string, number>>;
  readonly configPath: string;
  readonly process: ManagedProcess;
  /** Replaces the configuration file the way editors do (write a temporary file, rename it over); `{{port}}`, `{{adminPort}}` and `{{port:<name>}}` keep their ports. */
  writeConfig(text: string): Promise<void>;
}

/**
 * The ports the first attempt takes instead of free ones: to force a clash in a test of the harness, or to
 * start a gateway again on the ports it had (a clash there moves it to fresh ones, as for any start).
 */
export interface GatewayStartOptions {
  readonly firstPorts?: { readonly port?: number; readonly adminPort?: number; readonly ports?: Readonly<Record<string, number>> };
  /** The gateway's bin, `bin/switchboard.js` of this checkout by default (another: the one of a packed package). */
  readonly bin?: string;
  /** How long to wait for it to listen, 30 s by default: more for one with workers on a loaded machine. */
  readonly listenTimeoutMs?: number;
}

/**
 * `config` with `admin: false` added when it names no admin listener: the default one is the fixed
 * port 127.0.0.1:9180, which two gateways of files running at once (or a gateway outside the tests)
 * cannot both have.
 */
function withoutFixedAdmin(config: string): string {
  return /^admin:/m.test(config) ? config : `${config.trimEnd()}\nadmin: false\n`;
}

/** What the gateway logs once all its listeners (admin included) are bound. */
const LISTENING_LINE = '"msg":"gateway listening"';

/**
 * Starts `switchboard --config <file>` with `config` (YAML) where `{{port}}`, `{{adminPort}}` and each
 * `{{port:<name>}}` (another entry point's listener: `gateway.ports[name]`) stand for free ports, and waits until the gateway says it listens and its listener accepts connections.
 * A port is only free when it is looked up: a program of the other test worker may bind it before the
 * gateway does. Then the gateway exits with EADDRINUSE and it is started again on fresh ports; and a
 * listener that answers on the port is not taken for the gateway until the gateway's own log says it listens.
 */
export async function startGateway(config: string, env: NodeJS.ProcessEnv = {}, options: GatewayStartOptions = {}): Promise<GatewayProcess> {
  // What each failed attempt said, so that a retry is never silent: a clash that comes back on every
  // start (the gateway binding one of its own ports twice) shows in logOf() and in the failure. Kept out
  // of the next attempt's own log until it listens, where it would read as that attempt's clash.
  const failures: string[] = [];
  try {
    const gateway = await retryOnPortClash(async () => {
      const first = failures.length === 0 ? options.firstPorts : undefined;
      try {
        return await startGatewayOnce(config, env, first?.port ?? (await freePort()), first?.adminPort ?? (await freePort()), first?.ports, options.bin, options.listenTimeoutMs);
      } catch (error) {
        failures.push((error as Error).message);
        throw error;
      }
    });
    if (failures.length > 0) await appendFile(gateway.process.logFile, earlierAttempts(failures));
    return gateway;
  } catch (error) {
    // The last failure is this error itself.
    if (failures.length > 1) (error as Error).message += `\n${earlierAttempts(failures.slice(0, -1))}`;
    throw error;
  }
}

function earlierAttempts(failures: readonly string[]): string {
  return failures.map((message, index) => `=== harness: attempt ${index + 1} met a port clash and the gateway was started again on fresh ports:\n${message}\n`).join('');
}

/** `{{port:<name>}}`: a free port for a listener of the gateway's besides `{{port}}` and `{{adminPort}}`. */
const NAMED_PORT = /\{\{port:([\w-]+)\}\}/g;

async function startGatewayOnce(config: string, env: NodeJS.ProcessEnv, port: number, adminPort: number, firstNamed: Readonly<Record<string, number>> = {}, bin = GATEWAY_BIN, listenTimeoutMs = 30_000): Promise<GatewayProcess> {
  const ports: Record<string, number> = { ...firstNamed };
  for (const [, name] of config.matchAll(NAMED_PORT)) ports[name!] ??= await freePort();
  const dir = await makeTempDir('sb-gateway-');
  const configPath = join(dir, 'gateway.yaml');
  const writeConfig = async (text: string) => {
    const temporary = join(dir, `.gateway-${Date.now()}.yaml`);
    const named = withoutFixedAdmin(text).replace(NAMED_PORT, (placeholder, name: string) => (ports[name] === undefined ? placeholder : String(ports[name])));
    await writeFile(temporary, named.replaceAll('{{port}}', String(port)).replaceAll('{{adminPort}}', String(adminPort)));
    await rename(temporary, configPath);
  };
  await writeConfig(config);
  const gateway = new ManagedProcess({
    name: `gateway:${port}`,
    command: globalThis.process.execPath,
    args: [bin, '--config', configPath],
    logFile: join(dir, 'gateway.log'),
    env: { ...globalThis.process.env, SWITCHBOARD_LOG_LEVEL: 'debug', ...env },
    cwd: REPO_ROOT,
  });
  gateway.start();
  // A gateway that exits at start-up (a refused config, a port taken) ends the wait at once, not at the deadline.
  // Some 300 ms on a quiet machine; the bound is for a CI machine that other work (and the other test worker) loads.
  // The whole log: at debug level the line may already have scrolled out of a tail.
  const state = await waitFor(async () => {
    if (gateway.exitInfo !== undefined) return 'exited';
    return (await readFile(gateway.logFile, 'utf8')).includes(LISTENING_LINE) && (await acceptsConnections(port)) && 'listening';
  }, {
    timeoutMs: listenTimeoutMs,
    message: `the gateway on port ${port} to listen`,
  }).catch(async (error: Error) => {
    // Nobody else holds it to stop it: left running, it would fail the file as a leftover besides.
    await gateway.stop();
    throw new Error(`${error.message}\n${await readTail(gateway.logFile)}`);
  });
  if (state === 'exited') throw new Error(`the gateway on port ${port} exited before it listened\n${await readTail(gateway.logFile)}`);
  return { port, url: `http://127.0.0.1:${port}`, adminPort, ports, configPath, process: gateway, writeConfig };
}

/** A test backend started by its own `switchboard-agent`, which registers it. */
export interface AgentBackend {
  readonly agent: ManagedProcess;
  /** The backend's port (also its registered port). */
  readonly port: number;
}

/**
 * Starts `switchboard-agent --registry <registry> --service <service> --id <id> --weight <weight>
 * <flags…> -- <backend on a free port named id>`: the backend runs as the agent's child.
 */
export async function startAgentBackend(options: { registry: string; service: string; id: string; weight: number; flags: readonly string[] }): Promise<AgentBackend> {
  const port = await freePort();
  const agent = await startAgent([
    '--registry', options.registry, '--service', options.service, '--port', String(port), '--id', options.id,
    '--weight', String(options.weight), ...options.flags, '--', ...backendCommand(port, options.id),
  ]);
  return { agent, port };
}

/** What a finished run of the gateway's command line printed and how it exited. */
export interface CommandResult {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `bin/switchboard.js <args>` (a subcommand such as `check` or `config`) to its end, bounded by 60 s. */
export function runSwitchboard(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(REPO_ROOT, 'bin/switchboard.js'), ...args], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000, env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('error', reject);
    child.once('close', (status) => resolve({ status, stdout, stderr }));
  });
}

/** A program that `startOnTerminal` runs on a pseudo-terminal of its own, and that terminal. */
export interface TerminalProgram {
  /** The program itself (not `script`), as its ready line names it. */
  readonly pid: number;
  /** Everything written to the terminal so far (and `script`'s own stderr and exit). */
  output(): string;
  /** Whether the program still runs (a zombie or a reused pid counts as gone). */
  running(): boolean;
  /** Ends `script`, so the kernel hangs the terminal up: the program, its controlling process, gets SIGHUP and its writes there fail. */
  hangUp(): void;
  /** A test's cleanup: SIGKILLs the program if it still runs, and `script`. */
  kill(): void;
}

/**
 * Runs `node bin args…` (a bin of this repository) under script(1), so its output is a terminal as
 * from a shell, and waits until it logs `readyMessage` (at level info). The program is the terminal's
 * controlling process: a hangup of the terminal signals it, not `script`.
 */
export async function startOnTerminal(bin: string, args: readonly string[], readyMessage: string): Promise<TerminalProgram> {
  const terminal = spawn('script', ['-qfec', `exec ${process.execPath} ${bin} ${args.join(' ')}`, '/dev/null'], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, SWITCHBOARD_LOG_LEVEL: 'info' },
  });
  let output = '';
  terminal.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  terminal.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += `stderr: ${chunk}`));
  terminal.on('exit', (code, signal) => (output += `exit ${code} ${signal}`));
  const pattern = new RegExp(`"pid":(\\d+)[^\\n]*"msg":"${readyMessage}"`);
  const ready = await waitFor(() => pattern.exec(output) ?? Promise.reject(new Error(`its output so far: ${output.slice(-2_000)}`)), {
    timeoutMs: 30_000,
    message: `${bin} on a terminal to log "${readyMessage}"`,
  }).catch((error: Error) => {
    terminal.kill('SIGKILL');
    throw error;
  });
  const pid = Number(ready[1]);
  const [record] = descendantsOf(terminal.pid!).filter((child) => child.pid === pid);
  if (record === undefined) {
    terminal.kill('SIGKILL');
    throw new Error(`${bin} (pid ${pid}) is not a child of script (pid ${terminal.pid})\n${output.slice(-2_000)}`);
  }
  return {
    pid,
    output: () => output,
    running: () => stillRunning([record]).length > 0,
    hangUp: () => terminal.kill('SIGKILL'),
    kill: () => {
      killStillRunning([record]);
      terminal.kill('SIGKILL');
    },
  };
}
