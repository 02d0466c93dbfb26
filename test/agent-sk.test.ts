// Acceptance: FIDO security keys (ed25519-sk, ecdsa-sk) made and signed by
// OpenSSH's software authenticator sk-dummy.so, through the real ssh-add,
// ssh-keygen -Y, ssh and sshd, against each agent (tsagent and OpenSSH's).

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AGENTS, RunningAgent, startAgent } from './fixtures/agent';
import { agentWithKeyDir } from './fixtures/agent-keys';
import { describeKey, KeyType, TestKey } from './fixtures/keys';
import {
  SSH,
  SSHD,
  SSH_ADD,
  SSH_KEYGEN,
  baseEnv,
  mkTemp,
  rmTemp,
  run,
  waitFor,
} from './fixtures/run';
import { SK_DUMMY, SK_KINDS, certify, makeSkKey, skipUnlessSk } from './fixtures/sk';
import { Sshd, sshLogin, startSshd } from './fixtures/sshd';

const skip = skipUnlessSk([SSH, SSHD]);

const SK_TYPES: Record<string, KeyType> = {
  'ed25519-sk': {
    name: 'ed25519-sk',
    keygenArgs: [],
    label: 'ED25519-SK',
    sshType: 'sk-ssh-ed25519@openssh.com',
  },
  'ecdsa-sk': {
    name: 'ecdsa-sk',
    keygenArgs: [],
    label: 'ECDSA-SK',
    sshType: 'sk-ecdsa-sha2-nistp256@openssh.com',
  },
};

let dir: string;
let sshd: Sshd;
let caSshd: Sshd;
const keys: Record<string, TestKey> = {};

before(async () => {
  if (skip) return;
  dir = mkTemp();
  for (const kind of SK_KINDS) {
    const priv = await makeSkKey(dir, kind);
    keys[kind] = await describeKey(SK_TYPES[kind], priv, `${kind} test`);
  }
  // Certified copies, for the CA-trusting sshd.
  for (const kind of SK_KINDS) {
    const priv = await makeSkKey(dir, kind, `cert_${kind}`);
    keys[`${kind}-cert`] = await describeKey(SK_TYPES[kind], priv, `${kind} test`);
    await certify(dir, priv, os.userInfo().username);
  }
  const line = (k: TestKey) => k.publicLine.split(' ').slice(0, 2).join(' ');
  [sshd, caSshd] = await Promise.all([
    startSshd({ authorizedKeys: SK_KINDS.map((k) => `${line(keys[k])}\n`).join('') }),
    startSshd({ authorizedKeys: '', config: [`TrustedUserCAKeys ${path.join(dir, 'ca.pub')}`] }),
  ]);
});

after(async () => {
  await sshd?.stop();
  await caSshd?.stop();
  rmTemp(dir);
});

