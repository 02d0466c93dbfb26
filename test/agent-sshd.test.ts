// Acceptance: a real `ssh` login to a test sshd on a loopback port, with the
// key (or key + certificate) only in the agent.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AGENTS } from './fixtures/agent';
import { agentWithKeyDir } from './fixtures/agent-keys';
import { KEY_TYPES, TestKey, keyBlobText, keyType, makeKey } from './fixtures/keys';
import { SSH, SSHD, SSH_ADD, SSH_KEYGEN, mkTemp, rmTemp, run, skipUnless } from './fixtures/run';
import { Sshd, sshLogin, startSshd } from './fixtures/sshd';

const skip = skipUnless([SSH, SSHD, SSH_ADD, SSH_KEYGEN]);

let dir: string;
/** One sshd trusting every plain key, one trusting only the CA (empty authorized_keys). */
let plainSshd: Sshd;
let caSshd: Sshd;
let ca: TestKey;
const keys: TestKey[] = [];
const CERT_TYPES = ['ed25519', 'ecdsa256', 'rsa2048'].map(keyType);
const certKeys: TestKey[] = [];

before(async () => {
  if (skip) return;
  dir = mkTemp();
  await Promise.all([
    ...KEY_TYPES.map(async (t, i) => (keys[i] = await makeKey(dir, t))),
    ...CERT_TYPES.map(
      async (t, i) => (certKeys[i] = await makeKey(dir, t, { name: `${t.name}-certified` })),
    ),
    (async () => (ca = await makeKey(dir, keyType('ed25519'), { name: 'user-ca' })))(),
  ]);
  for (const k of certKeys) {
    const r = await run(SSH_KEYGEN, [
      '-q',
      '-s',
      ca.priv,
      '-I',
      `cert-${k.type.name}`,
      '-n',
      'root,' + process.env.USER,
      k.pub,
    ]);
    assert.equal(r.code, 0, r.stderr);
  }
  [plainSshd, caSshd] = await Promise.all([
    startSshd({ authorizedKeys: keys.map((k) => `${keyBlobText(k)} ${k.comment}\n`).join('') }),
    startSshd({ authorizedKeys: '', config: [`TrustedUserCAKeys ${ca.pub}`] }),
  ]);
});

after(async () => {
  await plainSshd?.stop();
  await caSshd?.stop();
  rmTemp(dir);
});

for (const agent of AGENTS) {
  describe(`ssh login with keys in ${agent.name}`, { skip }, () => {
    const ka = agentWithKeyDir(agent);
    const { sshAdd, loadOnly } = ka;

    it('an empty agent does not log in', async () => {
      assert.equal((await sshAdd(['-D'])).code, 0);
      const r = await sshLogin(plainSshd, ka.sock, ['echo', 'logged-in']);
      assert.equal(r.code, 255, r.stderr);
      assert.match(r.stderr, /Permission denied \(publickey\)/);
    });

    for (const [i, t] of KEY_TYPES.entries()) {
      // Logins are slow on a loaded machine: ECDSA P-384/P-521 signatures are
      // covered by agent-sign.test.ts.
      if (t.name === 'ecdsa384' || t.name === 'ecdsa521') continue;
      it(`${t.name}: ssh logs in with the key only in the agent`, async () => {
        const k = keys[i];
        await loadOnly(k);
        const r = await sshLogin(plainSshd, ka.sock, ['echo', 'logged-in']);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout, 'logged-in\n');
        assert.ok(
          r.stderr.includes(`Server accepts key: ${k.comment} ${t.label} ${k.fingerprint} agent`),
          r.stderr,
        );
        assert.match(
          r.stderr,
          /Authenticated to 127\.0\.0\.1 \(\[127\.0\.0\.1\]:\d+\) using "publickey"/,
        );
        assert.ok(
          plainSshd.log().includes(`Accepted publickey for ${plainSshd.user} from 127.0.0.1`),
        );
        assert.ok(plainSshd.log().includes(`${t.label} ${k.fingerprint}`));
      });
    }

    for (const [i, t] of CERT_TYPES.entries()) {
      it(`${t.name} certificate: ssh-add adds key + cert, sshd trusting the CA accepts it`, async () => {
        const k = certKeys[i];
        const base = path.basename(k.priv);
        const out = await loadOnly(k, true);
        assert.equal(
          out,
          `Identity added: ${base} (${k.comment})\nCertificate added: ${base}-cert.pub (cert-${t.name})\n`,
        );
        const l = await sshAdd(['-l']);
        assert.equal(l.code, 0);
        const [bits, fp] = k.listLine.split(' ');
        assert.equal(
          l.stdout,
          `${bits} ${fp} ${k.comment} (${t.label})\n${bits} ${fp} ${k.comment} (${t.label}-CERT)\n`,
        );
        const L = await sshAdd(['-L']);
        const certLine = fs
          .readFileSync(`${k.priv}-cert.pub`, 'utf8')
          .split(' ')
          .slice(0, 2)
          .join(' ');
        assert.equal(L.stdout, `${keyBlobText(k)} ${k.comment}\n${certLine} ${k.comment}\n`);

        const r = await sshLogin(caSshd, ka.sock, ['echo', 'logged-in']);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout, 'logged-in\n');
        assert.ok(
          r.stderr.includes(
            `Server accepts key: ${k.comment} ${t.label}-CERT ${k.fingerprint} agent`,
          ),
          r.stderr,
        );
        assert.ok(
          caSshd
            .log()
            .includes(
              `${t.label}-CERT ${k.fingerprint} ID cert-${t.name} (serial 0) CA ED25519 ${ca.fingerprint}`,
            ),
          caSshd.log(),
        );

        // Without the certificate, the same key is refused by that sshd.
        if (i > 0) return;
        const d = await sshAdd(['-d', `${base}-cert.pub`]);
        assert.equal(d.code, 0, d.stderr);
        const l2 = await sshAdd(['-l']);
        assert.equal(l2.stdout, `${k.listLine}\n`);
        const r2 = await sshLogin(caSshd, ka.sock, ['true']);
        assert.equal(r2.code, 255);
      });
    }
  });
}
