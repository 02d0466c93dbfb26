// Acceptance: PKCS#11 tokens (SoftHSM2) through the real ssh-add -s/-e, ssh
// and sshd, against each agent (tsagent and OpenSSH's): the PIN from an
// SSH_ASKPASS stand-in, constraints on every key of the token, and bad input
// (a provider outside -P, a wrong PIN) refused while the agent keeps serving.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AGENTS, RunningAgent, startAgent } from './fixtures/agent';
import { Askpass } from './fixtures/keys';
import { SSH, SSHD, SSH_ADD, baseEnv, mkTemp, rmTemp, run, skipUnless } from './fixtures/run';
import {
  SOFTHSM_LIB,
  SoftToken,
  TOKEN_PIN,
  makeSoftToken,
  skipUnlessSoftHsm,
  sshBlob,
} from './fixtures/softhsm';
import { Sshd, sshLogin, startSshd } from './fixtures/sshd';

const skip = skipUnlessSoftHsm() || skipUnless([SSH, SSHD, SSH_ADD]);

let dir: string;
let token: SoftToken;
/** One sshd per token key, each trusting only that key. */
const sshds: Record<string, Sshd> = {};
const pubLine = (k: SoftToken['keys'][number]) => {
  const blob = sshBlob(k.publicKey);
  return `${blob.subarray(4, 4 + blob.readUInt32BE(0)).toString()} ${blob.toString('base64')}`;
};

before(async () => {
  if (skip) return;
  dir = mkTemp();
  token = await makeSoftToken(dir);
  for (const k of token.keys)
    sshds[k.label] = await startSshd({ authorizedKeys: `${pubLine(k)}\n` });
  sshds.both = await startSshd({
    authorizedKeys: token.keys.map((k) => `${pubLine(k)}\n`).join(''),
  });
});

after(async () => {
  for (const s of Object.values(sshds)) await s.stop();
  rmTemp(dir);
});

