// The right key first (issue 13), with a vault: what the agent learned about
// a host is kept in the vault (encrypted, a section beside the keys), so it
// survives an agent restart and a lock/unlock, and is not held in memory while
// the vault is locked. The same seven keys and MaxAuthTries 2 server as
// key-order.test.ts, the keys now in the vault.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { TestKey } from './fixtures/keys';
import { SSH, SSHD, SSH_ADD, SSH_KEYGEN, skipUnless } from './fixtures/run';
import { Sshd, sshLogin } from './fixtures/sshd';
import { offeredKeys, pickyServer } from './fixtures/picky-server';
import { VAULT_PASS, VaultAgent, VaultWorld } from './fixtures/vault-agent';
import { VaultFile } from '../src/vault/store';

const offered = offeredKeys;

describe(
  'tsagent with a vault: learned host order survives restart and lock/unlock',
  { skip: skipUnless([SSH, SSHD, SSH_ADD, SSH_KEYGEN]) },
  () => {
    let world: VaultWorld;
    let keys: TestKey[];
    let sshd: Sshd;
    let agent: VaultAgent;

    const start = async () => {
      agent = await world.startAgent();
      const r = await world.sshAdd(agent, ['-X'], VAULT_PASS);
      assert.equal(r.code, 0, r.stderr);
    };
    const login = async () => {
      const r = await sshLogin(sshd, agent.sock, ['true']);
      return { ok: r.code === 0, offers: offered(r.stderr) };
    };
    const hostsLearned = async () => (await world.status(agent)).hosts?.length ?? 0;

    before(async () => {
      world = new VaultWorld();
      await world.init();
      ({ keys, sshd } = await pickyServer(world.work));
      await world.vault(['import', ...keys.map((k) => k.priv)]);
      await start();
    });
    after(async () => {
      await world?.cleanup();
      await sshd?.stop();
    });

    it('learns within four logins, then offers one key, after a restart and after lock/unlock', async () => {
      const results = [];
      for (let i = 0; i < 4; i++) {
        results.push(await login());
        if (results[results.length - 1].ok) break;
      }
      assert.ok(results[results.length - 1].ok, JSON.stringify(results));
      assert.deepEqual(await login(), { ok: true, offers: 1 });

      // Restart: a new process, the vault unlocked again.
      await agent.stop();
      await start();
      assert.equal(await hostsLearned(), 1, 'read back from the vault at unlock');
      assert.deepEqual(await login(), { ok: true, offers: 1 }, 'after a restart');

      // Lock: nothing learned stays in memory; the vault passphrase brings it back.
      let r = await world.sshAdd(agent, ['-x'], 'a lock password');
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await hostsLearned(), 0, 'dropped from memory while locked');
      r = await world.sshAdd(agent, ['-X'], VAULT_PASS);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await hostsLearned(), 1);
      assert.deepEqual(await login(), { ok: true, offers: 1 }, 'after lock/unlock');

      // Kept encrypted: the vault file does not hold the host key in the clear, but its section does.
      const hostBlob = Buffer.from(sshd.hostKey.split(' ')[1], 'base64');
      assert.equal(fs.readFileSync(world.vaultPath).indexOf(hostBlob), -1);
      const section = async () => {
        const v = await new VaultFile(world.vaultPath).unlock(Buffer.from(VAULT_PASS));
        try {
          const data = v.section('host-order');
          return data && Buffer.from(data); // lock() wipes the vault's own copy
        } finally {
          v.lock();
        }
      };
      assert.ok((await section())?.includes(hostBlob));

      // Forgetting is written too: after another restart nothing is known.
      const f = await world.tsagent(['hosts', 'forget', '--all'], { sock: agent.sock });
      assert.equal(f.code, 0, f.stderr);
      await agent.stop();
      await start();
      assert.equal(await hostsLearned(), 0, 'forgotten, also in the vault');
      assert.equal(await section(), undefined, 'no section left: older tsagents read the vault');
    });
  },
);
