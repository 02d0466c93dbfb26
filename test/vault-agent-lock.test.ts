// Acceptance (vault issue, "The agent and the vault"): the agent starts locked
// on an existing vault; OpenSSH's ssh-add -X / -x and tsagent unlock / lock open
// and close it; --lock-after locks by itself; vault changes made with the CLI
// while the agent runs are served without a restart; `tsagent add --save`; the
// per-key defaults (confirm, lifetime) are applied to what the agent serves.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeKey, keyType, TestKey } from './fixtures/keys';
import { SSH_ADD, SSH_KEYGEN, skipUnless } from './fixtures/run';
import {
  LOCK_PASS,
  NO_IDENTITIES,
  VAULT_PASS,
  VaultAgent,
  VaultWorld,
  listLines,
  poll,
  verifySignature,
} from './fixtures/vault-agent';

const skip = skipUnless([SSH_ADD, SSH_KEYGEN]);

interface VaultKey {
  comment: string;
  publicLine: string;
  fingerprint: string;
  pub: string;
}

/** `tsagent vault generate`: the key's public line (stdout) and a .pub file for ssh-keygen -Y sign. */
async function generate(world: VaultWorld, args: string[], comment: string): Promise<VaultKey> {
  const r = await world.vault(['generate', ...args, '-C', comment]);
  const publicLine = r.stdout.trim();
  const fingerprint = /Generated .* key (SHA256:\S+) in /.exec(r.stderr)?.[1];
  assert.ok(fingerprint, r.stderr);
  const pub = path.join(world.work, `${comment}.pub`);
  fs.writeFileSync(pub, publicLine + '\n');
  return { comment, publicLine, fingerprint, pub };
}

/** The fingerprint → comment pairs ssh-add -l shows ([] when locked or empty). */
async function listed(world: VaultWorld, agent: VaultAgent): Promise<string[]> {
  const r = await world.sshAdd(agent, ['-l']);
  if (r.stdout === NO_IDENTITIES) return [];
  assert.equal(r.code, 0, r.stderr);
  return listLines(r.stdout).map((l) => {
    const [, fp, ...rest] = l.split(' ');
    return `${fp} ${rest.slice(0, -1).join(' ')}`;
  });
}

const entry = (k: { fingerprint: string }, comment: string) => `${k.fingerprint} ${comment}`;

