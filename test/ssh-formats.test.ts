// Vectors for the SSH formats in src/ssh/: the curve table, public key blobs,
// certificates, signature encoding, fingerprints, checked against Node's
// crypto and OpenSSH's ssh-keygen (a missing ssh-keygen fails these tests).

import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { CURVES, curveByBits, curveByJwk, curveByKeyType, curveBySshName } from '../src/ssh/curves';
import { CERT_TYPE, parseCertificate, readCertificate } from '../src/ssh/certificate';
import { fingerprint } from '../src/ssh/fingerprint';
import { readPrivateKey } from '../src/ssh/privatekey';
import {
  baseKeyType,
  blobKeyType,
  encodePublicBlob,
  parsePublicBlob,
  publicBits,
} from '../src/ssh/publickey';
import { derToMpints, verifySignature } from '../src/ssh/signature';
import { WireError, WireReader, WireWriter } from '../src/ssh/wire';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsagent-formats-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

const keygen = (...args: string[]) =>
  execFileSync('/usr/bin/ssh-keygen', args, {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });

function makeKey(name: string, ...args: string[]): { blob: Buffer; file: string; bits: number } {
  const file = path.join(dir, name);
  keygen('-q', ...args, '-N', '', '-C', name, '-f', file);
  const blob = Buffer.from(fs.readFileSync(`${file}.pub`, 'utf8').split(' ')[1], 'base64');
  const bits = Number(keygen('-l', '-f', `${file}.pub`).split(' ')[0]);
  return { blob, file, bits };
}

describe('curves.ts: one table, every name of each curve', () => {
  for (const c of CURVES)
    test(c.ssh, () => {
      const { publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: c.openssl });
      const jwk = publicKey.export({ format: 'jwk' });
      assert.equal(jwk.crv, c.jwk);
      assert.equal(Buffer.from(jwk.x!, 'base64url').length, c.size);
      assert.equal(c.keyType, `ecdsa-sha2-${c.ssh}`);
      assert.equal(c.bits, { 32: 256, 48: 384, 66: 521 }[c.size]);
      assert.equal(c.hash, { 256: 'sha256', 384: 'sha384', 521: 'sha512' }[c.bits]);
      // The DER OID is what OpenSSL writes in the key's SPKI.
      const der = publicKey.export({ format: 'der', type: 'spki' });
      const oid = c.oid.split('.').map(Number);
      const body = [40 * oid[0] + oid[1]];
      for (const n of oid.slice(2)) {
        const septets = [];
        for (let v = n; ; v = Math.floor(v / 128)) {
          septets.unshift(v % 128);
          if (v < 128) break;
        }
        body.push(...septets.map((b, i) => (i < septets.length - 1 ? b | 0x80 : b)));
      }
      assert.ok(der.includes(Buffer.from([6, body.length, ...body])), 'OID in the SPKI');
      assert.equal(curveBySshName(c.ssh), c);
      assert.equal(curveByKeyType(c.keyType), c);
      assert.equal(curveByJwk(c.jwk), c);
      assert.equal(curveByBits(c.bits), c);
    });
  test('unknown names are undefined', () => {
    assert.equal(curveBySshName('nistp224'), undefined);
    assert.equal(curveByKeyType('ecdsa-sha2-nistp224'), undefined);
    assert.equal(curveByJwk('secp256k1'), undefined);
    assert.equal(curveByBits(224), undefined);
  });
});

describe('publickey.ts: ssh-keygen public keys decode and re-encode byte-exact', () => {
  const TYPES: Array<[string, string[]]> = [
    ['ed25519', ['-t', 'ed25519']],
    ['ecdsa256', ['-t', 'ecdsa', '-b', '256']],
    ['ecdsa384', ['-t', 'ecdsa', '-b', '384']],
    ['ecdsa521', ['-t', 'ecdsa', '-b', '521']],
    ['rsa1024', ['-t', 'rsa', '-b', '1024']],
    ['rsa3072', ['-t', 'rsa', '-b', '3072']],
  ];
  for (const [name, args] of TYPES)
    test(name, () => {
      const k = makeKey(name, ...args);
      const { keyType, parts } = parsePublicBlob(k.blob);
      assert.equal(keyType, blobKeyType(k.blob));
      assert.deepEqual(encodePublicBlob(keyType, parts), k.blob);
      assert.equal(publicBits(parts), k.bits);
      const out = keygen('-l', '-E', 'sha256', '-f', `${k.file}.pub`).split(' ')[1];
      assert.equal(fingerprint(k.blob), out);
      const md5 = keygen('-l', '-E', 'md5', '-f', `${k.file}.pub`).split(' ')[1];
      assert.equal(fingerprint(k.blob, 'md5'), md5);
    });

  test('malformed blobs are WireErrors, names escaped in the message', () => {
    const bad = (b: Buffer, re: RegExp) =>
      assert.throws(
        () => parsePublicBlob(b),
        (e: unknown) => e instanceof WireError && re.test(e.message),
      );
    const w = () => new WireWriter();
    bad(w().string('ssh-ed25519').string(Buffer.alloc(31)).toBuffer(), /32 bytes/);
    bad(w().string('ssh-ed25519').string(Buffer.alloc(32)).byte(0).toBuffer(), /trailing/);
    bad(w().string('ecdsa-sha2-nistp224').string('nistp224').toBuffer(), /unsupported curve/);
    bad(
      w().string('ecdsa-sha2-nistp256').string('nistp384').string(Buffer.alloc(65, 4)).toBuffer(),
      /does not match/,
    );
    bad(w().string('ssh-foo\nINJECTED').toBuffer(), /^unsupported key type "ssh-foo\\nINJECTED"$/);
    bad(w().string('ssh-ed25519-cert-v01@openssh.com').toBuffer(), /certificate/);
    // A curve name from the input is escaped: a malformed ADD cannot forge a log line.
    bad(
      w().string('ecdsa-sha2-p\n2026-01-01 added key\u202e').string('x').toBuffer(),
      /^unsupported curve "p\\n2026-01-01 added key\\u\{202e\}"$/,
    );
    assert.equal(baseKeyType('ssh-rsa-cert-v01@openssh.com'), 'ssh-rsa');
    assert.equal(blobKeyType(Buffer.alloc(2)), null);
  });
});

