// tsagent's own extension requests (SSH_AGENTC_EXTENSION, PROTOCOL.agent §4.7):
// their names, and the status reply's contents. The agent (serve.ts) and the
// commands that talk to it (src/cli/control.ts) both use this module only.

export const EXT = {
  /** Contents: none. Reply: EXTENSION_RESPONSE with the AgentStatus as UTF-8 JSON. */
  status: 'status@tsagent',
  /** Contents: the vault passphrase. Reply: SUCCESS if it opened the vault. */
  vaultUnlock: 'vault-unlock@tsagent',
  /** Contents: none. Reply: SUCCESS once every approval window is closed. */
  approvalsClear: 'approvals-clear@tsagent',
  /** Contents: a host (name or host key fingerprint), empty for all. Reply: SUCCESS if it forgot any. */
  hostsForget: 'hosts-forget@tsagent',
} as const;

export interface StatusKey {
  type: string;
  bits: number;
  fingerprint: string;
  comment: string;
  source: 'vault' | 'memory';
  confirm: boolean;
  confirmForwarded: boolean;
  /** Never listed nor used through a forwarded connection (absent from older agents). */
  localOnly?: boolean;
  /** The key's own approval window, seconds (absent: the agent's). */
  confirmWindow?: number;
  lifetimeLeft: number | null; // seconds
  destinations: string[];
}

export interface AgentStatus {
  pid: number;
  uptime: number; // seconds
  socket: string;
  locked: boolean;
  vault: { path: string; present: boolean } | null;
  /** The vault's keys are loaded (it has been unlocked since the last lock). */
  vaultLoaded: boolean;
  keys: StatusKey[];
  /** Changes refused from forwarded connections since start (absent from older agents). */
  refusedChanges?: { count: number; recent: RefusedChange[] };
  /** Open approval windows (--confirm-window); absent from older agents. */
  approvals?: StatusApproval[];
  /** What the agent learned of which key each host accepts (issue 13); absent from older agents. */
  hosts?: StatusHost[];
}

export interface StatusHost {
  /** Escaped: the name known_hosts gives the host key, else its fingerprint. */
  host: string;
  hostKey: string; // fingerprint
  /** The fingerprint of the key it accepted last, if any. */
  key: string | null;
  /** Refused connections since then (the order rotates by two for each). */
  failures: number;
}

function isStatusHost(h: unknown): h is StatusHost {
  return (
    isObject(h) &&
    typeof h.host === 'string' &&
    typeof h.hostKey === 'string' &&
    (h.key === null || typeof h.key === 'string') &&
    typeof h.failures === 'number'
  );
}

export interface StatusApproval {
  /** The key's fingerprint. */
  key: string;
  /** Escaped: a login's host, or the kind of data ("git signatures"). */
  destination: string;
  session: number;
  forwarded: boolean;
  remaining: number; // seconds
  uses: number;
}

/** One change refused from a forwarded connection, as status shows it. */
export interface RefusedChange {
  time: string; // ISO 8601
  /** The message name: REMOVE_ALL_IDENTITIES, ADD_IDENTITY, LOCK… */
  request: string;
  /** The hosts it came through, this machine first. */
  hops: string[];
}

export function encodeStatus(st: AgentStatus): Buffer {
  return Buffer.from(JSON.stringify(st), 'utf8');
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function isStatusKey(k: unknown): k is StatusKey {
  return (
    isObject(k) &&
    typeof k.type === 'string' &&
    typeof k.bits === 'number' &&
    typeof k.fingerprint === 'string' &&
    typeof k.comment === 'string' &&
    (k.source === 'vault' || k.source === 'memory') &&
    typeof k.confirm === 'boolean' &&
    typeof k.confirmForwarded === 'boolean' &&
    (k.localOnly === undefined || typeof k.localOnly === 'boolean') &&
    (k.confirmWindow === undefined || typeof k.confirmWindow === 'number') &&
    (k.lifetimeLeft === null || typeof k.lifetimeLeft === 'number') &&
    Array.isArray(k.destinations) &&
    k.destinations.every((d) => typeof d === 'string')
  );
}

function isStatusApproval(a: unknown): a is StatusApproval {
  return (
    isObject(a) &&
    typeof a.key === 'string' &&
    typeof a.destination === 'string' &&
    typeof a.session === 'number' &&
    typeof a.forwarded === 'boolean' &&
    typeof a.remaining === 'number' &&
    typeof a.uses === 'number'
  );
}

const isStrings = (v: unknown): v is string[] =>
  Array.isArray(v) && v.every((s) => typeof s === 'string');

function isRefusedChanges(v: unknown): v is AgentStatus['refusedChanges'] {
  return (
    isObject(v) &&
    typeof v.count === 'number' &&
    Array.isArray(v.recent) &&
    v.recent.every(
      (r) =>
        isObject(r) &&
        typeof r.time === 'string' &&
        typeof r.request === 'string' &&
        isStrings(r.hops),
    )
  );
}

/** The status an agent sent, or null if it is not one (a malformed reply is a value, not a crash). */
export function decodeStatus(contents: Buffer): AgentStatus | null {
  let v: unknown;
  try {
    v = JSON.parse(contents.toString('utf8'));
  } catch {
    return null;
  }
  if (
    !isObject(v) ||
    typeof v.pid !== 'number' ||
    typeof v.uptime !== 'number' ||
    typeof v.socket !== 'string' ||
    typeof v.locked !== 'boolean' ||
    typeof v.vaultLoaded !== 'boolean' ||
    !Array.isArray(v.keys) ||
    !v.keys.every(isStatusKey) ||
    (v.approvals !== undefined &&
      !(Array.isArray(v.approvals) && v.approvals.every(isStatusApproval))) ||
    (v.hosts !== undefined && !(Array.isArray(v.hosts) && v.hosts.every(isStatusHost)))
  )
    return null;
  const vault = v.vault;
  if (
    vault !== null &&
    !(isObject(vault) && typeof vault.path === 'string' && typeof vault.present === 'boolean')
  )
    return null;
  if (v.refusedChanges !== undefined && !isRefusedChanges(v.refusedChanges)) return null;
  return v as unknown as AgentStatus;
}