describe(
  'agent with a vault: locked at start, ssh-add -X/-x, tsagent unlock/lock, --lock-after',
  { skip },
  () => {
    let world: VaultWorld;
    let agent: VaultAgent;
    let ed: VaultKey;
    let ec: VaultKey;
    let mem: TestKey;
    const vaultEntries = () => [entry(ed, ed.comment), entry(ec, ec.comment)].sort();

    before(async () => {
      world = new VaultWorld({ explicitVault: true });
      world.vaultPath = path.join(world.root, 'elsewhere', 'my.vault');
      await world.init();
      ed = await generate(world, ['-t', 'ed25519'], 'lock-ed25519');
      ec = await generate(world, ['-t', 'ecdsa', '-b', '256'], 'lock-ecdsa');
      mem = await makeKey(world.work, keyType('ed25519'), { name: 'memory-key' });
      agent = await world.startAgent();
    });
    after(async () => {
      await agent?.stop();
      await world?.cleanup();
    });

    it('starts locked: ssh-add -l has no identities, tsagent status says locked', async () => {
      const r = await world.sshAdd(agent, ['-l']);
      assert.equal(r.code, 1);
      assert.equal(r.stdout, NO_IDENTITIES);
      const st = await world.status(agent);
      assert.equal(st.code, 1);
      assert.equal(st.locked, true);
      assert.deepEqual(st.vault, { path: world.vaultPath, present: true });
      assert.equal(st.vaultLoaded, false);
      assert.deepEqual(st.keys, []);
    });

    it('a wrong passphrase fails as with OpenSSH ("Failed to unlock agent"), the agent stays locked', async () => {
      for (const wrong of ['wrong', `${VAULT_PASS} `, VAULT_PASS.toUpperCase()]) {
        const r = await world.sshAdd(agent, ['-X'], wrong);
        assert.equal(r.code, 1, r.stderr);
        assert.match(r.stderr, /^Failed to unlock agent/);
      }
      const u = await world.tsagent(['unlock', '--passphrase-fd', '3'], {
        sock: agent.sock,
        lines: ['not it'],
      });
      assert.equal(u.code, 1);
      assert.match(u.stderr, /tsagent unlock: wrong passphrase/);
      assert.deepEqual(await listed(world, agent), []);
      assert.equal((await world.status(agent)).locked, true);
    });

    it('ssh-add -X with the vault passphrase serves every vault key', async () => {
      const r = await world.sshAdd(agent, ['-X'], VAULT_PASS);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stderr, 'Agent unlocked.\n');
      assert.deepEqual((await listed(world, agent)).sort(), vaultEntries());
      const st = await world.status(agent);
      assert.equal(st.code, 0);
      assert.equal(st.locked, false);
      assert.equal(st.vaultLoaded, true);
      assert.deepEqual(
        st.keys.map((k) => [k.fingerprint, k.source]).sort(),
        [
          [ed.fingerprint, 'vault'],
          [ec.fingerprint, 'vault'],
        ].sort(),
      );
      const s = await world.sign(agent, ed.pub, 'unlocked\n');
      assert.equal(s.code, 0, s.stderr);
      assert.equal((await verifySignature(world, ed.publicLine, 'unlocked\n', s.sig!)).code, 0);
    });

    it('ssh-add FILE still works: the key is held in memory only, not written to the vault', async () => {
      const r = await world.sshAdd(agent, [mem.priv]);
      assert.equal(r.code, 0, r.stderr);
      const st = await world.status(agent);
      assert.equal(st.keys.find((k) => k.fingerprint === mem.fingerprint)?.source, 'memory');
      const list = await world.vault(['list']);
      assert.doesNotMatch(list.stdout, new RegExp(mem.fingerprint.replace(/[+/]/g, '\\$&')));
    });

    it('ssh-add -x (any password) locks and drops the vault keys; its password brings back only memory keys', async () => {
      let r = await world.sshAdd(agent, ['-x'], 'a lock password');
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stderr, 'Agent locked.\n');
      assert.deepEqual(await listed(world, agent), []);
      let st = await world.status(agent);
      assert.equal(st.locked, true);
      assert.equal(st.vaultLoaded, false);

      // The lock password opens the lock, but the vault's keys were dropped: they need its passphrase.
      r = await world.sshAdd(agent, ['-X'], 'a lock password');
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(await listed(world, agent), [entry(mem, mem.comment)]);
      st = await world.status(agent);
      assert.equal(st.locked, false);
      assert.equal(st.vaultLoaded, false);
      const s = await world.sign(agent, ed.pub, 'vault keys are gone\n');
      assert.notEqual(s.code, 0);

      // tsagent unlock on an unlocked agent loads the vault with its passphrase.
      const u = await world.tsagent(['unlock', '--passphrase-fd', '3'], {
        sock: agent.sock,
        lines: [VAULT_PASS],
      });
      assert.equal(u.code, 0, u.stderr);
      assert.deepEqual(
        (await listed(world, agent)).sort(),
        [...vaultEntries(), entry(mem, mem.comment)].sort(),
      );

      // And the vault passphrase also opens a password lock (loading the vault).
      r = await world.sshAdd(agent, ['-x'], 'another lock password');
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(await listed(world, agent), []);
      r = await world.sshAdd(agent, ['-X'], VAULT_PASS);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(
        (await listed(world, agent)).sort(),
        [...vaultEntries(), entry(mem, mem.comment)].sort(),
      );
    });

    it('tsagent lock / tsagent unlock (and ssh-add -X after tsagent lock)', async () => {
      let r = await world.lock(agent);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'Agent locked.\n');
      assert.deepEqual(await listed(world, agent), []);
      const st = await world.status(agent);
      assert.equal(st.locked, true);
      assert.equal(st.vaultLoaded, false);
      r = await world.lock(agent);
      assert.equal(r.code, 1, 'already locked');

      r = await world.tsagent(['unlock', '--passphrase-fd', '3'], {
        sock: agent.sock,
        lines: ['wrong'],
      });
      assert.equal(r.code, 1);
      assert.match(r.stderr, /wrong passphrase/);
      assert.deepEqual(await listed(world, agent), []);
      r = await world.tsagent(['unlock', '--passphrase-fd', '3'], {
        sock: agent.sock,
        lines: [VAULT_PASS],
      });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'Agent unlocked.\n');
      assert.deepEqual(
        (await listed(world, agent)).sort(),
        [...vaultEntries(), entry(mem, mem.comment)].sort(),
      );

      r = await world.lock(agent);
      assert.equal(r.code, 0, r.stderr);
      r = await world.sshAdd(agent, ['-X'], VAULT_PASS);
      assert.equal(r.code, 0, r.stderr);
      assert.equal((await listed(world, agent)).length, 3);
      assert.equal((await world.status(agent)).vaultLoaded, true);

      // The lock password opens it as well (the memory key; the vault waits for its passphrase).
      r = await world.lock(agent);
      assert.equal(r.code, 0, r.stderr);
      r = await world.tsagent(['unlock', '--passphrase-fd', '3'], {
        sock: agent.sock,
        lines: [LOCK_PASS],
      });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(await listed(world, agent), [entry(mem, mem.comment)]);
      r = await world.tsagent(['unlock', '--passphrase-fd', '3'], {
        sock: agent.sock,
        lines: [VAULT_PASS],
      });
      assert.equal(r.code, 0, r.stderr);
      assert.equal((await listed(world, agent)).length, 3);
    });

    it('an agent without a vault: tsagent lock writes no file that unlocks it, and tsagent unlock reads none', async () => {
      // No vault at the default path of this world: only the lock password opens the lock.
      const bare = await world.startAgent({ vault: false });
      try {
        assert.equal((await world.status(bare)).vault?.present, false);
        let r = await world.sshAdd(bare, [mem.priv]);
        assert.equal(r.code, 0, r.stderr);
        // A file where older versions kept a recovery secret: never read.
        fs.writeFileSync(`${bare.sock}.recovery`, `${LOCK_PASS}\n`, { mode: 0o600 });
        r = await world.lock(bare);
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual(await listed(world, bare), []);
        assert.deepEqual(fs.readdirSync(path.dirname(bare.sock)).sort(), [
          'agent.sock',
          'agent.sock.recovery',
        ]);
        // No passphrase given (fd 3 empty, no terminal, no askpass): nothing opens it.
        r = await world.tsagent(['unlock'], { sock: bare.sock });
        assert.equal(r.code, 1, r.stderr);
        assert.match(r.stderr, /cannot ask for a passphrase/);
        assert.deepEqual(await listed(world, bare), []);
        r = await world.tsagent(['unlock', '--passphrase-fd', '3'], {
          sock: bare.sock,
          lines: ['not the lock password'],
        });
        assert.equal(r.code, 1);
        assert.deepEqual(await listed(world, bare), []);
        r = await world.tsagent(['unlock', '--passphrase-fd', '3'], {
          sock: bare.sock,
          lines: [LOCK_PASS],
        });
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual(await listed(world, bare), [entry(mem, mem.comment)]);
        // ssh-add -x's password works the same, with ssh-add -X.
        r = await world.sshAdd(bare, ['-x'], 'typed lock');
        assert.equal(r.code, 0, r.stderr);
        r = await world.sshAdd(bare, ['-X'], 'typed lock');
        assert.equal(r.code, 0, r.stderr);
      } finally {
        await bare.stop();
      }
    });

    it('tsagent lock asks twice through SSH_ASKPASS and refuses a mismatch', async () => {
      const bare = await world.startAgent({ vault: false });
      try {
        // An askpass that answers "one", then "two".
        const twice = path.join(world.work, 'askpass-twice.sh');
        const count = path.join(world.work, 'askpass-twice.count');
        fs.rmSync(count, { force: true });
        fs.writeFileSync(
          twice,
          `#!/bin/sh\necho "$1" >> '${count}'\nif [ "$(wc -l < '${count}')" -eq 1 ]; then echo one; else echo two; fi\n`,
          { mode: 0o755 },
        );
        const r = await world.tsagent(['lock'], {
          sock: bare.sock,
          env: { SSH_ASKPASS: twice, SSH_ASKPASS_REQUIRE: 'force' },
        });
        assert.equal(r.code, 1, r.stderr);
        assert.match(r.stderr, /passwords do not match; the agent was not locked/);
        assert.equal(fs.readFileSync(count, 'utf8'), 'Enter lock password: \nAgain: \n');
        assert.equal((await world.status(bare)).locked, false);
      } finally {
        await bare.stop();
      }
    });

    it('--lock-after 2 locks the agent by itself; ssh-add -X opens it again', async () => {
      const idle = await world.startAgent({ args: ['--lock-after', '2'] });
      try {
        let r = await world.sshAdd(idle, ['-X'], VAULT_PASS);
        assert.equal(r.code, 0, r.stderr);
        assert.equal((await listed(world, idle)).length, 2);
        await poll(
          'the idle lock',
          () => listed(world, idle),
          (l) => l.length === 0,
          20_000,
        );
        const st = await world.status(idle);
        assert.equal(st.locked, true);
        assert.equal(st.vaultLoaded, false);
        assert.match(idle.log(), /agent locked: idle/);
        // No secret that would unlock it was written beside the socket.
        assert.deepEqual(fs.readdirSync(path.dirname(idle.sock)), ['agent.sock']);
        r = await world.sshAdd(idle, ['-X'], VAULT_PASS);
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual((await listed(world, idle)).sort(), vaultEntries());
      } finally {
        await idle.stop();
      }
    });

    it('SIGUSR1 locks with no file that unlocks the agent; the vault passphrase opens it', async () => {
      const sig = await world.startAgent();
      try {
        let r = await world.sshAdd(sig, ['-X'], VAULT_PASS);
        assert.equal(r.code, 0, r.stderr);
        assert.equal((await listed(world, sig)).length, 2);
        process.kill(sig.pid, 'SIGUSR1');
        await poll(
          'the SIGUSR1 lock',
          () => listed(world, sig),
          (l) => l.length === 0,
        );
        assert.equal((await world.status(sig)).locked, true);
        assert.deepEqual(fs.readdirSync(path.dirname(sig.sock)), ['agent.sock']);
        // tsagent unlock has nothing to read instead of a passphrase.
        r = await world.tsagent(['unlock'], { sock: sig.sock });
        assert.equal(r.code, 1, r.stderr);
        assert.equal((await world.status(sig)).locked, true);
        r = await world.sshAdd(sig, ['-X'], VAULT_PASS);
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual((await listed(world, sig)).sort(), vaultEntries());
      } finally {
        await sig.stop();
      }
    });
  },
);