for (const agent of AGENTS) {
  describe(`security keys (sk-dummy) in ${agent.name}`, { skip }, () => {
    const a = agentWithKeyDir(agent, { SSH_SK_PROVIDER: SK_DUMMY });
    const { env, sshAdd, loadOnly } = a;

    for (const kind of SK_KINDS) {
      it(`${kind}: ssh-add adds it; -l and -L list it`, async () => {
        const k = keys[kind];
        const out = await loadOnly(k);
        assert.match(out, /Identity added: /);
        const l = await sshAdd(['-l']);
        assert.equal(l.code, 0, l.stderr);
        assert.equal(l.stdout.trim(), k.listLine);
        assert.match(l.stdout, new RegExp(`\\(${SK_TYPES[kind].label}\\)`));
        const L = await sshAdd(['-L']);
        assert.equal(L.stdout.trim(), k.publicLine);
      });

      it(`${kind}: ssh-keygen -Y sign with the key only in the agent; -Y verify accepts it`, async () => {
        const k = keys[kind];
        await loadOnly(k);
        const msg = path.join(a.dir, `msg-${kind}`);
        fs.writeFileSync(msg, 'signed by a security key in the agent\n');
        const pub = path.join(a.dir, `${path.basename(k.priv)}.pub`);
        const s = await run(SSH_KEYGEN, ['-Y', 'sign', '-n', 'file', '-f', pub, msg], {
          env: env(),
          timeout: 30_000,
        });
        assert.equal(s.code, 0, s.stderr);
        const signers = path.join(a.dir, 'allowed_signers');
        fs.writeFileSync(signers, `alice ${k.publicLine}\n`);
        const v = await run(
          SSH_KEYGEN,
          ['-Y', 'verify', '-n', 'file', '-f', signers, '-I', 'alice', '-s', `${msg}.sig`],
          { env: env(), input: fs.readFileSync(msg, 'utf8') },
        );
        assert.equal(v.code, 0, v.stderr);
        assert.match(
          v.stdout,
          new RegExp(`Good "file" signature for alice with ${SK_TYPES[kind].label} key`),
        );
      });

      it(`${kind}: ssh logs in to sshd with the key only in the agent`, async () => {
        const k = keys[kind];
        await loadOnly(k);
        const r = await sshLogin(sshd, a.sock, ['echo', 'logged-in']);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout, 'logged-in\n');
        assert.ok(
          r.stderr.includes(
            `Server accepts key: ${k.comment} ${SK_TYPES[kind].label} ${k.fingerprint} authenticator agent`,
          ),
          r.stderr,
        );
      });

      it(`${kind}: a certificate for it logs in to a CA-trusting sshd`, async () => {
        const k = keys[`${kind}-cert`];
        const out = await loadOnly(k, true);
        assert.match(out, /Certificate added: /);
        const L = await sshAdd(['-L']);
        assert.equal(L.stdout.split('\n').filter(Boolean).length, 2, 'the key and its certificate');
        const r = await sshLogin(caSshd, a.sock, ['echo', 'logged-in']);
        assert.equal(r.code, 0, r.stderr);
        const accepted = `Server accepts key: ${k.comment} ${SK_TYPES[kind].label}-CERT ${k.fingerprint} authenticator agent`;
        assert.ok(r.stderr.includes(accepted), r.stderr);
      });

      it(`${kind}: ssh-add -d removes it, -D removes all`, async () => {
        const k = keys[kind];
        await loadOnly(k);
        const d = await sshAdd(['-d', `${path.basename(k.priv)}.pub`]);
        assert.equal(d.code, 0, d.stderr);
        assert.match(d.stderr, /Identity removed/);
        assert.equal((await sshAdd(['-l'])).code, 1, 'no identities');
        await loadOnly(k);
        assert.equal((await sshAdd(['-D'])).code, 0);
        const l = await sshAdd(['-l']);
        assert.equal(l.code, 1);
        assert.match(l.stdout, /The agent has no identities/);
      });
    }
  });
}

for (const agent of AGENTS) {
  describe(`security keys: bad input to ${agent.name}`, { skip }, () => {
    let a: RunningAgent;
    let kdir: string;
    let fake: string;
    before(async () => {
      kdir = mkTemp();
      fs.mkdirSync(path.join(kdir, 'allowed'));
      fake = path.join(kdir, 'allowed', 'not-fido.so');
      fs.writeFileSync(fake, 'not a library\n');
      a = await startAgent(agent, { args: ['-P', `${kdir}/allowed/*`] });
    });
    after(async () => {
      await a?.stop();
      rmTemp(kdir);
    });
    const env = (provider: string) => baseEnv({ SSH_AUTH_SOCK: a.sock, SSH_SK_PROVIDER: provider });
    const sshAdd = (args: string[], provider = SK_DUMMY) =>
      run(SSH_ADD, args, { env: env(provider), cwd: kdir, timeout: 30_000 });

    it('a provider outside the allow-list (-P) is refused, and the agent keeps serving', async () => {
      const r = await sshAdd([keys['ed25519-sk'].priv]);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /agent refused operation/);
      const l = await sshAdd(['-l']);
      assert.equal(l.code, 1);
      assert.match(l.stdout, /The agent has no identities/);
    });

    it('a key whose provider fails does not sign, and the agent keeps serving', async () => {
      const k = keys['ecdsa-sk'];
      const r = await sshAdd([k.priv], fake);
      assert.equal(r.code, 0, r.stderr);
      const msg = path.join(kdir, 'msg');
      fs.writeFileSync(msg, 'x\n');
      const s = await run(SSH_KEYGEN, ['-Y', 'sign', '-n', 'file', '-f', k.pub, msg], {
        env: env(fake),
        timeout: 30_000,
      });
      assert.notEqual(s.code, 0);
      assert.ok(!fs.existsSync(`${msg}.sig`));
      const l = await sshAdd(['-l']);
      assert.equal(l.code, 0);
      assert.equal(l.stdout.trim(), k.listLine);
      assert.equal((await sshAdd(['-D'])).code, 0);
    });
  });
}

