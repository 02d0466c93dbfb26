// tsagent's own status extension: what the agent sends is what the cli reads,
// and a reply that is not a status (another agent, a damaged one) is a value.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AgentStatus, decodeStatus, encodeStatus, EXT } from '../src/daemon/control-protocol';

const status: AgentStatus = {
  pid: 42,
  uptime: 7,
  socket: '/run/user/1/tsagent/agent.sock',
  locked: false,
  vault: { path: '/home/u/.local/share/tsagent/vault', present: true },
  vaultLoaded: true,
  keys: [
    {
      type: 'ssh-ed25519',
      bits: 256,
      fingerprint: 'SHA256:abc',
      comment: 'k',
      source: 'vault',
      confirm: true,
      confirmForwarded: false,
      lifetimeLeft: null,
      destinations: ['goober'],
    },
  ],
};

describe('control protocol', () => {
  it('names its extensions @tsagent; no lock extension (LOCK takes a passphrase)', () => {
    assert.deepEqual(Object.values(EXT).sort(), [
      'approvals-clear@tsagent',
      'hosts-forget@tsagent',
      'status@tsagent',
      'vault-unlock@tsagent',
    ]);
  });

  it('decodes what it encodes', () => {
    assert.deepEqual(decodeStatus(encodeStatus(status)), status);
    assert.deepEqual(decodeStatus(encodeStatus({ ...status, vault: null, keys: [] })), {
      ...status,
      vault: null,
      keys: [],
    });
  });

  it('reads anything else as null, never throws', () => {
    const bad: unknown[] = [
      'not json',
      null,
      [],
      { ...status, pid: '42' },
      { ...status, keys: [{ ...status.keys[0], source: 'disk' }] },
      { ...status, keys: [{ ...status.keys[0], destinations: [1] }] },
      { ...status, vault: { path: 1, present: true } },
      { ...status, locked: undefined },
    ];
    for (const v of bad) {
      const bytes = Buffer.from(typeof v === 'string' ? v : JSON.stringify(v));
      assert.equal(decodeStatus(bytes), null, JSON.stringify(v));
    }
    assert.equal(decodeStatus(Buffer.from([0xff, 0xfe])), null);
  });
});