describe('agent with a vault: CLI changes are served live, tsagent add --save', { skip }, () => {
  let world: VaultWorld;
  let agent: VaultAgent;
  let first: VaultKey;

  before(async () => {
    world = new VaultWorld();
    await world.init();
    first = await generate(world, ['-t', 'ed25519'], 'first');
    agent = await world.startAgent();
    const r = await world.sshAdd(agent, ['-X'], VAULT_PASS);
    assert.equal(r.code, 0, r.stderr);
  });
  after(async () => {
    await agent?.stop();
    await world?.cleanup();
  });

  const seen = (want: (l: string[]) => boolean, what: string) =>
    poll(what, () => listed(world, agent), want);

  it('vault generate, rename, set --confirm and remove reach the running agent', async () => {
    assert.deepEqual(await listed(world, agent), [entry(first, 'first')]);

    const gen = await generate(world, ['-t', 'ecdsa', '-b', '384'], 'live-gen');
    await seen((l) => l.includes(entry(gen, 'live-gen')), 'the generated key');
    const s = await world.sign(agent, gen.pub, 'generated while running\n');
    assert.equal(s.code, 0, s.stderr);
    assert.equal(
      (await verifySignature(world, gen.publicLine, 'generated while running\n', s.sig!)).code,
      0,
    );

    await world.vault(['rename', 'live-gen', 'live-renamed']);
    await seen(
      (l) => l.includes(entry(gen, 'live-renamed')) && !l.includes(entry(gen, 'live-gen')),
      'the new name',
    );

    await world.vault(['set', 'live-renamed', '--confirm']);
    await poll(
      'confirm in tsagent status',
      () => world.status(agent),
      (st) => st.keys.find((k) => k.fingerprint === gen.fingerprint)?.confirm === true,
    );
    const st = await world.status(agent);
    assert.equal(st.keys.find((k) => k.fingerprint === first.fingerprint)?.confirm, false);

    await world.vault(['remove', 'live-renamed']);
    await seen((l) => !l.some((e) => e.startsWith(gen.fingerprint)), 'the removal');
    assert.deepEqual(await listed(world, agent), [entry(first, 'first')]);
    assert.notEqual((await world.sign(agent, gen.pub, 'removed\n')).code, 0);
  });

  it('while locked, vault changes load nothing; the next unlock serves them', async () => {
    let r = await world.lock(agent);
    assert.equal(r.code, 0, r.stderr);
    const late = await generate(world, ['-t', 'ed25519'], 'while-locked');
    // Give a watcher the time it would need, then check that nothing showed up.
    await new Promise((res) => setTimeout(res, 500));
    assert.deepEqual(await listed(world, agent), []);
    assert.equal((await world.status(agent)).locked, true);
    r = await world.sshAdd(agent, ['-X'], VAULT_PASS);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      (await listed(world, agent)).sort(),
      [entry(first, 'first'), entry(late, 'while-locked')].sort(),
    );
    await world.vault(['remove', 'while-locked']);
    await seen((l) => l.length === 1, 'the removal');
  });

  it('tsagent add --save adds to the agent and to the vault; it is still there after a restart', async () => {
    const keyPass = 'add-save key pass';
    const saved = await makeKey(world.work, keyType('ecdsa521'), {
      name: 'saved-key',
      passphrase: keyPass,
    });
    const plain = await makeKey(world.work, keyType('ed25519'), { name: 'not-saved' });
    // Prompts: the key file's passphrase, then the vault's.
    let r = await world.tsagent(['add', '--save', '--passphrase-fd', '3', saved.priv], {
      sock: agent.sock,
      lines: [keyPass, VAULT_PASS],
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /Identity added: saved-key@tsagent-test/);
    assert.match(r.stderr, /Saved in the vault: saved-key@tsagent-test/);
    r = await world.tsagent(['add', plain.priv], { sock: agent.sock });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      (await listed(world, agent)).sort(),
      [entry(first, 'first'), entry(saved, saved.comment), entry(plain, plain.comment)].sort(),
    );
    // The agent picks the vault's copy up: the key now comes from the vault.
    await poll(
      'the saved key served from the vault',
      () => world.status(agent),
      (st) => st.keys.find((k) => k.fingerprint === saved.fingerprint)?.source === 'vault',
    );
    const list = await world.vault(['list']);
    assert.match(list.stdout, /saved-key@tsagent-test/);
    assert.doesNotMatch(list.stdout, /not-saved/);

    fs.rmSync(saved.priv);
    fs.rmSync(plain.priv);
    await agent.stop();
    agent = await world.startAgent();
    assert.deepEqual(await listed(world, agent), []);
    r = await world.sshAdd(agent, ['-X'], VAULT_PASS);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      (await listed(world, agent)).sort(),
      [entry(first, 'first'), entry(saved, saved.comment)].sort(),
    );
    const s = await world.sign(agent, saved.pub, 'saved\n');
    assert.equal(s.code, 0, s.stderr);
    assert.equal((await verifySignature(world, saved.publicLine, 'saved\n', s.sig!)).code, 0);
  });
});

