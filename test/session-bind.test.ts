// session-bind@openssh.com signatures parsed as OpenSSH parses them, and what a
// failed bind means (issue 11 point 1). A hostile server reached with `ssh -A`
// chooses the key-exchange signature ssh hands the agent: it can encode ECDSA's
// r or s with a redundant leading zero (sshbuf_get_bignum2 strips it) or send an
// RSA signature one byte short (ssh_rsa_verify left-pads it). Both are valid to
// OpenSSH; tsagent must accept them too, and a bind that does fail must never
// leave the connection looking local.

import { after, before, describe, it, test } from 'node:test';
import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import { AGENTS, RunningAgent, TSAGENTS, startAgent } from './fixtures/agent';
import { Askpass, TestKey, keyType, makeKey, publicBlob } from './fixtures/keys';
import { SSH_ADD, SSH_KEYGEN, baseEnv, mkTemp, rmTemp, run, skipUnless } from './fixtures/run';
import { AgentClient } from '../src/agent/client';
import { Keyring } from '../src/agent/keyring';
import { decodeRequest } from '../src/agent/protocol';
import type { PrivateKey } from '../src/ssh/privatekey';
import { verifySignature } from '../src/ssh/signature';
import { WireWriter } from '../src/ssh/wire';

const skip = skipUnless([SSH_ADD, SSH_KEYGEN]);

/** A host key as a Node key pair and its SSH public blob. */
interface HostKey {
  priv: crypto.KeyObject;
  blob: Buffer;
}

function ecdsaHost(): HostKey {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const jwk = publicKey.export({ format: 'jwk' });
  const q = Buffer.concat([
    Buffer.of(4),
    Buffer.from(jwk.x!, 'base64url'),
    Buffer.from(jwk.y!, 'base64url'),
  ]);
  const blob = new WireWriter()
    .string('ecdsa-sha2-nistp256')
    .string('nistp256')
    .string(q)
    .toBuffer();
  return { priv: privateKey, blob };
}

function rsaHost(): HostKey {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = publicKey.export({ format: 'jwk' });
  const blob = new WireWriter()
    .string('ssh-rsa')
    .mpint(Buffer.from(jwk.e!, 'base64url'))
    .mpint(Buffer.from(jwk.n!, 'base64url'))
    .toBuffer();
  return { priv: privateKey, blob };
}

/** An mpint with one redundant leading zero byte (as a hostile server may send). */
const paddedMpint = (magnitude: Buffer) => {
  let i = 0;
  while (i < magnitude.length - 1 && magnitude[i] === 0) i++;
  const m = magnitude.subarray(i);
  return new WireWriter()
    .string(Buffer.concat([m[0] & 0x80 ? Buffer.of(0, 0) : Buffer.of(0), m]))
    .toBuffer();
};

/** ECDSA P-256 signature over `data` with redundant leading zeros in r and s. */
function ecdsaPaddedSig(k: HostKey, data: Buffer): Buffer {
  const rs = crypto.sign('sha256', data, { key: k.priv, dsaEncoding: 'ieee-p1363' });
  const body = Buffer.concat([paddedMpint(rs.subarray(0, 32)), paddedMpint(rs.subarray(32))]);
  return new WireWriter().string('ecdsa-sha2-nistp256').string(body).toBuffer();
}

/** A session id and an rsa-sha2-256 signature of it that is one byte shorter than the modulus. */
function rsaShortSig(k: HostKey): { sessionId: Buffer; sig: Buffer } {
  for (;;) {
    const sessionId = crypto.randomBytes(32);
    const raw = crypto.sign('sha256', sessionId, k.priv);
    if (raw[0] !== 0) continue; // about one in 256 signatures has a leading zero byte
    const sig = new WireWriter().string('rsa-sha2-256').string(raw.subarray(1)).toBuffer();
    return { sessionId, sig };
  }
}

const bindMessage = (hostKey: Buffer, sessionId: Buffer, sig: Buffer, forwarded: boolean) =>
  new WireWriter().string(hostKey).string(sessionId).string(sig).bool(forwarded).toBuffer();

