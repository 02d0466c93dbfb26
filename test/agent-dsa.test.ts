// ssh-dss keys as OpenSSH 9.2 holds them (issue 12): ssh-add, -l/-L/-d, a
// certificate, ssh-keygen -Y sign/verify with the key only in the agent, and a
// real sshd login with PubkeyAcceptedAlgorithms +ssh-dss on both sides, each
// run the same against tsagent and OpenSSH's ssh-agent.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AGENTS } from './fixtures/agent';
import { agentWithKeyDir } from './fixtures/agent-keys';
import { KeyType, TestKey, keyBlobText, keyType, makeKey } from './fixtures/keys';
import {
  SSH,
  SSHD,
  SSH_ADD,
  SSH_KEYGEN,
  baseEnv,
  mkTemp,
  rmTemp,
  run,
  skipUnless,
} from './fixtures/run';
import { Sshd, sshLogin, startSshd } from './fixtures/sshd';

const skip = skipUnless([SSH, SSHD, SSH_ADD, SSH_KEYGEN]);

const DSA: KeyType = { name: 'dsa', keygenArgs: ['-t', 'dsa'], label: 'DSA', sshType: 'ssh-dss' };
const DSS_ALGS = 'PubkeyAcceptedAlgorithms=+ssh-dss,ssh-dss-cert-v01@openssh.com';

let dir: string;
let key: TestKey;
let certKey: TestKey;
let ca: TestKey;
let plainSshd: Sshd;
let caSshd: Sshd;

before(async () => {
  if (skip) return;
  dir = mkTemp();
  [key, certKey, ca] = await Promise.all([
    makeKey(dir, DSA, { name: 'dsa', comment: 'dsa@sparrow' }),
    makeKey(dir, DSA, { name: 'dsa-certified', comment: 'dsa-cert@sparrow' }),
    makeKey(dir, keyType('ed25519'), { name: 'user-ca' }),
  ]);
  const r = await run(SSH_KEYGEN, [
    '-q',
    '-s',
    ca.priv,
    '-I',
    'cert-dsa',
    '-n',
    'root,' + process.env.USER,
    certKey.pub,
  ]);
  assert.equal(r.code, 0, r.stderr);
  const algs = 'PubkeyAcceptedAlgorithms +ssh-dss,ssh-dss-cert-v01@openssh.com';
  [plainSshd, caSshd] = await Promise.all([
    startSshd({ authorizedKeys: `${keyBlobText(key)} ${key.comment}\n`, config: [algs] }),
    startSshd({ authorizedKeys: '', config: [algs, `TrustedUserCAKeys ${ca.pub}`] }),
  ]);
});

after(async () => {
  await plainSshd?.stop();
  await caSshd?.stop();
  rmTemp(dir);
});

for (const agent of AGENTS) {
  describe(`ssh-dss keys in ${agent.name}`, { skip }, () => {
    const ka = agentWithKeyDir(agent);
    const { sshAdd, loadOnly } = ka;

    it('ssh-add, -l, -L, -d', async () => {
      const out = await loadOnly(key);
      assert.equal(out, `Identity added: dsa (${key.comment})\n`);
      const l = await sshAdd(['-l']);
      assert.equal(l.stdout, `${key.listLine}\n`);
      assert.match(key.listLine, /^1024 SHA256:\S+ dsa@sparrow \(DSA\)$/);
      const L = await sshAdd(['-L']);
      assert.equal(L.stdout, `${keyBlobText(key)} ${key.comment}\n`);
      const d = await sshAdd(['-d', 'dsa.pub']);
      assert.equal(d.code, 0, d.stderr);
      assert.equal((await sshAdd(['-l'])).stdout, 'The agent has no identities.\n');
    });

    it('ssh-keygen -Y sign with the key only in the agent; -Y verify accepts it', async () => {
      await loadOnly(key);
      const data = path.join(ka.dir, 'message');
      fs.writeFileSync(data, 'signed by a DSA key in the agent\n');
      const s = await run(
        SSH_KEYGEN,
        ['-Y', 'sign', '-f', path.join(ka.dir, 'dsa.pub'), '-n', 'file', data],
        {
          env: baseEnv({ SSH_AUTH_SOCK: ka.sock }),
          cwd: ka.dir,
        },
      );
      assert.equal(s.code, 0, s.stderr);
      const signers = path.join(ka.dir, 'allowed_signers');
      fs.writeFileSync(signers, `dsa@test ${keyBlobText(key)}\n`);
      const v = await run(
        SSH_KEYGEN,
        ['-Y', 'verify', '-f', signers, '-I', 'dsa@test', '-n', 'file', '-s', `${data}.sig`],
        { input: fs.readFileSync(data, 'utf8') },
      );
      assert.equal(v.code, 0, v.stderr);
      assert.equal(
        v.stdout,
        `Good "file" signature for dsa@test with DSA key ${key.fingerprint}\n`,
      );
    });

    it('ssh logs in to an sshd that accepts ssh-dss, with the key only in the agent', async () => {
      await loadOnly(key);
      const r = await sshLogin(plainSshd, ka.sock, ['echo', 'logged-in'], ['-o', DSS_ALGS]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'logged-in\n');
      assert.ok(
        r.stderr.includes(`Server accepts key: ${key.comment} DSA ${key.fingerprint} agent`),
        r.stderr,
      );
      assert.ok(plainSshd.log().includes(`DSA ${key.fingerprint}`), plainSshd.log());
    });

    it('a DSA certificate: added with its key, listed, and accepted by an sshd trusting the CA', async () => {
      const out = await loadOnly(certKey, true);
      assert.equal(
        out,
        `Identity added: dsa-certified (${certKey.comment})\nCertificate added: dsa-certified-cert.pub (cert-dsa)\n`,
      );
      const [bits, fp] = certKey.listLine.split(' ');
      assert.equal(
        (await sshAdd(['-l'])).stdout,
        `${bits} ${fp} ${certKey.comment} (DSA)\n${bits} ${fp} ${certKey.comment} (DSA-CERT)\n`,
      );
      const r = await sshLogin(caSshd, ka.sock, ['echo', 'logged-in'], ['-o', DSS_ALGS]);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(
        r.stderr.includes(
          `Server accepts key: ${certKey.comment} DSA-CERT ${certKey.fingerprint} agent`,
        ),
        r.stderr,
      );
    });
  });
}
