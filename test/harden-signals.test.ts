// Signals and the owner lock: SIGTERM/SIGINT/SIGHUP shut down cleanly (exit 0,
// socket removed); SIGUSR1 and a malformed LOCK drop the keys that live only in
// memory and, with a vault, lock so that only the vault passphrase opens the
// agent (issue 11, point 3: no recovery secret is written); the agent keeps
// serving other clients throughout.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
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
import { VAULT_PASS, VaultWorld, poll } from './fixtures/vault-agent';

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

  /** No secret that unlocks the agent is written anywhere beside its socket. */
  function noRecoveryFile(agent: Tsagent): void {
    assert.deepEqual(
      fs.readdirSync(agent.dir).filter((f) => /recovery/.test(f)),
      [],
      'a recovery file was written',
    );
  }

  /** ssh-add -X: refused (nothing is locked, or the passphrase is not the one). */
  async function unlockRefused(agent: Tsagent, passphrase: string): Promise<void> {
    askpass.answer(passphrase);
    const r = await sshAdd(agent, ['-X'], askpass.env());
    assert.equal(r.code, 1, r.stdout + r.stderr);
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

  it('SIGUSR1 without a vault: the keys are dropped, nothing unlocks, the agent stays open', async () => {
    const agent = await startTsagent({ debug: true });
    try {
      await addKeys(agent);
      process.kill(agent.pid, 'SIGUSR1');
      await waitFor('the keys to go', async () => (await listed(agent)).length === 0);
      noRecoveryFile(agent);
      // Nothing to unlock: no passphrase brings the keys back.
      await unlockRefused(agent, 'anything');
      assert.deepEqual(await listed(agent), []);
      await waitFor('the log', () => /keys dropped: SIGUSR1/.test(agent.output().stderr));
      // The owner adds them again; another SIGUSR1 drops them again.
      await addKeys(agent);
      process.kill(agent.pid, 'SIGUSR1');
      await waitFor('the keys to go again', async () => (await listed(agent)).length === 0);
      noRecoveryFile(agent);
    } finally {
      await agent.stop();
    }
  });

  it('SIGUSR1 with a vault: memory keys dropped, locked; only the vault passphrase opens it', async () => {
    const world = new VaultWorld({ explicitVault: true });
    try {
      await world.init();
      const gen = await world.vault(['generate', '-t', 'ed25519', '-C', 'in-the-vault']);
      const vaultLine = gen.stdout.trim().split(' ').slice(0, 2).join(' ');
      const agent = await world.startAgent();
      assert.equal((await world.sshAdd(agent, ['-X'], VAULT_PASS)).code, 0);
      assert.equal((await world.sshAdd(agent, [keys[0].priv])).code, 0);
      const publicKeys = async () => (await world.sshAdd(agent, ['-L'])).stdout.trim();
      assert.equal((await publicKeys()).split('\n').length, 2);
      process.kill(agent.pid, 'SIGUSR1');
      await poll(
        'the lock',
        () => world.status(agent),
        (st) => st.locked,
        10_000,
      );
      assert.match(agent.log(), /agent locked: SIGUSR1/);
      // A lock passphrase does not exist: ssh-add -X with anything else fails.
      assert.equal((await world.sshAdd(agent, ['-X'], 'not the vault passphrase')).code, 1);
      assert.equal((await world.status(agent)).locked, true);
      assert.equal((await world.sshAdd(agent, ['-X'], VAULT_PASS)).code, 0);
      // The vault key is back; the key that lived only in memory is not.
      const after = await publicKeys();
      assert.deepEqual(
        after.split('\n').map((l) => l.split(' ').slice(0, 2).join(' ')),
        [vaultLine],
      );
      assert.deepEqual(
        fs.readdirSync(path.dirname(agent.sock)).filter((f) => /recovery/.test(f)),
        [],
      );
    } finally {
      await world.cleanup();
    }
  });

  it('a malformed LOCK: connection dropped, keys dropped, others served', async () => {
    const agent = await startTsagent({ debug: true });
    try {
      await addKeys(agent);
      const other = await AgentClient.connect(agent.sock);
      try {
        // LOCK whose passphrase string claims 10 bytes and brings 3.
        const malformed = frame(Buffer.concat([Buffer.of(22, 0, 0, 0, 10), Buffer.from('abc')]));
        assert.equal(await rawRequest(agent.sock, malformed), 'closed');
        // The connection opened before is still served (no identities now).
        const r = await other.request({ type: 'request-identities' });
        assert.deepEqual(r, { type: 'identities', identities: [] });
        assert.deepEqual(await listed(agent), []);
        // A malformed UNLOCK is dropped too.
        const badUnlock = frame(Buffer.concat([Buffer.of(23, 0, 0, 0, 64), Buffer.from('x')]));
        assert.equal(await rawRequest(agent.sock, badUnlock), 'closed');
        assert.deepEqual(await listed(agent), []);
        noRecoveryFile(agent);
        await addKeys(agent);
        const again = await other.request({ type: 'request-identities' });
        assert.equal(again.type === 'identities' && again.identities.length, keys.length);
        assert.equal(agent.process.exitCode, null);
        assert.match(agent.output().stderr, /keys dropped: malformed lock request/);
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