describe('verifySignature parses signatures as leniently as OpenSSH', () => {
  test('ECDSA r and s with redundant leading zero bytes verify', () => {
    const k = ecdsaHost();
    for (let i = 0; i < 8; i++) {
      const data = crypto.randomBytes(32);
      assert.equal(verifySignature(k.blob, data, ecdsaPaddedSig(k, data)), true);
      assert.equal(verifySignature(k.blob, crypto.randomBytes(32), ecdsaPaddedSig(k, data)), false);
    }
  });
  test('an RSA signature shorter than the modulus is left-padded; a longer one is refused', () => {
    const k = rsaHost();
    const { sessionId, sig } = rsaShortSig(k);
    assert.equal(verifySignature(k.blob, sessionId, sig), true);
    const raw = crypto.sign('sha256', sessionId, k.priv);
    const long = new WireWriter()
      .string('rsa-sha2-256')
      .string(Buffer.concat([Buffer.of(0), raw]))
      .toBuffer();
    assert.equal(verifySignature(k.blob, sessionId, long), false);
  });
});

describe('a failed bind counts as forwarded (keyring)', () => {
  const { privateKey } = crypto.generateKeyPairSync('ed25519');
  const jwk = privateKey.export({ format: 'jwk' });
  const pk = Buffer.from(jwk.x!, 'base64url');
  const fields = new WireWriter()
    .string(pk)
    .string(Buffer.concat([Buffer.from(jwk.d!, 'base64url'), pk]))
    .string('k')
    .toBuffer();
  const req = decodeRequest(
    Buffer.concat([Buffer.of(17), new WireWriter().string('ssh-ed25519').toBuffer(), fields]),
  );
  assert.equal(req.type, 'add');
  const key: PrivateKey = req.key;
  const host = { hostKey: Buffer.from('host'), sessionId: Buffer.alloc(32, 7), forwarded: false };

  const CASES: Array<[string, object, boolean]> = [
    ['no bind (local tool)', {}, false],
    ["ssh's own verified login bind", { binds: [host], bindAttempted: true }, false],
    ['a forwarded bind', { binds: [{ ...host, forwarded: true }], bindAttempted: true }, true],
    ['a bind that failed, nothing recorded', { binds: [], bindAttempted: true }, true],
    [
      'a failed bind, then a valid non-forwarded one',
      { binds: [host], bindAttempted: true, bindFailed: true },
      true,
    ],
  ];
  for (const [name, ctx, forwarded] of CASES)
    test(`${name}: forwarded ${forwarded}, confirm-forwarded ${forwarded ? 'asks' : 'does not ask'}`, async () => {
      const asked: boolean[] = [];
      const kr = new Keyring({
        confirmForwarded: true,
        confirm: async (_e, _c, d) => {
          asked.push(d.forwarded);
          return true;
        },
      });
      assert.deepEqual(kr.add(key, Buffer.from('k'), { extensions: [] }), { ok: true });
      const res = await kr.sign(key.publicBlob, Buffer.from('data'), 0, ctx);
      assert.equal(res.ok, true);
      assert.equal(res.ok && res.details.forwarded, forwarded);
      assert.deepEqual(asked, forwarded ? [true] : []);
    });
});

describe('SignDetails.verified: the signed login is for the session last bound', () => {
  const { privateKey } = crypto.generateKeyPairSync('ed25519');
  const jwk = privateKey.export({ format: 'jwk' });
  const pk = Buffer.from(jwk.x!, 'base64url');
  const req = decodeRequest(
    Buffer.concat([
      Buffer.of(17),
      new WireWriter()
        .string('ssh-ed25519')
        .string(pk)
        .string(Buffer.concat([Buffer.from(jwk.d!, 'base64url'), pk]))
        .string('k')
        .toBuffer(),
    ]),
  );
  assert.equal(req.type, 'add');
  const key: PrivateKey = req.key;
  const hostKey = Buffer.from('host key');
  const sessionId = Buffer.alloc(32, 7);
  const login = (sid: Buffer, hostbound?: Buffer) => {
    const w = new WireWriter()
      .string(sid)
      .byte(50)
      .string('alice')
      .string('ssh-connection')
      .string(hostbound ? 'publickey-hostbound-v00@openssh.com' : 'publickey')
      .bool(true)
      .string('ssh-ed25519')
      .string(key.publicBlob);
    if (hostbound) w.string(hostbound);
    return w.toBuffer();
  };
  const bound = { binds: [{ hostKey, sessionId, forwarded: false }], bindAttempted: true };
  const CASES: Array<[string, object, Buffer, boolean]> = [
    ['a login for the bound session', bound, login(sessionId), true],
    ['a host-bound login for the bound session and host', bound, login(sessionId, hostKey), true],
    ['a login for another session', bound, login(Buffer.alloc(32, 8)), false],
    [
      'a host-bound login naming another host',
      bound,
      login(sessionId, Buffer.from('other')),
      false,
    ],
    ['a login on a connection that never bound', {}, login(sessionId), false],
    ['data that is not a login', bound, Buffer.from('ssh-keygen -Y data'), false],
    [
      'a login for the bound session after a failed bind',
      { ...bound, bindFailed: true },
      login(sessionId),
      false,
    ],
  ];
  for (const [name, ctx, data, verified] of CASES)
    test(`${name}: verified ${verified}`, async () => {
      const kr = new Keyring();
      kr.add(key, Buffer.from('k'), { extensions: [] });
      const res = await kr.sign(key.publicBlob, data, 0, ctx);
      assert.equal(res.ok, true);
      assert.equal(res.ok && res.details.verified, verified);
    });
});