describe(
  'agent with a vault: per-key defaults (confirm through SSH_ASKPASS, lifetime)',
  { skip },
  () => {
    let world: VaultWorld;
    let agent: VaultAgent;
    let confirmKey: VaultKey;
    let shortKey: VaultKey;
    let plainKey: VaultKey;

    before(async () => {
      world = new VaultWorld();
      await world.init();
      confirmKey = await generate(world, ['-t', 'ed25519'], 'confirm-me');
      shortKey = await generate(world, ['-t', 'ecdsa', '-b', '256'], 'short-lived');
      plainKey = await generate(world, ['-t', 'ed25519'], 'plain');
      await world.vault(['set', 'confirm-me', '--confirm']);
      await world.vault(['set', 'short-lived', '--lifetime', '2']);
      // The agent asks for confirmation through this SSH_ASKPASS (a script answering from a
      // file); without a display, OpenSSH's rules want SSH_ASKPASS_REQUIRE=force for that.
      agent = await world.startAgent({ env: world.askpass.env() });
    });
    after(async () => {
      await agent?.stop();
      await world?.cleanup();
    });

    const confirmCalls = () => world.askpass.calls().filter((c) => c.prompt === 'confirm');

    it('a key set to --confirm asks through SSH_ASKPASS; yes signs, no refuses', async () => {
      let r = await world.sshAdd(agent, ['-X'], VAULT_PASS);
      assert.equal(r.code, 0, r.stderr);
      const st = await world.status(agent);
      assert.equal(st.keys.find((k) => k.fingerprint === confirmKey.fingerprint)?.confirm, true);
      assert.equal(st.keys.find((k) => k.fingerprint === plainKey.fingerprint)?.confirm, false);

      world.askpass.reset();
      world.askpass.answer('yes');
      const yes = await world.sign(agent, confirmKey.pub, 'confirmed\n');
      assert.equal(
        yes.code,
        0,
        `${yes.stderr}\nagent: ${agent.log().slice(-1500)}\naskpass: ${JSON.stringify(world.askpass.calls())}`,
      );
      assert.equal(
        (await verifySignature(world, confirmKey.publicLine, 'confirmed\n', yes.sig!)).code,
        0,
      );
      let calls = confirmCalls();
      assert.equal(calls.length, 1, JSON.stringify(world.askpass.calls()));
      assert.match(calls[0].argv, /^Allow use of key confirm-me\?\n/);
      assert.ok(calls[0].argv.includes(confirmKey.fingerprint), calls[0].argv);

      world.askpass.answer('', 1);
      const no = await world.sign(agent, confirmKey.pub, 'refused\n');
      assert.notEqual(no.code, 0);
      assert.equal(no.sig, undefined);
      assert.equal(confirmCalls().length, 2);

      // A key without --confirm signs without asking.
      r = await world.sign(agent, plainKey.pub, 'no question asked\n');
      assert.equal(r.code, 0, r.stderr);
      calls = confirmCalls();
      assert.equal(calls.length, 2);
    });

    it('a key with --lifetime 2 leaves the agent 2 s after the unlock, and vault changes do not bring it back', async () => {
      await poll(
        'the short-lived key to expire',
        () => listed(world, agent),
        (l) => !l.some((e) => e.startsWith(shortKey.fingerprint)),
        15_000,
      );
      assert.ok((await listed(world, agent)).includes(entry(plainKey, 'plain')));
      // A change to the vault (here: a new key) makes the agent re-read it; the expired key stays out.
      const later = await generate(world, ['-t', 'ed25519'], 'later');
      await poll(
        'the new key',
        () => listed(world, agent),
        (l) => l.includes(entry(later, 'later')),
      );
      assert.ok(
        !(await listed(world, agent)).some((e) => e.startsWith(shortKey.fingerprint)),
        'the expired key came back after a vault change',
      );
      assert.ok(
        !(await world.status(agent)).keys.some((k) => k.fingerprint === shortKey.fingerprint),
      );
    });

    it('the lifetime counts from each unlock: lock, unlock, and the key is back until it expires again', async () => {
      let r = await world.lock(agent);
      assert.equal(r.code, 0, r.stderr);
      r = await world.sshAdd(agent, ['-X'], VAULT_PASS);
      assert.equal(r.code, 0, r.stderr);
      const st = await world.status(agent);
      const k = st.keys.find((x) => x.fingerprint === shortKey.fingerprint);
      assert.ok(k, 'the short-lived key is back after the unlock');
      assert.ok(k.lifetimeLeft !== null && k.lifetimeLeft <= 2, JSON.stringify(k));
      await poll(
        'the short-lived key to expire again',
        () => listed(world, agent),
        (l) => !l.some((e) => e.startsWith(shortKey.fingerprint)),
        15_000,
      );
    });

    it("the agent's default lifetime (-t 2) applies to vault keys, and a vault change does not re-arm it", async () => {
      const short = await world.startAgent({ args: ['-t', '2'] });
      try {
        const r = await world.sshAdd(short, ['-X'], VAULT_PASS);
        assert.equal(r.code, 0, r.stderr);
        const st = await world.status(short);
        const plain = st.keys.find((k) => k.fingerprint === plainKey.fingerprint);
        assert.ok(
          plain && plain.lifetimeLeft !== null && plain.lifetimeLeft <= 2,
          JSON.stringify(st),
        );
        await poll(
          'every key to expire',
          () => listed(world, short),
          (l) => l.length === 0,
          15_000,
        );
        // The agent re-reads the changed vault, and says the expired keys stay out.
        await world.vault(['rename', 'plain', 'plain-renamed']);
        await poll(
          'the re-read',
          async () => short.log(),
          (l) => /vault key "plain-renamed" not loaded: its lifetime is over/.test(l),
        );
        assert.deepEqual(await listed(world, short), []);
      } finally {
        await short.stop();
      }
    });
  },
);
