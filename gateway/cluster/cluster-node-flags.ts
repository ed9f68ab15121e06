// V8's young generation on Node 20 has semi-spaces of 16 MB at most; under proxy load that means a
// scavenge every ~500 requests, each paying for the requests in flight (which survive it). With
// 32 MB, as Node 24 has by default, half as many scavenges copy the same survivors: measured
// (bench/proxy/README.md, round 5) as half the scavenge time per request for ~15 MB more peak RSS.
// The bin's shebang gives it to the single process; the supervisor gives it to every worker.

/** The semi-space size the gateway's processes run with unless the user chose one, in MB. */
export const GATEWAY_SEMI_SPACE_MB = 32;

/** True when one of `args` (Node flags, or NODE_OPTIONS split on whitespace) sets V8's semi-space size, in either spelling. */
export function setsSemiSpace(args: readonly string[]): boolean {
  // V8 reads `-` and `_` alike in flag names: --max_semi_space_size=8 counts too.
  return args.some((arg) => /^--max[-_]semi[-_]space[-_]size(=|$)/.test(arg));
}

/**
 * The Node flags a worker starts with: the primary's own (as cluster does by default), plus the
 * gateway's semi-space size unless the user already chose one on the command line or in
 * NODE_OPTIONS (which workers inherit with the environment): the user's choice wins.
 */
export function workerExecArgv(execArgv: readonly string[], nodeOptions: string | undefined): string[] {
  if (setsSemiSpace(execArgv) || setsSemiSpace((nodeOptions ?? '').split(/\s+/))) return [...execArgv];
  return [`--max-semi-space-size=${GATEWAY_SEMI_SPACE_MB}`, ...execArgv];
}
