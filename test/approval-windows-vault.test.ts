// Per-key approval windows (issue 14): `tsagent vault set KEY --confirm-window
// LIFE` gives one key its own window, whatever the agent's --confirm-window
// (here none: every other confirm key asks each time, as OpenSSH's agent);
// 0 makes that key ask every time; --no-confirm-window gives it the agent's
// again. (A key that leaves the agent ends its windows: approval-windows.test.ts.)

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SSH_ADD, SSH_KEYGEN, skipUnless } from './fixtures/run';
import { VAULT_PASS, VaultAgent, VaultWorld, poll } from './fixtures/vault-agent';

interface Key {
  name: string;
  pub: string;
  fingerprint: string;
}

describe('vault set KEY --confirm-window', { skip: skipUnless([SSH_ADD, SSH_KEYGEN]) }, () => {
  let world: VaultWorld;
  let agent: VaultAgent;
  let windowed: Key;
  let asking: Key;

  const generate = async (name: string): Promise<Key> => {
    const r = await world.vault(['generate', '-t', 'ed25519', '-C', name]);
    const pub = path.join(world.work, `${name}.pub`);
    fs.writeFileSync(pub, r.stdout);
    const fingerprint = /key (SHA256:\S+) in /.exec(r.stderr)?.[1];
    assert.ok(fingerprint, r.stderr);
    return { name, pub, fingerprint };
  };
  /** Sign n times with the key; how many confirmations were asked. */
  const prompts = async (k: Key, n: number): Promise<number> => {
    world.askpass.reset();
    for (let i = 0; i < n; i++) {
      const s = await world.sign(agent, k.pub, `use ${i}\n`);
      assert.equal(s.code, 0, s.stderr);
    }
    return world.askpass.calls().filter((c) => c.prompt === 'confirm').length;
  };
  const windowOf = async (k: Key) =>
    (await world.status(agent)).keys.find((s) => s.fingerprint === k.fingerprint)?.confirmWindow;

  before(async () => {
    world = new VaultWorld();
    await world.init();
    windowed = await generate('windowed');
    asking = await generate('asking');
    await world.vault(['set', 'windowed', '--confirm', '--confirm-window', '5m']);
    await world.vault(['set', 'asking', '--confirm']);
    const list = await world.vault(['list']);
    assert.match(list.stdout, /windowed .*\[confirm\] .*\[confirm-window 300s\]/);
    assert.doesNotMatch(list.stdout, /asking .*confirm-window/);
    agent = await world.startAgent({ env: world.askpass.env() });
    const r = await world.sshAdd(agent, ['-X'], VAULT_PASS);
    assert.equal(r.code, 0, r.stderr);
    world.askpass.answer('yes');
  });
  after(async () => {
    await world?.cleanup();
  });

  it("the key's own window covers its uses; a key without one asks each time", async () => {
    assert.equal(await windowOf(windowed), 300);
    assert.equal(await prompts(windowed, 5), 1);
    assert.equal(await prompts(asking, 3), 3);
    const st = await world.tsagent(['status'], { sock: agent.sock });
    assert.match(st.stdout, /windowed \(ssh-ed25519\) \[vault; confirm; confirm window 5m0s\]/);
  });

  it('set to 0 while the agent runs: the open window closes, every use asks', async () => {
    await world.vault(['set', 'windowed', '--confirm-window', '0']);
    await poll(
      'the agent re-read the vault',
      () => windowOf(windowed),
      (w) => w === 0,
    );
    assert.equal(await prompts(windowed, 2), 2);
    await world.vault(['set', 'windowed', '--no-confirm-window']);
    await poll(
      'the agent re-read the vault',
      () => windowOf(windowed),
      (w) => w === undefined,
    );
    assert.equal(await prompts(windowed, 2), 2, "the agent's window: none");
  });
});
