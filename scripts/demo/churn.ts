import { AGENT_STOP_GRACE_MS, type DemoMember } from './members.ts';

/** Stops the churn; resolves once a step in progress has finished, so shutdown never races it. */
export type StopChurn = () => Promise<void>;

/**
 * Every `intervalMs`, either stops the next member's agent (SIGTERM: it marks it draining, deregisters it and
 * stops its backend) or restarts the one that is down, so the balancer visibly follows the registry.
 * Steps never overlap: the next one is scheduled when the previous has finished.
 */
export function startChurn(members: readonly DemoMember[], intervalMs: number, print: (line: string) => void): StopChurn {
  let next = 0;
  let down: DemoMember | undefined;
  let stopped = false;
  let step: Promise<void> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;

  const runStep = async (): Promise<void> => {
    if (down) {
      const member = down;
      down = undefined;
      print(`churn: restarting ${member.name} (weight ${member.weight}); its agent registers it once /healthz answers`);
      member.agent.start();
      return;
    }
    const member = members[next % members.length]!;
    next += 1;
    down = member;
    print(`churn: stopping ${member.name}'s agent (SIGTERM): it marks it draining, waits 1 s, deregisters it, then stops the backend`);
    await member.agent.stop(AGENT_STOP_GRACE_MS);
    if (!stopped) print(`churn: ${member.name} is down; the balancer splits traffic among the others`);
  };

  const schedule = (): void => {
    timer = setTimeout(() => {
      step = runStep().finally(() => {
        if (!stopped) schedule();
      });
    }, intervalMs);
  };
  schedule();

  return async () => {
    stopped = true;
    clearTimeout(timer);
    await step;
  };
}
