// PKCS#11 through OpenSSH's real ssh-pkcs11-helper with a SoftHSM2 token
// (src/agent/pkcs11-helper.ts): load with the PIN, sign with every RSA flag and
// with ECDSA, verify with node:crypto against the keys imported into the token;
// and the failures: wrong PIN, no PIN, bad provider, a removed token, a helper
// that is missing, hangs, dies or garbles.

import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  DEFAULT_PKCS11_HELPER,
  Pkcs11Provider,
  SSH_AGENT_RSA_SHA2_256,
  SSH_AGENT_RSA_SHA2_512,
  pkcs11HelperPath,
} from '../src/agent/pkcs11-helper';
import { WireReader } from '../src/ssh/wire';
import { alive, mkTemp, rmTemp, waitFor } from './fixtures/run';
import {
  SOFTHSM_LIB,
  SoftToken,
  TOKEN_PIN,
  makeSoftToken,
  skipUnlessSoftHsm,
  sshBlob,
} from './fixtures/softhsm';

const pin = (s = TOKEN_PIN) => Buffer.from(s);

/** Our child processes running ssh-pkcs11-helper (comm is cut to 15 characters). */
function helperChildren(): number[] {
  const pids: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === process.pid && comm === 'ssh-pkcs11-help') pids.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/** Verifies an SSH signature blob with node:crypto; returns the algorithm name. */
function verifySsh(pub: crypto.KeyObject, data: Buffer, sigBlob: Buffer): string {
  const r = new WireReader(sigBlob);
  const alg = r.text();
  const sig = r.string();
  r.end();
  if (alg.startsWith('ecdsa-')) {
    const inner = new WireReader(sig);
    const p = (b: Buffer) => Buffer.concat([Buffer.alloc(32 - b.length), b]);
    const p1363 = Buffer.concat([p(inner.mpint()), p(inner.mpint())]);
    inner.end();
    assert.ok(crypto.verify('sha256', data, { key: pub, dsaEncoding: 'ieee-p1363' }, p1363), alg);
  } else {
    const hash = { 'ssh-rsa': 'sha1', 'rsa-sha2-256': 'sha256', 'rsa-sha2-512': 'sha512' }[alg];
    assert.ok(hash, alg);
    assert.equal(sig.length, 256, 'padded to the modulus length');
    assert.ok(crypto.verify(hash, data, pub, sig), alg);
  }
  return alg;
}

describe('ssh-pkcs11-helper client with SoftHSM2', { skip: skipUnlessSoftHsm() }, () => {
  let dir: string;
  let token: SoftToken;
  before(async () => {
    dir = mkTemp();
    token = await makeSoftToken(dir);
  });
  after(() => rmTemp(dir));

  it('loads the token keys with the PIN and signs with each, verified by node:crypto', async () => {
    const loaded = await Pkcs11Provider.load(SOFTHSM_LIB, pin(), { env: token.env });
    assert.ok(loaded.ok, JSON.stringify(loaded));
    const p = loaded.value;
    try {
      assert.deepEqual(p.keys.map((k) => k.label).sort(), ['ec-key', 'rsa-key']);
      for (const tk of token.keys) {
        const blob = sshBlob(tk.publicKey);
        assert.ok(
          p.keys.some((k) => k.blob.equals(blob) && k.label === tk.label),
          tk.label,
        );
        const data = crypto.randomBytes(64);
        const flagsToTry =
          tk.label === 'rsa-key' ? [0, SSH_AGENT_RSA_SHA2_256, SSH_AGENT_RSA_SHA2_512] : [0];
        const algs: string[] = [];
        for (const flags of flagsToTry) {
          const sig = await p.sign(blob, data, flags);
          assert.ok(sig.ok, JSON.stringify(sig));
          algs.push(verifySsh(tk.publicKey, data, sig.value));
        }
        assert.deepEqual(
          algs,
          tk.label === 'rsa-key'
            ? ['ssh-rsa', 'rsa-sha2-256', 'rsa-sha2-512']
            : ['ecdsa-sha2-nistp256'],
        );
      }
      const other = sshBlob(crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey);
      const refused = await p.sign(other, Buffer.from('x'), 0);
      assert.ok(!refused.ok);
      assert.equal(refused.error.kind, 'refused');
    } finally {
      await p.unload();
    }
    assert.ok(!p.running, 'unload stops the helper');
    assert.deepEqual(helperChildren(), []);
    const afterUnload = await p.sign(p.keys[0].blob, Buffer.from('x'), 0);
    assert.ok(!afterUnload.ok);
    assert.equal(afterUnload.error.kind, 'died');
  });

  it('a wrong PIN is "wrong-pin", the PIN in no message, and no helper left', async () => {
    const secret = '98765-not-the-pin';
    const buf = pin(secret);
    const res = await Pkcs11Provider.load(SOFTHSM_LIB, buf, { env: token.env });
    assert.ok(!res.ok);
    assert.equal(res.error.kind, 'wrong-pin');
    assert.ok(!res.error.message.includes(secret));
    assert.ok(
      buf.every((b) => b === 0),
      'the PIN buffer is wiped',
    );
  });

  it('no PIN finds no keys: a provider error', async () => {
    const res = await Pkcs11Provider.load(SOFTHSM_LIB, pin(''), { env: token.env });
    assert.ok(!res.ok);
    assert.equal(res.error.kind, 'provider');
    assert.match(res.error.message, /no keys/);
  });

  it('a provider that is not there, or not PKCS#11, is a provider error', async () => {
    const notLib = path.join(dir, 'text.so');
    fs.writeFileSync(notLib, 'not a library\n');
    for (const provider of [path.join(dir, 'missing.so'), notLib]) {
      const res = await Pkcs11Provider.load(provider, pin(), { env: token.env });
      assert.ok(!res.ok, provider);
      assert.equal(res.error.kind, 'provider');
    }
  });

  it('two providers get two helpers', async () => {
    const a = await Pkcs11Provider.load(SOFTHSM_LIB, pin(), { env: token.env });
    const b = await Pkcs11Provider.load(SOFTHSM_LIB, pin(), { env: token.env });
    assert.ok(a.ok && b.ok);
    assert.notEqual(a.value.pid, b.value.pid);
    await a.value.unload();
    assert.ok(b.value.running, 'unloading one leaves the other');
    const sig = await b.value.sign(b.value.keys[0].blob, Buffer.from('x'), 0);
    assert.ok(sig.ok);
    await b.value.unload();
  });

  it('a helper that dies is "died" for the next signature', async () => {
    const loaded = await Pkcs11Provider.load(SOFTHSM_LIB, pin(), { env: token.env });
    assert.ok(loaded.ok);
    const p = loaded.value;
    process.kill(p.pid!, 'SIGKILL');
    await p.exited;
    const res = await p.sign(p.keys[0].blob, Buffer.from('x'), 0);
    assert.ok(!res.ok);
    assert.equal(res.error.kind, 'died');
    assert.match(res.error.message, /killed by SIGKILL/);
    await p.unload();
  });

  it('a removed token makes signing fail cleanly, and the helper keeps serving', async () => {
    const own = mkTemp();
    try {
      const t = await makeSoftToken(own, 'removable');
      const loaded = await Pkcs11Provider.load(SOFTHSM_LIB, pin(), { env: t.env });
      assert.ok(loaded.ok, JSON.stringify(loaded));
      const p = loaded.value;
      fs.rmSync(t.tokenDir, { recursive: true });
      for (const k of p.keys) {
        const res = await p.sign(k.blob, Buffer.from('x'), 0);
        assert.ok(!res.ok);
        assert.equal(res.error.kind, 'provider');
        assert.match(res.error.message, /refused to sign/);
      }
      assert.ok(p.running);
      await p.unload();
    } finally {
      rmTemp(own);
    }
  });
});

