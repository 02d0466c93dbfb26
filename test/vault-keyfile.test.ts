// Key file import: every type and input format produced by the real tools
// (ssh-keygen, openssl), compared with what those tools say about the key.
import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ImportedKey, KeyFileError, parseKeyFile } from '../src/vault/keyfile';
import {
  authorizedKeysLine,
  checkGenerateBits,
  fromKeyObject,
  generateKey,
  KeyMaterial,
  keyBits,
  toPrivateKeyObject,
} from '../src/vault/sshkey';
import { fingerprint } from '../src/ssh/fingerprint';
import { VaultFile } from '../src/vault/store';
import { WireReader as Reader } from '../src/ssh/wire';
import {
  filesContainingSecrets,
  makePpkV2,
  OPENSSL,
  run,
  secretParts,
  SMALL_KDF,
  SSH_KEYGEN,
} from './fixtures/vault';

const KEY_PASS = 'key pass 1';
const findTool = (candidates: string[]) => candidates.find((c) => fs.existsSync(c));

interface Case {
  name: string;
  file: string;
  format: ImportedKey['format'];
  keyType: string;
  bits: number;
  passphrase?: string;
  /** The public key line the key must have ("type base64 ..."). */
  expectedPub: string;
  comment: string;
}

/** Parse the clear private section of an unencrypted openssh-key-v1 file: the agent fields live there verbatim. */
function opensshPrivateFields(file: string): { keyType: string; fields: Buffer } {
  const b64 = fs
    .readFileSync(file, 'utf8')
    .replace(/-----[A-Z ]+-----/g, '')
    .replace(/\s+/g, '');
  const raw = Buffer.from(b64, 'base64');
  const r = new Reader(raw.subarray('openssh-key-v1\0'.length));
  assert.equal(r.text(), 'none');
  r.string(); // kdf name
  r.string(); // kdf options
  assert.equal(r.uint32(), 1);
  r.string(); // public key
  const priv = new Reader(r.string());
  assert.equal(priv.uint32(), priv.uint32(), 'check ints');
  const keyType = priv.text();
  const count = keyType === 'ssh-ed25519' ? 2 : keyType.startsWith('ecdsa-') ? 3 : 6;
  const rest = priv.rest();
  const fields = new Reader(rest);
  for (let i = 0; i < count; i++) fields.string();
  return { keyType, fields: rest.subarray(0, rest.length - fields.remaining) };
}

function signAndVerify(km: KeyMaterial): void {
  const key = toPrivateKeyObject(km);
  const data = Buffer.from('tsagent vault test data');
  const alg = key.asymmetricKeyType === 'ed25519' ? null : 'sha256';
  const sig = crypto.sign(alg, data, key);
  assert.ok(crypto.verify(alg, data, crypto.createPublicKey(key), sig));
}

