// The systemd units of deploy/systemd, checked by Debian's systemd-analyze (package systemd).
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeTempDir, REPO_ROOT } from '../harness/index.ts';
import { GATEWAY_SEMI_SPACE_MB } from '../../gateway/cluster/cluster-node-flags.ts';
import { EXIT_MARGIN_MS } from '../../gateway/cluster/cluster-primary.ts';
import { DEFAULT_DRAIN_TIMEOUT_MS } from '../../gateway/config/defaults.ts';
import { PEER_LEAVE_TIMEOUT_MS } from '../../gateway/control-plane.ts';

const SYSTEMD_ANALYZE = '/usr/bin/systemd-analyze';
const UNITS = join(REPO_ROOT, 'deploy/systemd');
const available = existsSync(SYSTEMD_ANALYZE);

/** Copies the units into a folder, the agent template instantiated beside the example backend, and runs `systemd-analyze verify` on them. */
async function verify(edit: (name: string, text: string) => string = (_name, text) => text): Promise<{ status: number | null; output: string }> {
  const dir = await makeTempDir('sb-systemd-');
  const units: [from: string, to: string][] = [
    ['switchboard.service', 'switchboard.service'],
    ['example-backend.service', 'example-backend.service'],
    ['switchboard-agent@.service', 'switchboard-agent@example-backend.service'],
  ];
  for (const [from, to] of units) {
    writeFileSync(join(dir, to), edit(from, readFileSync(join(UNITS, from), 'utf8')));
  }
  const run = spawnSync(SYSTEMD_ANALYZE, ['verify', '--man=no', ...units.map(([, to]) => to)], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

describe.skipIf(!available)(`deploy/systemd units${available ? '' : ` (skipped: ${SYSTEMD_ANALYZE} is missing; apt-get install systemd)`}`, () => {
  it('pass systemd-analyze verify without a single warning', async () => {
    const result = await verify();
    expect(result.output).toBe('');
    expect(result.status).toBe(0);
  });

  it('would be caught by systemd-analyze verify if a key were misspelled or a path relative (the check can fail)', async () => {
    const typo = await verify((name, text) => (name === 'switchboard.service' ? text.replace('RestartSec=', 'RestartSecs=') : text));
    expect(typo.output).toContain("Unknown key 'RestartSecs'");
    const relative = await verify((name, text) => (name === 'switchboard-agent@.service' ? text.replace('ExecStart=/usr/bin/node', 'ExecStart=node-not-absolute') : text));
    expect(relative.status).not.toBe(0);
  });

  it('run the bins this repository ships, and stop the agent before its backend with SIGTERM', () => {
    const gateway = readFileSync(join(UNITS, 'switchboard.service'), 'utf8');
    const agent = readFileSync(join(UNITS, 'switchboard-agent@.service'), 'utf8');
    for (const bin of [...`${gateway}\n${agent}`.matchAll(/\/opt\/switchboard\/(bin\/[\w-]+\.js)/g)].map((match) => match[1]!)) {
      expect(existsSync(join(REPO_ROOT, bin)), bin).toBe(true);
    }
    expect(gateway).toMatch(/^ExecStartPre=.*switchboard\.js check /m);
    // The single process gets the young-generation size the `switchboard` command's shebang gives.
    expect(gateway).toMatch(new RegExp(`^ExecStart=/usr/bin/node --max-semi-space-size=${GATEWAY_SEMI_SPACE_MB} /opt/switchboard/bin/switchboard\\.js `, 'm'));
    // Ordered After= its backend, the agent is stopped first; BindsTo= stops it whenever the backend stops.
    expect(agent).toMatch(/^BindsTo=%i\.service$/m);
    expect(agent).toMatch(/^After=%i\.service /m);
    expect(agent).toMatch(/^KillSignal=SIGTERM$/m);
    for (const unit of [gateway, agent]) expect(unit).toMatch(/^Restart=on-failure$/m);
    // systemd's SIGKILL comes after the gateway's own bound with the default drain: the peer entry's
    // removal, the drain, the margin for workers to exit, and at least 5 s to close the registries.
    const stopSeconds = Number(/^TimeoutStopSec=(\d+)s$/m.exec(gateway)?.[1]);
    expect(stopSeconds * 1_000).toBeGreaterThanOrEqual(PEER_LEAVE_TIMEOUT_MS + DEFAULT_DRAIN_TIMEOUT_MS + EXIT_MARGIN_MS + 5_000);
  });

  it('stop the gateway by a SIGTERM to its primary alone, which drains its workers itself, and kill whatever is left after that', () => {
    const gateway = readFileSync(join(UNITS, 'switchboard.service'), 'utf8');
    expect(gateway).toMatch(/^KillSignal=SIGTERM$/m);
    // The default (control-group) would send SIGTERM to the workers too, at the same time: they would
    // close their listeners before the primary left the peer list and drain on their own. `process`
    // would leave a worker that outlived the primary running after the stop; `mixed` kills it then.
    expect([...gateway.matchAll(/^KillMode=(.*)$/gm)].map((match) => match[1])).toEqual(['mixed']);
  });
});