for (const agent of AGENTS) {
  describe(`PKCS#11 (SoftHSM2) in ${agent.name}`, { skip }, () => {
    let a: RunningAgent;
    let adir: string;
    let askpass: Askpass;
    before(async () => {
      adir = mkTemp();
      askpass = new Askpass(adir);
      a = await startAgent(agent, { env: { SOFTHSM2_CONF: token.env.SOFTHSM2_CONF } });
    });
    after(async () => {
      await a?.stop();
      rmTemp(adir);
    });
    const sshAdd = (args: string[]) =>
      run(SSH_ADD, args, {
        env: baseEnv({ SSH_AUTH_SOCK: a.sock, ...askpass.env({ DISPLAY: undefined }) }),
        timeout: 60_000,
      });
    const listed = async () => (await sshAdd(['-L'])).stdout.trim().split('\n').filter(Boolean);

    it('ssh-add -s loads every token key with the PIN from askpass; -l and -L list them', async () => {
      askpass.answer(TOKEN_PIN);
      const r = await sshAdd(['-s', SOFTHSM_LIB]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /Card added: /);
      assert.match(askpass.calls()[0]?.argv ?? '', /PKCS#11/);
      const l = await sshAdd(['-l']);
      assert.equal(l.code, 0, l.stderr);
      assert.match(l.stdout, /^2048 SHA256:\S+ rsa-key \(RSA\)$/m);
      assert.match(l.stdout, /^256 SHA256:\S+ ec-key \(ECDSA\)$/m);
      const L = await listed();
      for (const k of token.keys)
        assert.ok(
          L.some((line) => line.startsWith(pubLine(k))),
          k.label,
        );
    });

    it('a second ssh-add -s of a loaded provider is refused', async () => {
      askpass.answer(TOKEN_PIN);
      const r = await sshAdd(['-s', SOFTHSM_LIB]);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /Could not add card/);
      assert.equal((await listed()).length, 2);
    });

    for (const label of ['rsa-key', 'ec-key']) {
      it(`ssh logs in to sshd with the token's ${label}`, async () => {
        const r = await sshLogin(sshds[label], a.sock, ['echo', 'logged-in']);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout, 'logged-in\n');
        assert.match(r.stderr, new RegExp(`Server accepts key: ${label} `));
      });
    }

    it('ssh-add -e unloads the provider and its keys', async () => {
      const r = await sshAdd(['-e', SOFTHSM_LIB]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /Card removed: /);
      const l = await sshAdd(['-l']);
      assert.equal(l.code, 1);
      assert.match(l.stdout, /The agent has no identities/);
      const again = await sshAdd(['-e', SOFTHSM_LIB]);
      assert.notEqual(again.code, 0, 'not loaded any more');
    });

    it('a wrong PIN is refused, and the agent keeps serving (and loads with the right one)', async () => {
      askpass.answer('0000');
      const r = await sshAdd(['-s', SOFTHSM_LIB]);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /Could not add card/);
      assert.equal((await sshAdd(['-l'])).code, 1);
      if (agent.kind === 'tsagent') assert.ok(!a.output().stderr.includes('0000'));
      askpass.answer(TOKEN_PIN);
      const ok = await sshAdd(['-s', SOFTHSM_LIB]);
      assert.equal(ok.code, 0, ok.stderr);
      assert.equal((await sshAdd(['-e', SOFTHSM_LIB])).code, 0);
    });

    it('-c applies to every key of the token: a refused confirmation refuses the login', async () => {
      askpass.answer(TOKEN_PIN);
      const r = await sshAdd(['-c', '-s', SOFTHSM_LIB]);
      assert.equal(r.code, 0, r.stderr);
      // The agent asks through its own SSH_ASKPASS (none here): unconfirmed, so refused.
      for (const label of ['rsa-key', 'ec-key']) {
        const login = await sshLogin(sshds[label], a.sock, ['true']);
        assert.notEqual(login.code, 0, `${label}: ${login.stderr}`);
      }
      assert.equal((await sshAdd(['-e', SOFTHSM_LIB])).code, 0);
    });

    it('-h applies to every key of the token: each logs in to its host only', async () => {
      // Each key may only go to the rsa-key sshd; the sshd trusting both has another host key.
      const kh = path.join(adir, 'known_hosts');
      fs.writeFileSync(kh, `127.0.0.1 ${sshds['rsa-key'].hostKey}\n`);
      askpass.answer(TOKEN_PIN);
      const r = await sshAdd(['-H', kh, '-h', '127.0.0.1', '-s', SOFTHSM_LIB]);
      assert.equal(r.code, 0, r.stderr);
      const ok = await sshLogin(sshds['rsa-key'], a.sock, ['true']);
      assert.equal(ok.code, 0, ok.stderr);
      const other = await sshLogin(sshds.both, a.sock, ['true']);
      assert.equal(other.code, 255, other.stderr);
      assert.match(other.stderr, /Permission denied/);
      assert.equal((await sshAdd(['-e', SOFTHSM_LIB])).code, 0);
    });

    it('-t applies to every key of the token', async () => {
      askpass.answer(TOKEN_PIN);
      const r = await sshAdd(['-t', '1', '-s', SOFTHSM_LIB]);
      assert.equal(r.code, 0, r.stderr);
      const deadline = Date.now() + 20_000;
      while ((await sshAdd(['-l'])).code === 0 && Date.now() < deadline)
        await new Promise((res) => setTimeout(res, 300));
      assert.equal((await sshAdd(['-l'])).code, 1, 'both keys expired');
      await sshAdd(['-e', SOFTHSM_LIB]);
    });
  });

  describe(`PKCS#11 bad input to ${agent.name}`, { skip }, () => {
    let a: RunningAgent;
    let adir: string;
    let askpass: Askpass;
    before(async () => {
      adir = mkTemp();
      askpass = new Askpass(adir);
      a = await startAgent(agent, {
        args: ['-P', '/nonexistent/*'],
        env: { SOFTHSM2_CONF: token.env.SOFTHSM2_CONF },
      });
    });
    after(async () => {
      await a?.stop();
      rmTemp(adir);
    });

    it('a provider outside the allow-list (-P) is refused, and the agent keeps serving', async () => {
      askpass.answer(TOKEN_PIN);
      const env = baseEnv({ SSH_AUTH_SOCK: a.sock, ...askpass.env() });
      const r = await run(SSH_ADD, ['-s', SOFTHSM_LIB], { env, timeout: 60_000 });
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /Could not add card/);
      const l = await run(SSH_ADD, ['-l'], { env });
      assert.equal(l.code, 1);
      assert.match(l.stdout, /The agent has no identities/);
      if (agent.kind === 'tsagent') assert.ok(fs.existsSync(path.dirname(a.sock)));
    });
  });
}