describe('certificate.ts: a certificate made by ssh-keygen -s', () => {
  test('fields, and the CA signature over the signed part', () => {
    const ca = makeKey('ca', '-t', 'ed25519');
    const host = makeKey('host', '-t', 'ecdsa', '-b', '384');
    keygen(
      '-q',
      '-s',
      ca.file,
      '-h',
      '-I',
      'host-id',
      '-n',
      'goober,*.example',
      '-V',
      '20200101000000:20400101000000',
      '-z',
      '42',
      `${host.file}.pub`,
    );
    const line = fs.readFileSync(`${host.file}-cert.pub`, 'utf8').split(' ');
    const blob = Buffer.from(line[1], 'base64');
    const cert = parseCertificate(blob);
    assert.ok(cert);
    assert.equal(cert.keyType, 'ecdsa-sha2-nistp384-cert-v01@openssh.com');
    assert.equal(cert.type, CERT_TYPE.HOST);
    assert.equal(cert.keyId, 'host-id');
    assert.deepEqual(cert.principals, ['goober', '*.example']);
    assert.equal(cert.criticalOptions.length, 0);
    assert.deepEqual(cert.signatureKey, ca.blob);
    assert.ok(cert.validAfter > 0n && cert.validBefore > cert.validAfter);
    assert.equal(verifySignature(ca.blob, cert.signedData, cert.signature), true);
    const { parts } = readCertificate(blob, cert.keyType);
    assert.deepEqual(encodePublicBlob('ecdsa-sha2-nistp384', parts), host.blob);
    assert.equal(parseCertificate(host.blob), null, 'a plain key is not a certificate');
    assert.equal(parseCertificate(blob.subarray(0, -1)), null, 'truncated');
  });
});

describe('signature.ts: ECDSA DER → SSH mpints', () => {
  test('vectors: short, high-bit and long-form lengths', () => {
    const der = (r: Buffer, s: Buffer) => {
      const body = Buffer.concat([Buffer.of(2, r.length), r, Buffer.of(2, s.length), s]);
      const len = body.length < 0x80 ? Buffer.of(body.length) : Buffer.of(0x81, body.length);
      return Buffer.concat([Buffer.of(0x30), len, body]);
    };
    const mp = (b: Buffer) => new WireWriter().string(b).toBuffer();
    const r = Buffer.of(0x00, 0x80, 1, 2); // DER keeps the sign byte: so does an mpint
    const s = Buffer.of(0x7f);
    assert.deepEqual(derToMpints(der(r, s)), Buffer.concat([mp(r), mp(s)]));
    const r66 = Buffer.concat([Buffer.of(1), Buffer.alloc(65, 0xaa)]);
    const s66 = Buffer.concat([Buffer.of(0), Buffer.alloc(65, 0xbb)]);
    const long = der(r66, s66);
    assert.equal(long[1], 0x81);
    assert.deepEqual(derToMpints(long), Buffer.concat([mp(r66), mp(s66)]));
    assert.throws(() => derToMpints(Buffer.of(0x31, 0)));
  });
});

describe('privatekey.ts: the agent-protocol private fields', () => {
  test('RFC 8032 test 1 key: public blob and bits', () => {
    const seed = Buffer.from(
      '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60',
      'hex',
    );
    const pk = Buffer.from(
      'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a',
      'hex',
    );
    const fields = new WireWriter()
      .string(pk)
      .string(Buffer.concat([seed, pk]))
      .toBuffer();
    const key = readPrivateKey(new WireReader(fields), 'ssh-ed25519');
    assert.equal(key.algorithm, 'ed25519');
    assert.equal(key.bits, 256);
    assert.deepEqual(key.publicBlob, new WireWriter().string('ssh-ed25519').string(pk).toBuffer());
    const other = Buffer.concat([Buffer.alloc(32, 1), pk]);
    assert.throws(
      () =>
        readPrivateKey(
          new WireReader(new WireWriter().string(pk).string(other).toBuffer()),
          'ssh-ed25519',
        ),
      WireError,
    );
  });
});
