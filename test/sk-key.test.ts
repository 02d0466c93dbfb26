// The sk key fields of ADD_IDENTITY (src/ssh/sk-key.ts) against the bytes
// OpenSSH's ssh-add really sends (test/fixtures/sk/, recorded with sk-dummy;
// see test/fixtures/sk.ts), and against a fresh recording.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  SK_ECDSA,
  SK_ECDSA_CERT,
  SK_ED25519,
  SK_ED25519_CERT,
  SK_PROVIDER_EXTENSION,
  SK_USER_PRESENCE_REQD,
  SkPrivateKey,
  encodeSkPrivateKey,
  encodeSkProviderConstraint,
  isSkKeyType,
  parseSkPublicBlob,
  readSkPrivateKey,
  readSkProviderExtension,
  skCertificateKey,
  skKeyBlob,
  skPlainType,
  skPublicBlob,
  writeSkPrivateKey,
} from '../src/ssh/sk-key';
import { WireError, WireReader, WireWriter } from '../src/ssh/wire';
import { mkTemp, rmTemp } from './fixtures/run';
import {
  SK_DUMMY,
  SK_FIXTURES,
  SK_KINDS,
  certify,
  makeSkKey,
  recordSshAdd,
  skipUnlessSk,
} from './fixtures/sk';

const SSH_AGENTC_ADD_ID_CONSTRAINED = 25;
const SSH_AGENT_CONSTRAIN_EXTENSION = 255;

interface AddMessage {
  key: SkPrivateKey;
  comment: string;
  provider: string;
}

/** Parses a whole ADD_ID_CONSTRAINED as ssh-add sends it for an sk key. */
function parseAdd(msg: Buffer): AddMessage {
  const r = new WireReader(msg);
  assert.equal(r.byte(), SSH_AGENTC_ADD_ID_CONSTRAINED);
  const key = readSkPrivateKey(r.text(), r);
  const comment = r.text();
  assert.equal(r.byte(), SSH_AGENT_CONSTRAIN_EXTENSION);
  assert.equal(r.text(), SK_PROVIDER_EXTENSION);
  const provider = readSkProviderExtension(r);
  r.end();
  return { key, comment, provider };
}

function encodeAdd(m: AddMessage): Buffer {
  const w = new WireWriter().byte(SSH_AGENTC_ADD_ID_CONSTRAINED);
  writeSkPrivateKey(w, m.key).string(m.comment);
  return Buffer.concat([w.toBuffer(), encodeSkProviderConstraint(m.provider)]);
}

/** The key blob of an OpenSSH .pub / -cert.pub file. */
function pubBlob(file: string): Buffer {
  return Buffer.from(fs.readFileSync(file, 'utf8').trim().split(/\s+/)[1], 'base64');
}

const FIXTURES = [
  { file: 'id_ed25519_sk', keyType: SK_ED25519, pub: 'id_ed25519_sk.pub' },
  { file: 'id_ed25519_sk-cert', keyType: SK_ED25519_CERT, pub: 'id_ed25519_sk-cert.pub' },
  { file: 'id_ecdsa_sk', keyType: SK_ECDSA, pub: 'id_ecdsa_sk.pub' },
  { file: 'id_ecdsa_sk-cert', keyType: SK_ECDSA_CERT, pub: 'id_ecdsa_sk-cert.pub' },
];

