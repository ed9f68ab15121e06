import type { Cleanups } from './cleanups.ts';
import type { ManagedProcess } from './process.ts';
import { descendantsOf, killStillRunning, type ProcessRecord } from './process-tree.ts';
import { startAgentBackend } from './programs.ts';

/** An agent that runs its own backend, and that backend's processes. */
export interface AgentWithBackend {
  readonly agent: ManagedProcess;
  /** The agent's child processes (its backend), read once they exist and kept from then on, also after they ended. */
  readonly backend: () => ProcessRecord[];
}

/**
 * Starts `switchboard-agent` registering `id` of service `user` in `registry` with `flags`, running
 * a backend of its own (`startAgentBackend`); `cleanup` kills both whatever the test did, so that no
 * test leaves the backend behind.
 */
export async function agentWithBackend(registry: string, id: string, flags: readonly string[], cleanup: Cleanups): Promise<AgentWithBackend> {
  const { agent } = await startAgentBackend({ registry, service: 'user', id, weight: 1, flags });
  let children: ProcessRecord[] = [];
  cleanup.push(async () => {
    await agent.kill();
    killStillRunning(children);
  });
  const backend = () => {
    if (children.length === 0 && agent.pid !== undefined) children = descendantsOf(agent.pid);
    return children;
  };
  return { agent, backend };
}