describe('key file import', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsagent-keyfile-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const cases: Case[] = [];
  const keygen = findTool(SSH_KEYGEN);
  const openssl = findTool(OPENSSL);
  const pubOf = (file: string) => run(keygen as string, ['-y', '-f', file, '-P', '']).trim();

  before(() => {
    if (!keygen) {
      if (process.env.CI) throw new Error('ssh-keygen is required on CI');
      return;
    }
    const make = (
      name: string,
      args: string[],
      format: Case['format'],
      keyType: string,
      bits: number,
      pass?: string,
    ) => {
      const file = path.join(dir, name);
      run(keygen, ['-q', ...args, '-N', pass ?? '', '-C', `${name}@test`, '-f', file]);
      // Only the OpenSSH container keeps a comment; otherwise the file name stands in (as with ssh-add).
      const comment = format === 'openssh' ? `${name}@test` : file;
      const expectedPub = fs.readFileSync(file + '.pub', 'utf8').trim();
      cases.push({ name, file, format, keyType, bits, passphrase: pass, expectedPub, comment });
    };
    make('openssh-ed25519', ['-t', 'ed25519'], 'openssh', 'ssh-ed25519', 256);
    make('openssh-ecdsa256', ['-t', 'ecdsa', '-b', '256'], 'openssh', 'ecdsa-sha2-nistp256', 256);
    make('openssh-ecdsa384', ['-t', 'ecdsa', '-b', '384'], 'openssh', 'ecdsa-sha2-nistp384', 384);
    make('openssh-ecdsa521', ['-t', 'ecdsa', '-b', '521'], 'openssh', 'ecdsa-sha2-nistp521', 521);
    make('openssh-rsa', ['-t', 'rsa', '-b', '2048'], 'openssh', 'ssh-rsa', 2048);
    make('openssh-enc-ed25519', ['-t', 'ed25519'], 'openssh', 'ssh-ed25519', 256, KEY_PASS);
    make(
      'openssh-enc-ecdsa521',
      ['-t', 'ecdsa', '-b', '521'],
      'openssh',
      'ecdsa-sha2-nistp521',
      521,
      KEY_PASS,
    );
    make('openssh-enc-rsa', ['-t', 'rsa', '-b', '2048'], 'openssh', 'ssh-rsa', 2048, KEY_PASS);
    make('pem-pkcs1-rsa', ['-t', 'rsa', '-b', '2048', '-m', 'PEM'], 'pem', 'ssh-rsa', 2048);
    make(
      'pem-pkcs1-enc-rsa',
      ['-t', 'rsa', '-b', '2048', '-m', 'PEM'],
      'pem',
      'ssh-rsa',
      2048,
      KEY_PASS,
    );
    make(
      'pem-sec1-ecdsa384',
      ['-t', 'ecdsa', '-b', '384', '-m', 'PEM'],
      'pem',
      'ecdsa-sha2-nistp384',
      384,
    );
    make(
      'pem-sec1-enc-ecdsa256',
      ['-t', 'ecdsa', '-m', 'PEM'],
      'pem',
      'ecdsa-sha2-nistp256',
      256,
      KEY_PASS,
    );
    make('pkcs8-ecdsa256', ['-t', 'ecdsa', '-m', 'PKCS8'], 'pem', 'ecdsa-sha2-nistp256', 256);
    make('pkcs8-rsa', ['-t', 'rsa', '-b', '2048', '-m', 'PKCS8'], 'pem', 'ssh-rsa', 2048);
    make(
      'pkcs8-enc-rsa',
      ['-t', 'rsa', '-b', '2048', '-m', 'PKCS8'],
      'pem',
      'ssh-rsa',
      2048,
      KEY_PASS,
    );
    make(
      'pkcs8-enc-ecdsa521',
      ['-t', 'ecdsa', '-b', '521', '-m', 'PKCS8'],
      'pem',
      'ecdsa-sha2-nistp521',
      521,
      KEY_PASS,
    );

    // PuTTY v2 (rsa only in ssh2's parser); puttygen is not needed to build one.
    const rsaSource = cases.find((c) => c.name === 'pkcs8-rsa') as Case;
    const rsaKey = crypto.createPrivateKey(fs.readFileSync(rsaSource.file));
    for (const pass of [undefined, KEY_PASS]) {
      const name = pass ? 'ppk-enc-rsa' : 'ppk-rsa';
      const file = path.join(dir, name + '.ppk');
      fs.writeFileSync(file, makePpkV2(rsaKey, `${name}@putty`, pass));
      cases.push({
        ...rsaSource,
        name,
        file,
        format: 'ppk',
        passphrase: pass,
        comment: `${name}@putty`,
      });
    }

    // Node-written keys: ed25519 as PKCS#8 (ssh-keygen writes ed25519 only as OpenSSH), and DER.
    const ed = crypto.generateKeyPairSync('ed25519').privateKey;
    const edPub = authorizedKeysLine(fromKeyObject(ed, ''));
    const edFile = path.join(dir, 'pkcs8-ed25519.pem');
    fs.writeFileSync(edFile, ed.export({ format: 'pem', type: 'pkcs8' }));
    cases.push({
      name: 'pkcs8-ed25519',
      file: edFile,
      format: 'pem',
      keyType: 'ssh-ed25519',
      bits: 256,
      expectedPub: edPub,
      comment: edFile,
    });
    const edEncFile = path.join(dir, 'pkcs8-enc-ed25519.pem');
    fs.writeFileSync(
      edEncFile,
      ed.export({ format: 'pem', type: 'pkcs8', cipher: 'aes-256-cbc', passphrase: KEY_PASS }),
    );
    cases.push({
      name: 'pkcs8-enc-ed25519',
      file: edEncFile,
      format: 'pem',
      keyType: 'ssh-ed25519',
      bits: 256,
      expectedPub: edPub,
      comment: edEncFile,
      passphrase: KEY_PASS,
    });
    const derFile = path.join(dir, 'rsa.der');
    fs.writeFileSync(derFile, rsaKey.export({ format: 'der', type: 'pkcs1' }));
    cases.push({
      ...rsaSource,
      name: 'der-pkcs1-rsa',
      file: derFile,
      format: 'der',
      comment: derFile,
    });

    if (!openssl) {
      if (process.env.CI) throw new Error('openssl is required on CI');
      return;
    }
    // PKCS#12 from openssl: modern defaults (AES/PBKDF2), -legacy (RC2/3DES), and no password.
    const p12 = (
      name: string,
      source: Case | { file: string; expectedPub: string; keyType: string; bits: number },
      extra: string[],
      pass?: string,
    ) => {
      const file = path.join(dir, name + '.p12');
      run(openssl, [
        'pkcs12',
        '-export',
        '-nocerts',
        '-inkey',
        source.file,
        '-passout',
        `pass:${pass ?? ''}`,
        '-out',
        file,
        ...extra,
      ]);
      cases.push({
        name,
        file,
        format: 'pkcs12',
        keyType: source.keyType,
        bits: source.bits,
        expectedPub: source.expectedPub,
        passphrase: pass,
        comment: file,
      });
    };
    p12('p12-rsa', rsaSource, [], KEY_PASS);
    p12('p12-legacy-rsa', rsaSource, ['-legacy'], KEY_PASS);
    p12('p12-nopass-rsa', rsaSource, []);
    p12('p12-ecdsa256', cases.find((c) => c.name === 'pkcs8-ecdsa256') as Case, [], KEY_PASS);
    p12(
      'p12-ed25519',
      { file: edFile, expectedPub: edPub, keyType: 'ssh-ed25519', bits: 256 },
      [],
      KEY_PASS,
    );
    // With a certificate and a friendlyName: the name becomes the comment.
    const cert = path.join(dir, 'cert.pem');
    run(openssl, [
      'req',
      '-new',
      '-x509',
      '-key',
      rsaSource.file,
      '-subj',
      '/CN=tsagent test',
      '-days',
      '1',
      '-out',
      cert,
    ]);
    const named = path.join(dir, 'p12-named-rsa.p12');
    run(openssl, [
      'pkcs12',
      '-export',
      '-inkey',
      rsaSource.file,
      '-in',
      cert,
      '-name',
      'work key',
      '-passout',
      `pass:${KEY_PASS}`,
      '-out',
      named,
    ]);
    cases.push({
      ...rsaSource,
      name: 'p12-named-rsa',
      file: named,
      format: 'pkcs12',
      passphrase: KEY_PASS,
      comment: 'work key',
    });
  });

  it('imports every type and format with the right public key, fingerprint, bits and comment', (t) => {
    if (!keygen) return t.skip('ssh-keygen not installed');
    assert.ok(cases.length >= 20, `only ${cases.length} cases`);
    for (const c of cases) {
      const data = fs.readFileSync(c.file);
      const km = parseKeyFile(data, {
        defaultComment: c.file,
        passphrase: c.passphrase ? Buffer.from(c.passphrase) : undefined,
      });
      const [type, b64] = c.expectedPub.split(' ');
      assert.equal(km.keyType, c.keyType, c.name);
      assert.equal(km.keyType, type, c.name);
      assert.equal(km.publicBlob.toString('base64'), b64, `${c.name}: public key`);
      assert.equal(km.format, c.format, c.name);
      assert.equal(keyBits(km), c.bits, c.name);
      assert.equal(km.comment, c.comment, `${c.name}: comment`);
      // ssh-keygen agrees on the fingerprint and the size.
      const listed = run(keygen, ['-l', '-f', '-'], authorizedKeysLine(km) + '\n');
      assert.equal(listed.split(' ')[0], String(c.bits), c.name);
      assert.equal(listed.split(' ')[1], fingerprint(km.publicBlob), c.name);
      signAndVerify(km);
    }
  });

  it('produces exactly the agent-protocol private fields OpenSSH stores', (t) => {
    if (!keygen) return t.skip('ssh-keygen not installed');
    for (const c of cases.filter((x) => x.format === 'openssh' && !x.passphrase)) {
      const km = parseKeyFile(fs.readFileSync(c.file), { defaultComment: '' });
      const { keyType, fields } = opensshPrivateFields(c.file);
      assert.equal(km.keyType, keyType);
      assert.ok(
        km.privateFields.equals(fields),
        `${c.name}: privateFields differ from the OpenSSH file`,
      );
    }
  });

  it('matches what ssh-keygen derives from the private key file', (t) => {
    if (!keygen) return t.skip('ssh-keygen not installed');
    for (const c of cases.filter((x) => x.format === 'openssh' && !x.passphrase)) {
      const km = parseKeyFile(fs.readFileSync(c.file), { defaultComment: '' });
      assert.equal(pubOf(c.file).split(' ')[1], km.publicBlob.toString('base64'), c.name);
    }
  });

  it('tells "needs a passphrase", "wrong passphrase" and "not a key" apart', (t) => {
    if (!keygen) return t.skip('ssh-keygen not installed');
    const encrypted = cases.filter((c) => c.passphrase);
    assert.ok(new Set(encrypted.map((c) => c.format)).size >= (openssl ? 4 : 3));
    for (const c of encrypted) {
      const data = fs.readFileSync(c.file);
      assert.throws(
        () => parseKeyFile(data, { defaultComment: '' }),
        { code: 'NEEDS_PASSPHRASE' },
        c.name,
      );
      assert.throws(
        () => parseKeyFile(data, { defaultComment: '', passphrase: Buffer.from('not it') }),
        (err: KeyFileError) =>
          err.code === 'WRONG_PASSPHRASE' && /wrong passphrase/.test(err.message),
        c.name,
      );
    }
    const notKeys: [string, Buffer][] = [
      ['empty', Buffer.alloc(0)],
      ['text', Buffer.from('hello world\n')],
      ['random', crypto.randomBytes(300)],
      ['der garbage', Buffer.concat([Buffer.of(0x30, 0x82, 0x01, 0x00), crypto.randomBytes(256)])],
      ['public key', Buffer.from(cases[0].expectedPub + '\n')],
      ['truncated OpenSSH', fs.readFileSync(cases[0].file).subarray(0, 200)],
    ];
    for (const [name, data] of notKeys)
      assert.throws(() => parseKeyFile(data, { defaultComment: '' }), { code: 'NOT_A_KEY' }, name);
  });

  it('refuses unsupported algorithms and formats with a way out', () => {
    // DSA keys are supported since issue 12 (ssh-dss as OpenSSH 9.2): Ed448 is not.
    const dsa = crypto.generateKeyPairSync('dsa', {
      modulusLength: 1024,
      divisorLength: 160,
    }).privateKey;
    const km = parseKeyFile(Buffer.from(dsa.export({ format: 'pem', type: 'pkcs8' }) as string), {
      defaultComment: '',
    });
    assert.equal(km.keyType, 'ssh-dss');
    assert.equal(toPrivateKeyObject(km).asymmetricKeyType, 'dsa');
    const ed448 = crypto.generateKeyPairSync('ed448').privateKey;
    assert.throws(
      () =>
        parseKeyFile(Buffer.from(ed448.export({ format: 'pem', type: 'pkcs8' }) as string), {
          defaultComment: '',
        }),
      (err: KeyFileError) => err.code === 'UNSUPPORTED' && /ed448/.test(err.message),
    );
    const ppk3 = 'PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: x\n';
    assert.throws(
      () => parseKeyFile(Buffer.from(ppk3), { defaultComment: '' }),
      (err: KeyFileError) => err.code === 'UNSUPPORTED' && /puttygen/.test(err.message),
    );
  });

  it('stores every imported key in a vault without any secret byte in its files', async (t) => {
    if (!keygen) return t.skip('ssh-keygen not installed');
    const vaultDir = path.join(dir, 'vaultdir');
    const file = new VaultFile(path.join(vaultDir, 'vault'));
    const vault = await file.create(Buffer.from('vault pass'), SMALL_KDF);
    const keys = cases.map((c) =>
      parseKeyFile(fs.readFileSync(c.file), {
        defaultComment: c.file,
        passphrase: c.passphrase ? Buffer.from(c.passphrase) : undefined,
      }),
    );
    const { added, skipped } = vault.add(keys);
    assert.equal(added.length + skipped.length, keys.length);
    vault.rename(added[0].comment, 'renamed'); // a second write, so vault.bak holds keys too
    const reopened = await file.unlock(Buffer.from('vault pass'));
    assert.equal(reopened.identities.length, added.length);
    for (const id of reopened.identities) {
      const original = added.find((a) => a.publicBlob.equals(id.publicBlob)) as KeyMaterial;
      assert.ok(id.privateFields.equals(original.privateFields));
      signAndVerify(id);
    }
    assert.ok(fs.existsSync(file.backupPath));
    const secrets = keys.flatMap(secretParts);
    assert.deepEqual(filesContainingSecrets(vaultDir, secrets), []);
    // Sanity: the scan does find secrets where they are.
    assert.ok(filesContainingSecrets(dir, secrets).length > 0);
  });
});

