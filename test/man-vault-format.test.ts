// tsagent-vault(5) is complete: a reader written only from the man page (node's
// crypto and the argon2 package; nothing from src/) opens a vault made by
// `tsagent vault`, and finds the keys `tsagent vault export-pub` prints.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';

const REPO = path.resolve(__dirname, '..', '..');
const MAIN = path.join(REPO, 'dist', 'src', 'cli', 'main.js');
const PASS = 'man page reader';

/** `tsagent vault --vault V --passphrase-fd 3 ARGS`, the passphrase lines on fd 3. */
function vault(
  vaultPath: string,
  args: string[],
  lines: string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [MAIN, 'vault', '--vault', vaultPath, '--passphrase-fd', '3', ...args],
      {
        stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
        env: { PATH: process.env.PATH, HOME: path.dirname(vaultPath), LANG: 'C' },
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    const fd3 = child.stdio[3] as NodeJS.WritableStream;
    fd3.on('error', () => {});
    fd3.end(lines.map((l) => l + '\n').join(''));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

// ---- the reader, from the man page -------------------------------------------

class Wire {
  off = 0;
  constructor(readonly b: Buffer) {}
  u32(): number {
    const v = this.b.readUInt32BE(this.off);
    this.off += 4;
    return v;
  }
  str(): Buffer {
    const n = this.u32();
    assert.ok(this.off + n <= this.b.length, 'string runs past the end');
    const v = this.b.subarray(this.off, this.off + n);
    this.off += n;
    return v;
  }
}

interface ManIdentity {
  keyType: string;
  publicBlob: Buffer;
  privateFields: Buffer;
  meta: Record<string, unknown>;
}

async function readVaultPerManPage(file: Buffer, passphrase: Buffer) {
  // File layout
  assert.equal(file.subarray(0, 8).toString('latin1'), 'TSAGENTV');
  assert.equal(file.readUInt16BE(8), 1, 'format version');
  assert.ok(file.length >= 118);
  const digest = crypto
    .createHash('sha256')
    .update(file.subarray(0, file.length - 32))
    .digest();
  assert.ok(digest.equals(file.subarray(file.length - 32)), 'trailing SHA-256');
  assert.equal(file[10], 1, 'KDF id argon2id');
  const memory = file.readUInt32BE(11);
  const time = file.readUInt32BE(15);
  const parallelism = file[19];
  assert.equal(file[20], 16, 'salt length');
  const salt = file.subarray(21, 37);
  assert.equal(file[37], 1, 'cipher id AES-256-GCM');
  const nonce = file.subarray(38, 50);
  const keyCheck = file.subarray(50, 66);
  const n = file.readUInt32BE(66);
  assert.equal(n, file.length - 118, 'ciphertext length');
  const header = file.subarray(0, 70);
  const ciphertext = file.subarray(70, 70 + n);
  const tag = file.subarray(70 + n, 86 + n);

  // Key derivation
  const argon2 = await import('argon2');
  const master = await argon2.hash(passphrase, {
    type: argon2.argon2id,
    version: 0x13,
    raw: true,
    salt,
    memoryCost: memory,
    timeCost: time,
    parallelism,
    hashLength: 32,
  });
  const prk = crypto.createHmac('sha256', Buffer.alloc(32)).update(master).digest();
  const expand = (info: string, len: number) => {
    // HKDF-Expand, RFC 5869 section 2.3, written out.
    let t = Buffer.alloc(0);
    let okm = Buffer.alloc(0);
    for (let i = 1; okm.length < len; i++) {
      t = crypto
        .createHmac('sha256', prk)
        .update(Buffer.concat([t, Buffer.from(info, 'ascii'), Buffer.of(i)]))
        .digest();
      okm = Buffer.concat([okm, t]);
    }
    return okm.subarray(0, len);
  };
  const encKey = expand('tsagent vault v1 aes-256-gcm key', 32);
  if (!crypto.timingSafeEqual(expand('tsagent vault v1 key check', 16), keyCheck))
    return { wrongPassphrase: true as const };
  const d = crypto.createDecipheriv('aes-256-gcm', encKey, nonce);
  d.setAAD(header);
  d.setAuthTag(tag);
  const plain = Buffer.concat([d.update(ciphertext), d.final()]);

  // Payload
  assert.equal(plain.length % 4096, 0, 'padded to a multiple of 4096');
  const r = new Wire(plain);
  const count = r.u32();
  const identities: ManIdentity[] = [];
  for (let i = 0; i < count; i++) {
    const keyType = r.str().toString('utf8');
    const publicBlob = Buffer.from(r.str());
    const privateFields = Buffer.from(r.str());
    const meta = JSON.parse(r.str().toString('utf8')) as Record<string, unknown>;
    assert.equal(new Wire(publicBlob).str().toString(), keyType, 'blob starts with the key type');
    identities.push({ keyType, publicBlob, privateFields, meta });
  }
  const padding = plain.subarray(r.off);
  assert.ok(padding.length >= 1 && padding.length <= 4096, 'at least one padding byte');
  assert.ok(
    padding.every((b) => b === 0),
    'zero padding',
  );
  return { wrongPassphrase: false as const, identities, kdf: { memory, time, parallelism } };
}

describe('tsagent-vault(5): a reader written from the man page', () => {
  let dir: string;
  let vaultPath: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsagent-man5-'));
    vaultPath = path.join(dir, 'data', 'vault');
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('opens a vault made by tsagent vault and finds its keys', async () => {
    let r = await vault(
      vaultPath,
      ['init', '--kdf-memory', '1024', '--kdf-time', '1'],
      [PASS, PASS],
    );
    assert.equal(r.code, 0, r.stderr);
    const pubs: Record<string, string> = {};
    for (const [type, bits] of [
      ['ed25519', ''],
      ['ecdsa', '384'],
      ['rsa', '1024'],
    ]) {
      r = await vault(
        vaultPath,
        ['generate', '-t', type, ...(bits ? ['-b', bits] : []), '-C', `man-${type}`, '--confirm'],
        [PASS],
      );
      assert.equal(r.code, 0, r.stderr);
      pubs[`man-${type}`] = r.stdout.trim();
    }
    const bytes = fs.readFileSync(vaultPath);
    assert.equal((await readVaultPerManPage(bytes, Buffer.from('nope'))).wrongPassphrase, true);
    const v = await readVaultPerManPage(bytes, Buffer.from(PASS));
    assert.ok(!v.wrongPassphrase);
    assert.deepEqual(v.kdf, { memory: 1024, time: 1, parallelism: 1 });
    assert.equal(v.identities.length, 3);
    assert.equal(bytes.length, 4096 + 118, 'three small keys fit one 4096-byte block');
    for (const id of v.identities) {
      const comment = id.meta.comment as string;
      assert.equal(typeof id.meta.created, 'number');
      assert.equal(id.meta.confirm, true);
      // The public blob is what authorized_keys base64-encodes.
      const [type, b64] = pubs[comment].split(' ');
      assert.equal(id.keyType, type);
      assert.equal(id.publicBlob.toString('base64'), b64, comment);
      // The private fields are those of SSH_AGENTC_ADD_IDENTITY: check they make the public key.
      const f = new Wire(id.privateFields);
      if (type === 'ssh-ed25519') {
        const pk = f.str();
        const sk = f.str();
        assert.equal(sk.length, 64);
        assert.ok(sk.subarray(32).equals(pk));
        const key = crypto.createPrivateKey({
          key: {
            kty: 'OKP',
            crv: 'Ed25519',
            d: sk.subarray(0, 32).toString('base64url'),
            x: pk.toString('base64url'),
          },
          format: 'jwk',
        });
        const jwk = crypto.createPublicKey(key).export({ format: 'jwk' });
        assert.equal(jwk.x, pk.toString('base64url'));
      } else if (type.startsWith('ecdsa-sha2-')) {
        assert.equal(f.str().toString(), 'nistp384');
        const q = f.str();
        assert.equal(q[0], 4);
        const dScalar = f.str();
        const ecdh = crypto.createECDH('secp384r1');
        ecdh.setPrivateKey(dScalar[0] === 0 ? dScalar.subarray(1) : dScalar);
        assert.ok(ecdh.getPublicKey().equals(q));
      } else {
        const [n, e, dd, iqmp, p, q] = [f.str(), f.str(), f.str(), f.str(), f.str(), f.str()];
        const big = (b: Buffer) => BigInt('0x' + b.toString('hex'));
        assert.equal(big(p) * big(q), big(n));
        assert.equal((big(iqmp) * big(q)) % big(p), 1n, 'iqmp = q^-1 mod p');
        assert.equal(big(e), 65537n);
        assert.ok(dd.length > 0);
      }
      assert.equal(f.off, id.privateFields.length, `${comment}: no trailing bytes`);
    }
  });
});
