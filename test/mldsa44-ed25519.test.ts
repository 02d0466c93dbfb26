// ssh-mldsa44-ed25519@openssh.com against the files OpenSSH 10.5 made
// (/work/shared/vectors/mldsa44-ed25519, see its README): every vector decodes
// and re-encodes byte-exact, OpenSSH's signatures verify with tsagent's
// verifier, tsagent's verify with that verifier and with noble's, and the
// agent messages OpenSSH's ssh-add sends round-trip through a running tsagent.
// (Debian 12's ssh-keygen does not know the type, so ssh-keygen -Y verify cannot
// check these here; the SSHSIG signature is checked with tsagent's verifier.)

import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, before, describe, it, test } from 'node:test';
import { RunningAgent, TSAGENTS, startAgent } from './fixtures/agent';
import { AgentClient } from '../src/agent/client';
import {
  MSG,
  decodeRequest,
  decodeResponse,
  encodeRequest,
  encodeResponse,
} from '../src/agent/protocol';
import { sign } from '../src/agent/signer';
import { readCertificate } from '../src/ssh/certificate';
import { COMPOSITE_LABEL, MLDSA_KEY_TYPE, compositeMessage, mlDsa44 } from '../src/ssh/mldsa';
import type { PrivateKey } from '../src/ssh/privatekey';
import { encodePublicBlob, parsePublicBlob } from '../src/ssh/publickey';
import { verifySignature } from '../src/ssh/signature';
import { WireReader, WireWriter } from '../src/ssh/wire';

const VECTORS = path.resolve(__dirname, '..', '..', '..', 'shared', 'vectors', 'mldsa44-ed25519');
const DIR = fs.existsSync(VECTORS) ? VECTORS : '/work/shared/vectors/mldsa44-ed25519';
const file = (name: string) => fs.readFileSync(path.join(DIR, name));
const pubBlob = (name: string) => Buffer.from(file(name).toString('utf8').split(' ')[1], 'base64');
const body = (framed: Buffer) => {
  assert.equal(framed.readUInt32BE(0), framed.length - 4, 'frame length');
  return framed.subarray(4);
};

function addedKey(): PrivateKey {
  const req = decodeRequest(body(file('agent-messages/add-identity.bin')));
  assert.equal(req.type, 'add');
  return req.key;
}

describe('public keys and certificates decode and re-encode byte-exact', () => {
  for (const name of ['id_mldsa44_ed25519.pub', 'id_mldsa44_ed25519_encrypted.pub'])
    test(name, () => {
      const blob = pubBlob(name);
      const { keyType, parts } = parsePublicBlob(blob);
      assert.equal(keyType, MLDSA_KEY_TYPE);
      assert.equal(parts.algorithm, 'mldsa44-ed25519');
      assert.deepEqual(encodePublicBlob(keyType, parts), blob);
    });

  test('the certificate of the ML-DSA key (signed by an Ed25519 CA) verifies', () => {
    const blob = pubBlob('id_mldsa44_ed25519-cert.pub');
    const { cert, parts } = readCertificate(blob, `ssh-mldsa44-ed25519-cert-v01@openssh.com`);
    assert.deepEqual(cert.principals, ['alice']);
    assert.deepEqual(encodePublicBlob(MLDSA_KEY_TYPE, parts), pubBlob('id_mldsa44_ed25519.pub'));
    assert.deepEqual(cert.signatureKey, pubBlob('ca_ed25519.pub'));
    assert.deepEqual(
      Buffer.concat([cert.signedData, new WireWriter().string(cert.signature).toBuffer()]),
      blob,
    );
    assert.equal(verifySignature(cert.signatureKey, cert.signedData, cert.signature), true);
  });

  test('a certificate signed BY the ML-DSA key (as CA) verifies with tsagent and noble', () => {
    const blob = pubBlob('user_ed25519-cert.pub');
    const { cert } = readCertificate(blob, 'ssh-ed25519-cert-v01@openssh.com');
    assert.deepEqual(cert.signatureKey, pubBlob('id_mldsa44_ed25519.pub'));
    assert.equal(verifySignature(cert.signatureKey, cert.signedData, cert.signature), true);
    const tampered = Buffer.from(cert.signedData);
    tampered[tampered.length - 1] ^= 1;
    assert.equal(verifySignature(cert.signatureKey, tampered, cert.signature), false);
    // noble alone, on the ML-DSA half
    const s = new WireReader(cert.signature);
    assert.equal(s.text(), MLDSA_KEY_TYPE);
    const sig = s.string();
    const pk = new WireReader(cert.signatureKey);
    pk.text();
    const pkBytes = pk.string();
    assert.equal(
      mlDsa44().verify(
        sig.subarray(0, 2420),
        compositeMessage(cert.signedData),
        pkBytes.subarray(0, 1312),
        {
          context: COMPOSITE_LABEL,
        },
      ),
      true,
    );
    // A whole certificate with such a CA verifies as a session-bind host key would.
    const data = crypto.randomBytes(16);
    assert.equal(verifySignature(blob, data, Buffer.alloc(0)), false);
  });

  test("the SSHSIG signature of message.txt verifies with tsagent's verifier", () => {
    const armored = file('message.txt.sig').toString('utf8');
    const raw = Buffer.from(
      armored.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, ''),
      'base64',
    );
    assert.equal(raw.subarray(0, 6).toString(), 'SSHSIG');
    const r = new WireReader(raw.subarray(6));
    assert.equal(r.uint32(), 1);
    const publicKey = Buffer.from(r.string());
    const namespace = r.text();
    r.string(); // reserved
    const hashAlg = r.text();
    const signature = Buffer.from(r.string());
    r.end();
    assert.equal(namespace, 'file');
    assert.deepEqual(publicKey, pubBlob('id_mldsa44_ed25519.pub'));
    const signed = new WireWriter()
      .raw(Buffer.from('SSHSIG'))
      .string(namespace)
      .string('')
      .string(hashAlg)
      .string(crypto.createHash(hashAlg).update(file('message.txt')).digest())
      .toBuffer();
    assert.equal(verifySignature(publicKey, signed, signature), true);
    assert.equal(
      verifySignature(publicKey, Buffer.concat([signed, Buffer.of(0)]), signature),
      false,
    );
  });
});