for (const agent of AGENTS) {
  describe(`security keys: the touch notice and forwarded adds in ${agent.name}`, { skip }, () => {
    let kdir: string;
    before(() => (kdir = mkTemp()));
    after(() => rmTemp(kdir));

    it('while a key that needs a touch signs, askpass shows "Confirm user presence" (tsagent: and what to do)', async () => {
      const log = path.join(kdir, 'notice.log');
      const notifier = path.join(kdir, 'notify.sh');
      // Ignores SIGTERM: the agent takes the notice down as soon as the signature is made.
      fs.writeFileSync(
        notifier,
        `#!/bin/sh\ntrap '' TERM\nprintf '%s|%s\\n' "$SSH_ASKPASS_PROMPT" "$1" >> '${log}'\n`,
        {
          mode: 0o755,
        },
      );
      const a = await startAgent(agent, {
        env: { SSH_ASKPASS: notifier, SSH_ASKPASS_REQUIRE: 'force' },
      });
      try {
        const env = baseEnv({ SSH_AUTH_SOCK: a.sock, SSH_SK_PROVIDER: SK_DUMMY });
        const k = keys['ed25519-sk'];
        assert.equal((await run(SSH_ADD, [k.priv], { env })).code, 0);
        const msg = path.join(kdir, 'msg');
        fs.writeFileSync(msg, 'x\n');
        const s = await run(SSH_KEYGEN, ['-Y', 'sign', '-n', 'file', '-f', k.pub, msg], {
          env,
          timeout: 30_000,
        });
        assert.equal(s.code, 0, s.stderr);
        const lines = await waitFor('the notice', () =>
          fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : '',
        );
        assert.match(
          lines,
          // A fingerprint may hold '+': escaped, or the test fails on one key in several.
          new RegExp(
            `^none\\|Confirm user presence for key ED25519-SK ${k.fingerprint.replace(/[+/]/g, '\\$&')}`,
            'm',
          ),
        );
        if (agent.kind === 'tsagent') assert.match(lines, /touch your security key/);
      } finally {
        await a.stop();
      }
    });

    // OpenSSH 9.4's rule, which Debian 12's 9.2 has too (CVE-2023-38408).
    for (const args of [[], ['-O', 'allow-remote-pkcs11']])
      it(`ssh-add over a forwarded agent${args.length ? ' with -O allow-remote-pkcs11' : ''}: ${
        args.length && agent.kind === 'openssh' ? 'added' : 'refused'
      }`, async () => {
        const a = await startAgent(agent, { args });
        try {
          const env = baseEnv({ SSH_AUTH_SOCK: a.sock, SSH_SK_PROVIDER: SK_DUMMY });
          assert.equal((await run(SSH_ADD, [keys['ed25519-sk'].priv], { env })).code, 0);
          const remote = ['env', `SSH_SK_PROVIDER=${SK_DUMMY}`, SSH_ADD, keys['ecdsa-sk'].priv];
          const r = await sshLogin(sshd, a.sock, remote, ['-A']);
          // tsagent refuses every change from a forwarded connection (not only those naming a provider).
          const allowed = args.length > 0 && agent.kind === 'openssh';
          if (allowed) {
            assert.equal(r.code, 0, r.stderr);
            assert.match(r.stderr, /Identity added/);
          } else {
            assert.notEqual(r.code, 0);
            assert.match(r.stderr, /agent refused operation/);
          }
          const l = await run(SSH_ADD, ['-l'], { env });
          assert.equal(l.stdout.trim().split('\n').length, allowed ? 2 : 1, l.stdout);
        } finally {
          await a.stop();
        }
      });
  });
}
