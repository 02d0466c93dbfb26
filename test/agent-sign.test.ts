// Acceptance: signatures made by the agent verify with OpenSSH. The private
// key is only in the agent: it is deleted from disk right after ssh-add.

import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { decodeResponse, encodeRequest, SIGN_FLAG } from '../src/agent/protocol';
import { WireReader } from '../src/ssh/wire';
import { AGENTS, RunningAgent, rawRequest, startAgent } from './fixtures/agent';
import { KEY_TYPES, TestKey, keyBlobText, makeKey, publicBlob } from './fixtures/keys';
import { SSH_ADD, SSH_KEYGEN, baseEnv, mkTemp, rmTemp, run, skipUnless } from './fixtures/run';

const skip = skipUnless([SSH_ADD, SSH_KEYGEN]);

/** Parse an armored SSHSIG file: the signature's algorithm name and the signer's key blob. */
function parseSshsig(armored: string): { publicKey: Buffer; namespace: string; alg: string } {
  const b64 = armored
    .replace('-----BEGIN SSH SIGNATURE-----', '')
    .replace('-----END SSH SIGNATURE-----', '')
    .replace(/\s+/g, '');
  const blob = Buffer.from(b64, 'base64');
  assert.equal(blob.subarray(0, 6).toString(), 'SSHSIG');
  const r = new WireReader(blob.subarray(6));
  assert.equal(r.uint32(), 1);
  const publicKey = Buffer.from(r.string());
  const namespace = r.string().toString();
  r.string(); // reserved
  r.string(); // hash algorithm
  const sig = new WireReader(r.string());
  return { publicKey, namespace, alg: sig.string().toString() };
}

/** The key's public half for node:crypto, decoded from the SSH public key blob (via JWK). */
function nodePublicKey(blob: Buffer): crypto.KeyObject {
  const r = new WireReader(blob);
  const type = r.string().toString();
  const b64u = (b: Buffer) => (b[0] === 0 ? b.subarray(1) : b).toString('base64url');
  let jwk: crypto.JsonWebKey;
  if (type === 'ssh-ed25519') {
    jwk = { kty: 'OKP', crv: 'Ed25519', x: r.string().toString('base64url') };
  } else if (type.startsWith('ecdsa-sha2-nistp')) {
    const curve = r.string().toString();
    const q = r.string();
    assert.equal(q[0], 4, 'uncompressed point');
    const half = (q.length - 1) / 2;
    jwk = {
      kty: 'EC',
      crv: { nistp256: 'P-256', nistp384: 'P-384', nistp521: 'P-521' }[curve],
      x: q.subarray(1, 1 + half).toString('base64url'),
      y: q.subarray(1 + half).toString('base64url'),
    };
  } else {
    const e = r.string();
    const n = r.string();
    jwk = { kty: 'RSA', e: b64u(e), n: b64u(n) };
  }
  r.end();
  return crypto.createPublicKey({ key: jwk, format: 'jwk' });
}

/** Verify a raw agent signature (SSH wire format) with node:crypto; returns its algorithm. */
function verifyRaw(k: TestKey, data: Buffer, signature: Buffer): string {
  const r = new WireReader(signature);
  const alg = r.string().toString();
  const blob = Buffer.from(r.string());
  r.end();
  const key = nodePublicKey(publicBlob(k));
  let ok: boolean;
  if (k.type.sshType === 'ssh-ed25519') {
    ok = crypto.verify(null, data, key, blob);
  } else if (k.type.sshType.startsWith('ecdsa-')) {
    // r and s as two mpints (not DER): rebuild the fixed-width r||s form.
    const bits = Number(k.type.sshType.slice(-3));
    const width = Math.ceil(bits / 8);
    const rs = new WireReader(blob);
    const pad = (m: Buffer) => {
      const v = m[0] === 0 ? m.subarray(1) : m;
      assert.ok(v.length <= width, 'mpint too long');
      return Buffer.concat([Buffer.alloc(width - v.length), v]);
    };
    const raw = Buffer.concat([pad(rs.string()), pad(rs.string())]);
    rs.end();
    const hash = { 256: 'sha256', 384: 'sha384', 521: 'sha512' }[bits]!;
    ok = crypto.verify(hash, data, { key, dsaEncoding: 'ieee-p1363' }, raw);
  } else {
    const hash = { 'ssh-rsa': 'sha1', 'rsa-sha2-256': 'sha256', 'rsa-sha2-512': 'sha512' }[alg];
    assert.ok(hash, `unexpected RSA signature algorithm ${alg}`);
    ok = crypto.verify(hash, data, key, blob);
  }
  assert.ok(ok, `${alg} signature does not verify`);
  return alg;
}

