import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';
import { constants } from 'node:os';
import { hangupIsRequest } from '../src/hangup.ts';
import { componentLogger, usePrettyLogs } from '../src/logger.ts';
import { Agent } from './agent.ts';
import { AgentUsageError, parseAgentArgs, type AgentOptions } from './cli.ts';
import { unknownAgentVariables } from './environment.ts';
import { AGENT_HELP } from './help.ts';
import type { RegistrationState } from '../src/registration/registration.ts';

/** How long a child may take to exit after the forwarded signal before it is killed. */
const CHILD_STOP_TIMEOUT_MS = 10_000;

/** Signals the agent passes on to the backend it runs (and otherwise ignores), besides SIGHUP. */
const PASSED_SIGNALS = ['SIGUSR1', 'SIGUSR2'] as const;

const log = componentLogger('agent-main');

let options: AgentOptions;
try {
  options = parseAgentArgs(process.argv.slice(2));
} catch (error) {
  if (!(error instanceof AgentUsageError)) throw error;
  process.stderr.write(`switchboard-agent: ${error.message}\n`);
  process.exit(2);
}
if (options.help) {
  process.stdout.write(AGENT_HELP);
  process.exit(0);
}
if (options.pretty) usePrettyLogs();
// A misspelt variable would otherwise leave its setting at the default unseen.
for (const { name, meant } of unknownAgentVariables(process.env)) {
  log.warn({ variable: name, ...(meant === undefined ? {} : { meant }) }, `${name} is no agent setting and is ignored${meant === undefined ? '' : ` (did you mean ${meant}?)`}`);
}

const agent = new Agent(options);
let child: ChildProcess | undefined;
/** The backend's exit status once it exited, whenever that was (during the drain included). */
let childStatus: number | undefined;
let shuttingDown = false;
/** Cuts the drain short when the backend exits during it: nothing is left to drain. */
const drainCut = new AbortController();
/** True while the agent waits `--drain`. */
let draining = false;

// The handlers are in place before the backend is spawned: a SIGTERM that came between the spawn and
// them (a service manager stopping the agent as it starts) took Node's default and ended the agent at
// once, leaving the backend running unregistered, its port held. A signal is handled once this module's
// synchronous code has run, so the backend and the agent are both started by then.
process.on('SIGTERM', () => void shutdown('SIGTERM'));
// A second Ctrl-C is someone at a terminal who will not wait --drain: the wait is cut short, and the
// agent deregisters and stops the backend at once, still in that order (a second SIGTERM changes nothing).
process.on('SIGINT', () => {
  if (shuttingDown && !drainCut.signal.aborted) {
    log.warn({ signal: 'SIGINT' }, 'a second SIGINT: deregistering now, without waiting --drain');
    drainCut.abort();
  }
  void shutdown('SIGINT');
});
// Node's default would end the agent on SIGHUP (a closed terminal, a signal to the process group)
// and leave its entry to expire. It has no file to read again: the backend it runs gets the signal
// (which may reload on it); without one, it is ignored.
// Its output a terminal, a SIGHUP is that terminal hanging up (src/hangup.ts): the agent ends, but as
// on SIGTERM (drain, deregister, stop the backend), not by Node's default, which would leave its entry
// for gateways to send to until the lease or session expires.
if (hangupIsRequest()) {
  process.on('SIGHUP', () => {
    log.info({ signal: 'SIGHUP', backend: child !== undefined }, child === undefined ? 'SIGHUP ignored' : 'SIGHUP passed to the backend');
    child?.kill('SIGHUP');
  });
} else {
  process.on('SIGHUP', () => void shutdown('SIGHUP'));
}

// SIGUSR1 and SIGUSR2 ask a backend for something of its own (reopen its logs after a rotation, dump
// its state): passed to the backend the agent runs, ignored without one. Node's defaults would start
// the agent's inspector on SIGUSR1, and end it on SIGUSR2 with no drain, its backend left running
// unregistered once its entry expires.
for (const signal of PASSED_SIGNALS) {
  process.on(signal, () => {
    log.info({ signal, backend: child !== undefined }, child === undefined ? `${signal} ignored` : `${signal} passed to the backend`);
    child?.kill(signal);
  });
}

if (options.command.length > 0) {
  const [command, ...args] = options.command as [string, ...string[]];
  child = spawn(command, args, { stdio: 'inherit' });
  child.on('error', (error) => {
    log.error({ err: error.message, command }, 'backend could not be started');
    void shutdown(undefined, 127);
  });
  child.on('exit', (code, signal) => {
    // A negative code is libuv's error for a child that never started ('error' above answers 127).
    if (code === null || code >= 0) childStatus = exitStatus(code, signal);
    if (shuttingDown) {
      if (draining) log.warn({ code, signal }, 'backend exited during the drain; deregistering now');
      drainCut.abort();
      return;
    }
    log.warn({ code, signal }, 'backend exited; deregistering');
    void shutdown(undefined, exitStatus(code, signal));
  });
}
agent.start();
log.info({ service: options.service, id: options.id, registry: options.registryUrl }, 'agent started');