for (const agent of AGENTS) {
  describe(`session-bind signatures a real server may send, with ${agent.name}`, { skip }, () => {
    let a: RunningAgent;
    before(async () => {
      a = await startAgent(agent);
    });
    after(async () => a?.stop());

    it('ECDSA with leading zeros in r and s, and a short RSA signature: the bind succeeds', async () => {
      const c = await AgentClient.connect(a.sock);
      try {
        const ec = ecdsaHost();
        const sid = crypto.randomBytes(32);
        const r1 = await c.request({
          type: 'extension',
          name: 'session-bind@openssh.com',
          contents: bindMessage(ec.blob, sid, ecdsaPaddedSig(ec, sid), true),
        });
        assert.equal(r1.type, 'success');
        const rsa = rsaHost();
        const { sessionId, sig } = rsaShortSig(rsa);
        const r2 = await c.request({
          type: 'extension',
          name: 'session-bind@openssh.com',
          contents: bindMessage(rsa.blob, sessionId, sig, false),
        });
        assert.equal(r2.type, 'success');
      } finally {
        c.close();
      }
    });
  });
}

for (const agent of TSAGENTS) {
  describe(`${agent.name} --confirm-forwarded after a failed bind`, { skip }, () => {
    let a: RunningAgent;
    let dir: string;
    let askpass: Askpass;
    let key: TestKey;
    before(async () => {
      dir = mkTemp();
      askpass = new Askpass(dir);
      key = await makeKey(dir, keyType('ed25519'));
      a = await startAgent(agent, {
        args: ['--confirm-forwarded'],
        env: { ...askpass.env(), DISPLAY: ':0', HOME: dir, XDG_DATA_HOME: dir },
      });
      const r = await run(SSH_ADD, [key.priv], { env: baseEnv({ SSH_AUTH_SOCK: a.sock }) });
      assert.equal(r.code, 0, r.stderr);
    });
    after(async () => {
      await a?.stop();
      rmTemp(dir);
    });

    async function signAfter(binds: Buffer[]): Promise<string> {
      const c = await AgentClient.connect(a.sock);
      try {
        for (const contents of binds)
          await c.request({ type: 'extension', name: 'session-bind@openssh.com', contents });
        const res = await c.request({
          type: 'sign',
          keyBlob: publicBlob(key),
          data: Buffer.from('to sign'),
          flags: 0,
        });
        return res.type;
      } finally {
        c.close();
      }
    }

    it('a bind with a bad signature: the sign asks, and no is a refusal', async () => {
      askpass.reset();
      askpass.answer('', 1);
      const ec = ecdsaHost();
      const sid = crypto.randomBytes(32);
      const bad = bindMessage(ec.blob, sid, ecdsaPaddedSig(ec, crypto.randomBytes(32)), true);
      assert.equal(await signAfter([bad]), 'failure');
      assert.equal(askpass.calls().length, 1);
    });

    it('a failed bind followed by a valid non-forwarded one still asks', async () => {
      askpass.reset();
      askpass.answer('', 1);
      const ec = ecdsaHost();
      const sid = crypto.randomBytes(32);
      const bad = bindMessage(ec.blob, sid, ecdsaPaddedSig(ec, crypto.randomBytes(32)), true);
      const good = bindMessage(ec.blob, sid, ecdsaPaddedSig(ec, sid), false);
      assert.equal(await signAfter([bad, good]), 'failure');
      assert.equal(askpass.calls().length, 1);
    });

    it("a valid non-forwarded bind (ssh's own login) does not ask", async () => {
      askpass.reset();
      const ec = ecdsaHost();
      const sid = crypto.randomBytes(32);
      assert.equal(
        await signAfter([bindMessage(ec.blob, sid, ecdsaPaddedSig(ec, sid), false)]),
        'signature',
      );
      assert.deepEqual(askpass.calls(), []);
    });
  });
}