for (const agent of AGENTS) {
  describe(`signatures by ${agent.name}`, { skip }, () => {
    let dir: string;
    let a: RunningAgent;
    const keys: TestKey[] = [];
    const env = () => baseEnv({ SSH_AUTH_SOCK: a.sock });

    before(async () => {
      dir = mkTemp();
      a = await startAgent(agent);
      await Promise.all(KEY_TYPES.map(async (t, i) => (keys[i] = await makeKey(dir, t))));
      for (const k of keys) {
        const r = await run(SSH_ADD, [k.priv], { env: env() });
        assert.equal(r.code, 0, r.stderr);
        // From here on the private key exists only in the agent.
        fs.rmSync(k.priv);
      }
      fs.writeFileSync(
        path.join(dir, 'allowed_signers'),
        keys.map((k) => `${k.type.name}@test ${keyBlobText(k)}\n`).join(''),
      );
    });
    after(async () => {
      await a?.stop();
      rmTemp(dir);
    });

    for (const [i, t] of KEY_TYPES.entries()) {
      it(`${t.name}: ssh-keygen -Y sign (key in the agent only) verifies with ssh-keygen -Y verify`, async () => {
        const k = keys[i];
        assert.equal(fs.existsSync(k.priv), false);
        const msg = path.join(dir, `message-${t.name}.txt`);
        fs.writeFileSync(msg, `signed by the agent with ${t.name}\n`);
        const s = await run(SSH_KEYGEN, ['-Y', 'sign', '-f', k.pub, '-n', 'file', msg], {
          env: env(),
        });
        assert.equal(s.code, 0, s.stderr);
        const armored = fs.readFileSync(`${msg}.sig`, 'utf8');
        const sig = parseSshsig(armored);
        assert.deepEqual(sig.publicKey, publicBlob(k));
        assert.equal(sig.namespace, 'file');
        // ssh-keygen asks for rsa-sha2-512 on RSA keys; the agent must honour it.
        assert.equal(sig.alg, t.sshType === 'ssh-rsa' ? 'rsa-sha2-512' : t.sshType);

        const verify = (input: string) =>
          run(
            SSH_KEYGEN,
            [
              '-Y',
              'verify',
              '-f',
              path.join(dir, 'allowed_signers'),
              '-I',
              `${t.name}@test`,
              '-n',
              'file',
              '-s',
              `${msg}.sig`,
            ],
            { input },
          );
        const v = await verify(fs.readFileSync(msg, 'utf8'));
        assert.equal(v.code, 0, v.stderr);
        assert.equal(
          v.stdout,
          `Good "file" signature for ${t.name}@test with ${t.label} key ${k.fingerprint}\n`,
        );
        // And a changed message does not verify (the check above is not vacuous).
        const bad = await verify('something else\n');
        assert.equal(bad.code, 255);
      });

      it(`${t.name}: raw SIGN_REQUEST, every flag, verifies with node:crypto`, async () => {
        const k = keys[i];
        const data = crypto.randomBytes(64);
        const flagsToAlg: [number, string][] =
          t.sshType === 'ssh-rsa'
            ? [
                [0, 'ssh-rsa'], // SHA-1, only when asked for
                [SIGN_FLAG.RSA_SHA2_256, 'rsa-sha2-256'],
                [SIGN_FLAG.RSA_SHA2_512, 'rsa-sha2-512'],
              ]
            : [
                [0, t.sshType],
                // The RSA flags mean nothing to other key types.
                [SIGN_FLAG.RSA_SHA2_256, t.sshType],
                [SIGN_FLAG.RSA_SHA2_512, t.sshType],
              ];
        for (const [flags, alg] of flagsToAlg) {
          const reply = await rawRequest(
            a.sock,
            encodeRequest({ type: 'sign', keyBlob: publicBlob(k), data, flags }),
          );
          assert.notEqual(reply, 'closed');
          const res = decodeResponse(reply as Buffer);
          assert.equal(res.type, 'signature', `flags ${flags}`);
          if (res.type !== 'signature') return;
          assert.equal(verifyRaw(k, data, res.signature), alg, `flags ${flags}`);
        }
      });
    }

    it('a key the agent does not hold: SIGN_REQUEST answers FAILURE', async () => {
      const other = await makeKey(dir, KEY_TYPES[0], { name: 'not-added' });
      const reply = await rawRequest(
        a.sock,
        encodeRequest({
          type: 'sign',
          keyBlob: publicBlob(other),
          data: Buffer.from('x'),
          flags: 0,
        }),
      );
      assert.deepEqual(reply, Buffer.of(5));
    });
  });
}