describe('sk keys as ssh-add sends them (recorded fixtures)', () => {
  for (const f of FIXTURES) {
    const bytes = () => fs.readFileSync(path.join(SK_FIXTURES, `${f.file}.add.bin`));

    it(`${f.file}: parses, and re-encodes byte-exactly`, () => {
      const m = parseAdd(bytes());
      assert.equal(m.key.keyType, f.keyType);
      assert.equal(m.key.type, skPlainType(f.keyType));
      assert.equal(m.key.application, 'ssh:');
      assert.equal(m.key.flags, SK_USER_PRESENCE_REQD);
      assert.ok(m.key.keyHandle.length > 0);
      assert.equal(m.key.reserved.length, 0);
      assert.equal(m.provider, SK_DUMMY);
      assert.match(m.comment, /-sk test$/);
      assert.deepEqual(encodeAdd(m), bytes());
    });

    it(`${f.file}: the listed blob is the one in ${f.pub}`, () => {
      const m = parseAdd(bytes());
      assert.deepEqual(skKeyBlob(m.key), pubBlob(path.join(SK_FIXTURES, f.pub)));
      const plain = parseSkPublicBlob(
        pubBlob(path.join(SK_FIXTURES, `${f.file.replace('-cert', '')}.pub`)),
      );
      assert.deepEqual(plain.publicKey, m.key.publicKey);
      if (m.key.certificate) assert.deepEqual(skCertificateKey(m.key.certificate), plain);
    });

    it(`${f.file}: the helper's key blob is the message's key part`, () => {
      const m = parseAdd(bytes());
      const keyPart = encodeSkPrivateKey(m.key);
      assert.ok(bytes().subarray(1).subarray(0, keyPart.length).equals(keyPart));
    });

    it(`${f.file}: every truncation is a WireError`, () => {
      const msg = bytes();
      const keyLen = encodeSkPrivateKey(parseAdd(msg).key).length;
      for (let n = 0; n < keyLen; n++) {
        const r = new WireReader(msg.subarray(1, 1 + n));
        assert.throws(() => readSkPrivateKey(r.text(), r), WireError, `cut at ${n}`);
      }
    });
  }

  it('names the sk types, plain and certificate', () => {
    for (const t of [SK_ED25519, SK_ECDSA, SK_ED25519_CERT, SK_ECDSA_CERT])
      assert.ok(isSkKeyType(t));
    for (const t of ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'sk-ssh-ed25519@example.com'])
      assert.ok(!isSkKeyType(t));
  });

  it('refuses a certificate whose key fields differ from the certificate', () => {
    const m = parseAdd(fs.readFileSync(path.join(SK_FIXTURES, 'id_ed25519_sk-cert.add.bin')));
    const other = { ...m.key, publicKey: Buffer.alloc(32, 7) };
    const r = new WireReader(encodeSkPrivateKey(other));
    assert.throws(() => readSkPrivateKey(r.text(), r), /does not match its certificate/);
    const ec = parseAdd(fs.readFileSync(path.join(SK_FIXTURES, 'id_ecdsa_sk-cert.add.bin')));
    const r2 = new WireReader(encodeSkPrivateKey({ ...ec.key, application: 'ssh:other' }));
    assert.throws(() => readSkPrivateKey(r2.text(), r2), /application does not match/);
  });

  it('refuses a bad curve, a point off the curve, a bad length, an empty key handle', () => {
    const ec = parseAdd(fs.readFileSync(path.join(SK_FIXTURES, 'id_ecdsa_sk.add.bin'))).key;
    const ed = parseAdd(fs.readFileSync(path.join(SK_FIXTURES, 'id_ed25519_sk.add.bin'))).key;
    const offCurve = Buffer.from(ec.publicKey);
    offCurve[64] ^= 1;
    const bad: Buffer[] = [
      new WireWriter().string(SK_ECDSA).string('nistp384').string(ec.publicKey).toBuffer(),
      encodeSkPrivateKey({ ...ec, publicKey: offCurve }),
      encodeSkPrivateKey({ ...ed, publicKey: Buffer.alloc(31) }),
      encodeSkPrivateKey({ ...ed, keyHandle: Buffer.alloc(0) }),
    ];
    for (const b of bad) {
      const r = new WireReader(b);
      assert.throws(() => readSkPrivateKey(r.text(), r), WireError);
    }
  });

  it('the public blob round-trips and refuses other key types', () => {
    const blob = pubBlob(path.join(SK_FIXTURES, 'id_ecdsa_sk.pub'));
    assert.deepEqual(skPublicBlob(parseSkPublicBlob(blob)), blob);
    const ed = new WireWriter().string('ssh-ed25519').string(Buffer.alloc(32)).toBuffer();
    assert.throws(() => parseSkPublicBlob(ed), WireError);
  });

  it('refuses an empty provider name', () => {
    assert.throws(
      () => readSkProviderExtension(new WireReader(new WireWriter().string('').toBuffer())),
      WireError,
    );
  });
});

describe('sk keys: a fresh recording of ssh-add', { skip: skipUnlessSk() }, () => {
  let dir: string;
  before(() => (dir = mkTemp()));
  after(() => rmTemp(dir));

  for (const kind of SK_KINDS) {
    it(`${kind}: ssh-add's key and certificate parse and re-encode`, async () => {
      const key = await makeSkKey(dir, kind);
      await certify(dir, key);
      const msgs = await recordSshAdd([key]);
      assert.equal(msgs.length, 2, 'the key, then its certificate');
      for (const msg of msgs) {
        const m = parseAdd(msg);
        assert.deepEqual(encodeAdd(m), msg);
        const pub = m.key.certificate ? `${key}-cert.pub` : `${key}.pub`;
        assert.deepEqual(skKeyBlob(m.key), pubBlob(pub));
      }
    });
  }
});
