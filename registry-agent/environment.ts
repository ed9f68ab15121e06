// SWITCHBOARD_* environment variables the agent does not read: most often a flag misspelt
// (SWITCHBOARD_HEALTHCHECK for SWITCHBOARD_HEALTH), which would otherwise be ignored unseen.

import { closestName } from '../src/closest-name.ts';
import { AGENT_FLAGS, envNameOf } from './cli.ts';

/**
 * Variables other Switchboard programs read: one environment (a compose file's, a unit's) may be
 * shared with a gateway. SWITCHBOARD_LOG_LEVEL is the agent's own too.
 */
const SHARED_VARIABLES = ['SWITCHBOARD_LOG_LEVEL', 'SWITCHBOARD_ADMIN_TOKEN', 'SWITCHBOARD_WORKER_SLOT'];

/**
 * What Kubernetes puts in every container of a namespace with a Service named `switchboard` (a
 * gateway's, most likely) or `switchboard-health`: SWITCHBOARD[_HEALTH]_SERVICE_HOST,
 * SWITCHBOARD[_HEALTH]_SERVICE_PORT[_<port name>] and SWITCHBOARD[_HEALTH]_PORT_<port>_TCP[_PROTO|_PORT|_ADDR]
 * (Docker's links write the last ones too). No misspelt flag; SWITCHBOARD_PORT and
 * SWITCHBOARD_HEALTH_PORT, which it also sets, are `--port` and `--health-port` (`parseAgentArgs` names the link).
 */
const SERVICE_LINK = /^SWITCHBOARD_(?:HEALTH_)?(?:SERVICE_HOST|SERVICE_PORT(?:_\w+)?|PORT_\d+_(?:TCP|UDP|SCTP)(?:_(?:PROTO|PORT|ADDR))?)$/;

/** A SWITCHBOARD_* variable no Switchboard program reads, and the agent's variable it most likely meant. */
export interface UnknownVariable {
  readonly name: string;
  readonly meant: string | undefined;
}

/** The SWITCHBOARD_* variables of `env` that no flag of the agent (nor another Switchboard program) reads, service links aside, in name order. */
export function unknownAgentVariables(env: NodeJS.ProcessEnv): UnknownVariable[] {
  const agentVariables = AGENT_FLAGS.map(envNameOf);
  const known = new Set([...agentVariables, ...SHARED_VARIABLES]);
  return Object.keys(env)
    .filter((name) => name.startsWith('SWITCHBOARD_') && !known.has(name) && !SERVICE_LINK.test(name))
    .sort()
    .map((name) => ({ name, meant: closestName(name, [...agentVariables, 'SWITCHBOARD_LOG_LEVEL']) }));
}