describe('agent messages of OpenSSH 10.5 decode and re-encode byte-exact', () => {
  for (const name of [
    'add-identity.bin',
    'add-identity-confirm-lifetime600.bin',
    'add-certificate-constrained-lifetime.bin',
  ])
    test(name, () => {
      const framed = file(`agent-messages/${name}`);
      const req = decodeRequest(body(framed));
      assert.equal(req.type, 'add', req.type === 'malformed' ? req.reason : '');
      if (req.type !== 'add') return;
      assert.equal(req.key.algorithm, 'mldsa44-ed25519');
      assert.equal(req.key.bits, 256);
      assert.equal(req.comment.toString(), 'vector-plain');
      // The private fields are what follows the key type, up to the comment.
      const r = new WireReader(body(framed).subarray(1));
      const keyType = r.text();
      const start = body(framed).length - r.remaining;
      const w = new WireReader(body(framed).subarray(start));
      // pk and sk, or the certificate and sk
      const fieldParts = [w.string(), w.string()];
      const raw = new WireWriter();
      for (const f of fieldParts) raw.string(f);
      const again = encodeRequest({
        type: 'add',
        keyType,
        fields: raw.toBuffer(),
        comment: req.comment,
        constraints: req.constraints,
      });
      assert.deepEqual(again, framed);
      if (name.includes('certificate'))
        assert.equal(req.key.keyType, 'ssh-mldsa44-ed25519-cert-v01@openssh.com');
      if (name.includes('confirm'))
        assert.deepEqual([req.constraints.confirm, req.constraints.lifetime], [true, 600]);
    });

  test("sign-request.bin and sign-response.bin; OpenSSH's signature verifies", () => {
    const reqFrame = file('agent-messages/sign-request.bin');
    const req = decodeRequest(body(reqFrame));
    assert.equal(req.type, 'sign');
    if (req.type !== 'sign') return;
    assert.deepEqual(encodeRequest(req), reqFrame);
    assert.deepEqual(req.data, file('agent-messages/signed-data.bin'));
    const resFrame = file('agent-messages/sign-response.bin');
    const res = decodeResponse(body(resFrame));
    assert.equal(res.type, 'signature');
    assert.deepEqual(encodeResponse(res), resFrame);
    if (res.type !== 'signature') return;
    assert.equal(verifySignature(req.keyBlob, req.data, res.signature), true);
    assert.equal(
      verifySignature(req.keyBlob, Buffer.concat([req.data, Buffer.of(0)]), res.signature),
      false,
    );
  });
});

describe("tsagent's signatures", () => {
  test("verify with tsagent's verifier and with noble + Node; a flipped bit in either half fails", async () => {
    const key = addedKey();
    const data = file('agent-messages/signed-data.bin');
    const blob = await sign(key, data, 0);
    assert.equal(verifySignature(key.publicBlob, data, blob), true);
    const r = new WireReader(blob);
    assert.equal(r.text(), MLDSA_KEY_TYPE);
    const sig = r.string();
    assert.equal(sig.length, 2484);
    const pk = new WireReader(key.publicBlob);
    pk.text();
    const pkBytes = pk.string();
    const m = compositeMessage(data);
    assert.equal(
      mlDsa44().verify(sig.subarray(0, 2420), m, pkBytes.subarray(0, 1312), {
        context: COMPOSITE_LABEL,
      }),
      true,
    );
    const edPub = crypto.createPublicKey({
      key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), pkBytes.subarray(1312)]),
      format: 'der',
      type: 'spki',
    });
    assert.equal(crypto.verify(null, m, edPub, sig.subarray(2420)), true);
    for (const at of [10, 2430]) {
      const bad = Buffer.from(sig);
      bad[at] ^= 1;
      assert.equal(
        verifySignature(
          key.publicBlob,
          data,
          new WireWriter().string(MLDSA_KEY_TYPE).string(bad).toBuffer(),
        ),
        false,
      );
    }
    // Randomized, as OpenSSH's: a second signature differs and verifies too.
    const again = await sign(key, data, 0);
    assert.notDeepEqual(again, blob);
    assert.equal(verifySignature(key.publicBlob, data, again), true);
  });

  test('a key whose ML-DSA seed does not give its public key is refused', () => {
    const framed = body(file('agent-messages/add-identity.bin'));
    const bad = Buffer.from(framed);
    // The 64-byte sk follows the 1344-byte pk: flip a bit of the ML-DSA seed.
    const skAt = bad.length - (4 + 12) - 64;
    bad[skAt] ^= 1;
    const req = decodeRequest(bad);
    assert.equal(req.type, 'malformed');
    assert.match(
      req.type === 'malformed' ? req.reason : '',
      /ML-DSA-44 private key does not match/,
    );
  });
});

