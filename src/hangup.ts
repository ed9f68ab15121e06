/**
 * Whether a SIGHUP to this process is a request (the gateway reads its configuration again, a
 * worker or the agent stays) rather than its terminal hanging up. A program whose output is a
 * terminal gets SIGHUP when that terminal closes (an ssh session that ends, a closed window): it
 * keeps Node's default and ends, as programs run from a shell do, rather than run on unattended,
 * writing its logs to a terminal that is gone (where Node's writes fail and the process aborts
 * later, at a moment nobody chose). Under systemd, Docker without `-t`, `nohup` or any redirect of
 * its output there is no terminal to hang up, and a SIGHUP is someone's request (`systemctl
 * reload`, `kill -HUP`). `bin/switchboard.js` and `bin/switchboard-agent.js` repeat the test, as
 * they run before any bundle loads.
 */
export function hangupIsRequest(): boolean {
  return !(process.stdout.isTTY || process.stderr.isTTY);
}
