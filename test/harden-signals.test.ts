// Signals and the owner lock: SIGTERM/SIGINT/SIGHUP shut down cleanly (exit 0,
// socket removed); SIGUSR1 and a malformed LOCK lock the agent under a secret
// written beside the socket (<sock>.recovery, 0600), which `ssh-add -X`
// accepts to unlock; the agent keeps serving other clients throughout.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { AgentClient } from '../src/agent/client';
import { Tsagent, startTsagent } from './fuzz/agent';
import { frame, rawRequest } from './fixtures/agent';
import { Askpass, KEY_TYPES, TestKey, makeKey } from './fixtures/keys';
import {
  SSH_ADD,
  SSH_KEYGEN,
  baseEnv,
  mkTemp,
  rmTemp,
  run,
  skipUnless,
  waitFor,
} from './fixtures/run';

const skip = skipUnless([SSH_ADD, SSH_KEYGEN]);

describe('signals and the owner lock', { skip }, () => {
  let dir: string;
  let keys: TestKey[];
  let askpass: Askpass;
  before(async () => {
    dir = mkTemp();
    askpass = new Askpass(dir);
    keys = await Promise.all([makeKey(dir, KEY_TYPES[0]), makeKey(dir, KEY_TYPES[1])]);
  });
  after(() => rmTemp(dir));

  const sshAdd = (agent: Tsagent, args: string[], env: Record<string, string | undefined> = {}) =>
    run(SSH_ADD, args, { env: baseEnv({ SSH_AUTH_SOCK: agent.sock, ...env }) });

  /** ssh-add -l: the listed lines, or [] for "no identities". */
  async function listed(agent: Tsagent): Promise<string[]> {
    const r = await sshAdd(agent, ['-l']);
    if (r.code === 1 && /no identities/.test(r.stdout + r.stderr)) return [];
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.trim().split('\n');
  }

  async function addKeys(agent: Tsagent): Promise<void> {
    const r = await sshAdd(
      agent,
      keys.map((k) => k.priv),
    );
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await listed(agent)).length, keys.length);
  }

  /** ssh-add -X with the recovery secret given through SSH_ASKPASS. */
  async function recover(agent: Tsagent): Promise<void> {
    const st = fs.statSync(agent.recovery);
    assert.equal(st.mode & 0o777, 0o600, 'recovery file mode');
    const secret = fs.readFileSync(agent.recovery, 'utf8').trim();
    assert.match(secret, /^[0-9a-f]{64}$/);
    askpass.answer(secret);
    const r = await sshAdd(agent, ['-X'], askpass.env());
    assert.equal(r.code, 0, r.stdout + r.stderr);
  }

  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
    it(`${sig}: exit 0, socket removed`, async () => {
      const agent = await startTsagent();
      try {
        await addKeys(agent);
        process.kill(agent.pid, sig);
        const { code, signal } = await Promise.race([
          agent.exited,
          new Promise<never>((_, j) =>
            setTimeout(() => j(new Error(`no exit after ${sig}`)), 15_000),
          ),
        ]);
        assert.deepEqual({ code, signal }, { code: 0, signal: null });
        assert.ok(!fs.existsSync(agent.sock), 'socket left behind');
        assert.ok(!fs.existsSync(agent.recovery), 'recovery file left behind');
      } finally {
        await agent.stop();
      }
    });
  }

  it('SIGUSR1 locks the agent; ssh-add -X with the recovery secret restores the keys', async () => {
    const agent = await startTsagent({ debug: true });
    try {
      await addKeys(agent);
      process.kill(agent.pid, 'SIGUSR1');
      await waitFor('the agent to lock', async () => (await listed(agent)).length === 0);
      assert.ok(fs.existsSync(agent.recovery));
      // A wrong secret does not unlock.
      askpass.answer('not-the-secret');
      assert.notEqual((await sshAdd(agent, ['-X'], askpass.env())).code, 0);
      assert.deepEqual(await listed(agent), []);
      await recover(agent);
      assert.deepEqual((await listed(agent)).sort(), keys.map((k) => k.listLine).sort());
      // Another SIGUSR1 locks again under a fresh secret.
      const first = fs.readFileSync(agent.recovery, 'utf8');
      process.kill(agent.pid, 'SIGUSR1');
      await waitFor('the agent to lock again', async () => (await listed(agent)).length === 0);
      await waitFor('a fresh secret', () => fs.readFileSync(agent.recovery, 'utf8') !== first);
      await recover(agent);
      assert.equal((await listed(agent)).length, keys.length);
    } finally {
      await agent.stop();
    }
  });

  it('a malformed LOCK: connection dropped, agent locked, others served, recoverable', async () => {
    const agent = await startTsagent({ debug: true });
    try {
      await addKeys(agent);
      const other = await AgentClient.connect(agent.sock);
      try {
        // LOCK whose passphrase string claims 10 bytes and brings 3.
        const malformed = frame(Buffer.concat([Buffer.of(22, 0, 0, 0, 10), Buffer.from('abc')]));
        assert.equal(await rawRequest(agent.sock, malformed), 'closed');
        // The connection opened before is still served (locked: no identities).
        const r = await other.request({ type: 'request-identities' });
        assert.deepEqual(r, { type: 'identities', identities: [] });
        assert.deepEqual(await listed(agent), []);
        // A malformed UNLOCK does not unlock, and is dropped too.
        const badUnlock = frame(Buffer.concat([Buffer.of(23, 0, 0, 0, 64), Buffer.from('x')]));
        assert.equal(await rawRequest(agent.sock, badUnlock), 'closed');
        assert.deepEqual(await listed(agent), []);
        await recover(agent);
        assert.equal((await listed(agent)).length, keys.length);
        const again = await other.request({ type: 'request-identities' });
        assert.equal(again.type === 'identities' && again.identities.length, keys.length);
        assert.equal(agent.process.exitCode, null);
        assert.match(agent.output().stderr, /agent locked: malformed lock request/);
      } finally {
        other.close();
      }
    } finally {
      await agent.stop();
    }
  });

  it('a correct UNLOCK sent while a LOCK is still hashing its passphrase is accepted', async () => {
    const agent = await startTsagent();
    const a = await AgentClient.connect(agent.sock);
    const b = await AgentClient.connect(agent.sock);
    try {
      const pass = Buffer.from('lock passphrase');
      const lock = a.request({ type: 'lock', passphrase: pass });
      await new Promise((r) => setImmediate(r));
      const unlock = b.request({ type: 'unlock', passphrase: pass });
      const [l, u] = await Promise.all([lock, unlock]);
      assert.equal(l.type, 'success');
      assert.equal(u.type, 'success', 'the right passphrase was refused');
    } finally {
      a.close();
      b.close();
      await agent.stop();
    }
  });
});