describe('key generation', () => {
  it('creates each type and size, consistent with ssh-keygen', async (t) => {
    const keygen = findTool(SSH_KEYGEN);
    for (const [type, bits] of [
      ['ed25519', undefined],
      ['ecdsa', undefined],
      ['ecdsa', 384],
      ['ecdsa', 521],
      ['rsa', 1024],
    ] as const) {
      const km = await generateKey(type, bits, `gen-${type}`);
      assert.equal(keyBits(km), checkGenerateBits(type, bits));
      signAndVerify(km);
      const line = authorizedKeysLine(km);
      assert.match(line, new RegExp(`^${km.keyType} AAAA\\S+ gen-${type}$`));
      if (keygen) {
        const listed = run(keygen, ['-l', '-f', '-'], line + '\n').trim();
        assert.equal(
          listed,
          `${keyBits(km)} ${fingerprint(km.publicBlob)} gen-${type} (${listed.split('(')[1]}`,
        );
      } else if (process.env.CI) throw new Error('ssh-keygen is required on CI');
      else t.diagnostic('ssh-keygen missing: fingerprint not cross-checked');
    }
  });

  it('checks -b like ssh-keygen', () => {
    assert.equal(checkGenerateBits('rsa'), 3072);
    assert.equal(checkGenerateBits('ecdsa'), 256);
    assert.throws(() => checkGenerateBits('ecdsa', 300), /256, 384 or 521/);
    assert.throws(() => checkGenerateBits('rsa', 512), /1024/);
    assert.throws(() => checkGenerateBits('ed25519', 512), /fixed size/);
  });

  it('rejects private fields that do not match the public key', async () => {
    const a = await generateKey('ed25519', undefined, 'a');
    const b = await generateKey('ed25519', undefined, 'b');
    assert.throws(() => toPrivateKeyObject({ ...a, publicBlob: b.publicBlob }), /does not match/);
    const rsa = await generateKey('rsa', 1024, 'r');
    const broken = Buffer.from(rsa.privateFields);
    broken[broken.length - 5] ^= 1; // inside q
    assert.throws(
      () => toPrivateKeyObject({ ...rsa, privateFields: broken }),
      /inconsistent|invalid|does not match/,
    );
  });
});
