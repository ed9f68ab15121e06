const REQUEST_TIMEOUT_MS = 1_000;

/** What one member says about the raft state, from POST /v3/maintenance/status. */
export interface EtcdStatus {
  readonly memberId: string;
  readonly leaderId: string;
  readonly raftTerm: string;
}

/** True when GET <clientUrl>/health answers {"health":"true"} within 1 s; false on any failure. */
export async function etcdHealthy(clientUrl: string): Promise<boolean> {
  try {
    const response = await fetch(`${clientUrl}/health`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    const body = (await response.json()) as { health?: unknown };
    return response.ok && body.health === 'true';
  } catch {
    return false;
  }
}

/** The member's own id and the leader id it knows, via the v3 JSON gateway; undefined when unreachable or leaderless. */
export async function etcdStatus(clientUrl: string): Promise<EtcdStatus | undefined> {
  try {
    const response = await fetch(`${clientUrl}/v3/maintenance/status`, {
      method: 'POST',
      body: '{}',
      headers: { 'content-type': 'application/json' },
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    if (!response.ok) return undefined;
    const body = (await response.json()) as { header?: { member_id?: string; raft_term?: string }; leader?: string };
    const memberId = body.header?.member_id;
    const leaderId = body.leader;
    // The gateway encodes uint64 as strings and omits zero values, so a member without a leader has no `leader`.
    if (!memberId || !leaderId || leaderId === '0') return undefined;
    return { memberId, leaderId, raftTerm: body.header?.raft_term ?? '0' };
  } catch {
    return undefined;
  }
}
