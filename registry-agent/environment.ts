// SWITCHBOARD_* environment variables the agent does not read: most often a flag misspelt
// (SWITCHBOARD_HEALTHCHECK for SWITCHBOARD_HEALTH), which would otherwise be ignored unseen.

import { closestName } from '../src/closest-name.ts';
import { AGENT_FLAGS, envNameOf } from './cli.ts';

/**
 * Variables other Switchboard programs read: one environment (a compose file's, a unit's) may be
 * shared with a gateway. SWITCHBOARD_LOG_LEVEL is the agent's own too.
 */
const SHARED_VARIABLES = ['SWITCHBOARD_LOG_LEVEL', 'SWITCHBOARD_ADMIN_TOKEN', 'SWITCHBOARD_WORKER_SLOT'];

/** A SWITCHBOARD_* variable no Switchboard program reads, and the agent's variable it most likely meant. */
export interface UnknownVariable {
  readonly name: string;
  readonly meant: string | undefined;
}

/** The SWITCHBOARD_* variables of `env` that no flag of the agent (nor another Switchboard program) reads, in name order. */
export function unknownAgentVariables(env: NodeJS.ProcessEnv): UnknownVariable[] {
  const agentVariables = AGENT_FLAGS.map(envNameOf);
  const known = new Set([...agentVariables, ...SHARED_VARIABLES]);
  return Object.keys(env)
    .filter((name) => name.startsWith('SWITCHBOARD_') && !known.has(name))
    .sort()
    .map((name) => ({ name, meant: closestName(name, [...agentVariables, 'SWITCHBOARD_LOG_LEVEL']) }));
}