describe('ssh-pkcs11-helper client: broken helpers', () => {
  let dir: string;
  before(() => (dir = mkTemp()));
  after(() => rmTemp(dir));

  function script(name: string, body: string): string {
    const file = path.join(dir, name);
    fs.writeFileSync(file, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
    return file;
  }

  it('finds the helper in $SSH_PKCS11_HELPER, else the default path', () => {
    assert.equal(pkcs11HelperPath({ SSH_PKCS11_HELPER: '/opt/p11' }), '/opt/p11');
    assert.equal(pkcs11HelperPath({ SSH_PKCS11_HELPER: '' }), DEFAULT_PKCS11_HELPER);
  });

  it('a missing helper is "missing", and the PIN is wiped anyway', async () => {
    const buf = pin();
    const res = await Pkcs11Provider.load(SOFTHSM_LIB, buf, { helper: path.join(dir, 'nope') });
    assert.ok(!res.ok);
    assert.equal(res.error.kind, 'missing');
    assert.ok(buf.every((b) => b === 0));
  });

  it('a helper that hangs is killed after the timeout', async () => {
    const pidFile = path.join(dir, 'hang.pid');
    const helper = script('hang', `echo $$ > ${pidFile}\nexec sleep 600`);
    const res = await Pkcs11Provider.load(SOFTHSM_LIB, pin(), { helper, timeoutMs: 1500 });
    assert.ok(!res.ok);
    assert.equal(res.error.kind, 'timeout');
    const pid = Number(fs.readFileSync(pidFile, 'utf8'));
    await waitFor('the hung helper to be gone', () => !alive(pid), 10_000);
  });

  it('a helper that exits at once is "died"', async () => {
    const helper = script('die', 'echo "no token for you" >&2\nexit 7');
    const res = await Pkcs11Provider.load(SOFTHSM_LIB, pin(), { helper, timeoutMs: 20_000 });
    assert.ok(!res.ok);
    assert.equal(res.error.kind, 'died');
    assert.match(res.error.message, /status 7: no token for you/);
  });

  it('a helper answering garbage is "protocol"', async () => {
    const replies: Record<string, string> = {
      type: '\\000\\000\\000\\001\\016',
      truncated: '\\000\\000\\000\\011\\014\\000\\000\\000\\001\\000\\000\\000\\011',
      trailing: '\\000\\000\\000\\006\\014\\000\\000\\000\\000\\000',
      huge: '\\177\\377\\377\\377',
    };
    for (const [name, reply] of Object.entries(replies)) {
      const helper = script(`reply-${name}`, `printf '${reply}'\nexec sleep 600`);
      const res = await Pkcs11Provider.load(SOFTHSM_LIB, pin(), { helper, timeoutMs: 20_000 });
      assert.ok(!res.ok, name);
      assert.equal(res.error.kind, 'protocol', `${name}: ${res.error.message}`);
    }
  });
});