/**
 * The drain handshake: on a signal, marks the entry draining (gateways stop picking it within
 * their watch latency), waits `--drain` so they do and the requests they sent finish, deletes the
 * entry, then stops the backend with the signal the agent received and exits with its status.
 * After a deletion the registry did not confirm (the entry may still be there), the retried
 * deletion takes the mark's place: `--drain` counts from its confirmation, when gateways stop
 * sending. Marking (or that wait) and deleting share the `--ttl` bound (the lease's TTL: an etcd lease
 * rounds `--ttl` up to whole seconds), so a registry that is down costs at most that.
 * Without a signal (the backend exited), with `--drain 0` or with no entry registered (the backend
 * never passed its probe, or failed it since; or no write of the entry ever reached the registry,
 * which was down all along) it deletes the entry at once, if any; a backend that exits during the
 * drain cuts it short. The agent exits with the backend's status.
 */
async function shutdown(signal: NodeJS.Signals | undefined, status = 0): Promise<void> {
  if (shuttingDown) return;
  shuttingDown = true;
  // The entry's life in the registry, not `--ttl` as given: an etcd lease is rounded up to whole seconds, a ZooKeeper session clamped by its server.
  const ttlMs = agent.registration.entryTtlMs;
  // No entry (never registered, removed after `--fall` failures with the registry's confirmation, or
  // never written: the registry was not reached): no gateway sends it anything, so nothing to drain.
  // A removal the registry did not confirm may have left the entry (a ZooKeeper session that came
  // back keeps its node): that one drains.
  const entry = agent.registration.mayHoldEntry();
  if (signal && options.drainMs > 0 && entry) {
    const startedAt = performance.now();
    const unconfirmedRemoval = agent.registration.currentState() === 'unregistered';
    if (unconfirmedRemoval) {
      // Gateways send to the entry until its deletion lands, so --drain counts from there, as it counts from the mark.
      log.info({ signal }, 'the last deregistration was not confirmed, so the entry may still be there; waiting for its retried deletion, then --drain');
      const removed = await agent.removalConfirmed(ttlMs / 2);
      if (removed) log.info({ drainMs: options.drainMs, removedAt: Date.now() }, 'the retried deletion was confirmed; waiting --drain for the requests gateways sent before it to finish');
      else log.warn({ drainMs: options.drainMs, boundMs: ttlMs / 2, waitedMs: Math.round(performance.now() - startedAt) }, 'the registry did not confirm the retried deletion; waiting --drain for requests in flight anyway');
    } else {
      log.info({ signal }, 'marking the entry draining before the backend stops');
      const marked = await agent.markDraining(ttlMs / 2);
      if (marked) log.info({ drainMs: options.drainMs, markedAt: Date.now() }, 'marked draining; waiting --drain for gateways to stop sending and their requests to finish');
      else log.warn({ drainMs: options.drainMs, boundMs: ttlMs / 2, waitedMs: Math.round(performance.now() - startedAt) }, 'the registry did not confirm the draining mark; waiting --drain for requests in flight anyway');
    }
    draining = true;
    await delay(options.drainMs, undefined, { signal: drainCut.signal }).catch(() => undefined);
    draining = false;
    log.info('drained; deregistering');
    // Whole milliseconds: the bound is named in the warning when the registry does not answer.
    await agent.deregister(Math.max(1, Math.round(ttlMs - (performance.now() - startedAt - options.drainMs))));
  } else {
    log.info({ signal }, entry ? 'deregistering before the backend stops' : noEntryReason(agent.registration.currentState()));
    await agent.deregister();
  }
  if (child) log.info('deregistered; stopping the backend');
  else log.info('deregistered');
  if (child && child.exitCode === null && child.signalCode === null) {
    const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    // After its terminal's hangup the backend is stopped, not sent a SIGHUP that many servers take as a reload.
    child.kill(signal === undefined || signal === 'SIGHUP' ? 'SIGTERM' : signal);
    const timer = setTimeout(() => child?.kill('SIGKILL'), CHILD_STOP_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
  }
  // The backend's own status, also when it exited by itself during the drain.
  if (childStatus !== undefined) status = childStatus;
  await agent.close();
  process.exit(status);
}

/** Why shutdown finds no entry to drain: none wanted, one held for good by another writer, or one wanted never written. */
function noEntryReason(state: RegistrationState): string {
  if (state === 'unregistered') return 'no entry registered, nothing to drain; stopping without waiting --drain';
  if (state === 'blocked') return 'no entry registered: another writer holds its key for good (see the error logged), so nothing was written, nothing to drain; stopping without waiting --drain';
  return 'no entry registered: the registry was never reached, so nothing was written, nothing to drain; stopping without waiting --drain';
}

function exitStatus(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  return 128 + (signal ? (constants.signals[signal] ?? 1) : 1);
}