for (const agent of TSAGENTS) {
  describe(`ssh-mldsa44-ed25519 through a running ${agent.name}`, () => {
    let a: RunningAgent;
    before(async () => {
      a = await startAgent(agent);
    });
    after(async () => a?.stop());

    it("OpenSSH's ADD messages are accepted, listed, and the SIGN_REQUEST answered with a valid signature", async () => {
      const c = await AgentClient.connect(a.sock);
      try {
        for (const name of ['add-identity.bin', 'add-certificate-constrained-lifetime.bin'])
          assert.equal((await c.raw(file(`agent-messages/${name}`)))[0], MSG.SUCCESS, name);
        const list = await c.request({ type: 'request-identities' });
        assert.equal(list.type, 'identities');
        const blobs = list.type === 'identities' ? list.identities.map((i) => i.keyBlob) : [];
        assert.deepEqual(blobs, [
          pubBlob('id_mldsa44_ed25519.pub'),
          pubBlob('id_mldsa44_ed25519-cert.pub'),
        ]);
        const res = decodeResponse(await c.raw(file('agent-messages/sign-request.bin')));
        assert.equal(res.type, 'signature');
        if (res.type === 'signature')
          assert.equal(
            verifySignature(
              pubBlob('id_mldsa44_ed25519.pub'),
              file('agent-messages/signed-data.bin'),
              res.signature,
            ),
            true,
          );
      } finally {
        c.close();
      }
    });

    it('a session-bind with an ML-DSA-44+Ed25519 host key verifies; a bad one fails', async () => {
      const host = addedKey();
      const c = await AgentClient.connect(a.sock);
      try {
        const sid = crypto.randomBytes(32);
        const sig = await sign(host, sid, 0);
        const bind = (s: Buffer) =>
          c.request({
            type: 'extension',
            name: 'session-bind@openssh.com',
            contents: new WireWriter()
              .string(host.publicBlob)
              .string(sid)
              .string(s)
              .bool(false)
              .toBuffer(),
          });
        const bad = Buffer.from(sig);
        bad[bad.length - 1] ^= 1;
        assert.equal((await bind(bad)).type, 'failure');
        const c2 = await AgentClient.connect(a.sock);
        try {
          const ok = await c2.request({
            type: 'extension',
            name: 'session-bind@openssh.com',
            contents: new WireWriter()
              .string(host.publicBlob)
              .string(sid)
              .string(sig)
              .bool(false)
              .toBuffer(),
          });
          assert.equal(ok.type, 'success');
        } finally {
          c2.close();
        }
      } finally {
        c.close();
      }
    });

    it('ML-DSA signing runs off the event loop: another connection is answered meanwhile', async () => {
      // As test/async-sign.test.ts: queue signatures on one connection and a list on
      // another in the same tick; only the order of the replies is checked.
      const c = await AgentClient.connect(a.sock);
      assert.equal((await c.raw(file('agent-messages/add-identity.bin')))[0], MSG.SUCCESS);
      c.close();
      const QUEUED = 6;
      const order: string[] = [];
      const reader = (s: net.Socket, label: string, expect: number) =>
        new Promise<void>((resolve) => {
          let buf = Buffer.alloc(0);
          let got = 0;
          s.on('data', (d: Buffer) => {
            buf = Buffer.concat([buf, d]);
            while (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
              buf = buf.subarray(4 + buf.readUInt32BE(0));
              order.push(label);
              if (++got === expect) resolve();
            }
          });
        });
      const open = () =>
        new Promise<net.Socket>((res) => {
          const s = net.connect(a.sock, () => res(s));
        });
      const [s1, s2] = await Promise.all([open(), open()]);
      try {
        const signs = reader(s1, 'sign', QUEUED);
        const list = reader(s2, 'list', 1);
        s1.write(
          Buffer.concat(
            Array.from({ length: QUEUED }, () => file('agent-messages/sign-request.bin')),
          ),
        );
        s2.write(Buffer.from([0, 0, 0, 1, MSG.REQUEST_IDENTITIES]));
        await Promise.all([signs, list]);
        assert.ok(
          order.indexOf('list') < QUEUED,
          `the list waited for every signature: ${order.join(' ')}`,
        );
      } finally {
        s1.destroy();
        s2.destroy();
      }
    });
  });
}
