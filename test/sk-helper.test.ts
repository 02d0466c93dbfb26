// Signing through OpenSSH's real ssh-sk-helper with the software authenticator
// sk-dummy.so (src/agent/sk-helper.ts), the U2F signature verifier
// (src/ssh/sk-signature.ts), checked again by `ssh-keygen -Y verify`, and every
// way the helper can fail: missing, hanging, dying, garbling, provider errors.

import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  DEFAULT_SK_HELPER,
  SSH_SK_HELPER_VERSION,
  skHelperPath,
  skSign,
} from '../src/agent/sk-helper';
import { SK_USER_PRESENCE_REQD, SkPrivateKey, readSkPrivateKey } from '../src/ssh/sk-key';
import { parseSkSignature, skSignedData, verifySkSignature } from '../src/ssh/sk-signature';
import { WireReader, WireWriter } from '../src/ssh/wire';
import { SSH_KEYGEN, alive, baseEnv, mkTemp, rmTemp, run, waitFor } from './fixtures/run';
import { SK_DUMMY, SK_FIXTURES, SK_HELPER, skipUnlessSk } from './fixtures/sk';

const PIN = 'PIN-7f3a9c-never-logged';

/** The key of a recorded ADD_ID_CONSTRAINED fixture. */
function fixtureKey(file: string): SkPrivateKey {
  const r = new WireReader(fs.readFileSync(path.join(SK_FIXTURES, `${file}.add.bin`)).subarray(1));
  return readSkPrivateKey(r.text(), r);
}

const KEYS = ['id_ed25519_sk', 'id_ecdsa_sk', 'id_ed25519_sk-cert', 'id_ecdsa_sk-cert'];

/** An SSHSIG (PROTOCOL.sshsig) of `message`, signed through the helper. */
async function sshsig(
  key: SkPrivateKey,
  pubBlob: Buffer,
  namespace: string,
  message: Buffer,
): Promise<string> {
  const hash = crypto.createHash('sha512').update(message).digest();
  const toSign = Buffer.concat([
    Buffer.from('SSHSIG'),
    new WireWriter().string(namespace).string('').string('sha512').string(hash).toBuffer(),
  ]);
  const sig = await skSign(key, SK_DUMMY, toSign, { timeoutMs: 20_000 });
  assert.ok(sig.ok, JSON.stringify(sig));
  const blob = Buffer.concat([
    Buffer.from('SSHSIG'),
    new WireWriter()
      .uint32(1)
      .string(pubBlob)
      .string(namespace)
      .string('')
      .string('sha512')
      .string(sig.value)
      .toBuffer(),
  ]);
  const b64 = blob.toString('base64').replace(/.{1,70}/g, '$&\n');
  return `-----BEGIN SSH SIGNATURE-----\n${b64}-----END SSH SIGNATURE-----\n`;
}

describe('ssh-sk-helper client: signing with sk-dummy', { skip: skipUnlessSk() }, () => {
  let dir: string;
  before(() => (dir = mkTemp()));
  after(() => rmTemp(dir));

  for (const file of KEYS) {
    it(`${file}: the helper's signature verifies, with user presence`, async () => {
      const key = fixtureKey(file);
      const message = crypto.randomBytes(100);
      const res = await skSign(key, SK_DUMMY, message, { timeoutMs: 20_000 });
      assert.ok(res.ok, JSON.stringify(res));
      const sig = parseSkSignature(res.value);
      assert.equal(sig.algorithm, key.type);
      assert.equal(sig.flags & SK_USER_PRESENCE_REQD, SK_USER_PRESENCE_REQD);
      assert.ok(verifySkSignature(key, message, res.value, SK_USER_PRESENCE_REQD));
      // ...and only for that message, key and application.
      assert.ok(!verifySkSignature(key, Buffer.concat([message, Buffer.of(0)]), res.value));
      assert.ok(!verifySkSignature({ ...key, application: 'ssh:other' }, message, res.value));
      const flipped = Buffer.from(res.value);
      flipped[flipped.length - 10] ^= 1;
      assert.ok(!verifySkSignature(key, message, flipped));
      assert.ok(!verifySkSignature(key, message, res.value.subarray(0, res.value.length - 1)));
      assert.ok(!verifySkSignature(key, message, res.value, 0x04), 'no user verification was done');
    });
  }

  it('the signed data is sha256(application) || flags || counter || sha256(message)', () => {
    const d = skSignedData('ssh:', 1, 0x01020304, Buffer.from('m'));
    assert.equal(d.length, 69);
    assert.deepEqual(d.subarray(0, 32), crypto.createHash('sha256').update('ssh:').digest());
    assert.deepEqual(d.subarray(32, 37), Buffer.of(1, 1, 2, 3, 4));
    assert.deepEqual(d.subarray(37), crypto.createHash('sha256').update('m').digest());
  });

  for (const file of ['id_ed25519_sk', 'id_ecdsa_sk']) {
    it(`${file}: ssh-keygen -Y verify accepts an SSHSIG made through the helper`, async () => {
      const key = fixtureKey(file);
      const pubLine = fs
        .readFileSync(path.join(SK_FIXTURES, `${file}.pub`), 'utf8')
        .trim()
        .split(/\s+/);
      const message = Buffer.from('signed through ssh-sk-helper\n');
      const sigFile = path.join(dir, `${file}.sig`);
      fs.writeFileSync(
        sigFile,
        await sshsig(key, Buffer.from(pubLine[1], 'base64'), 'file', message),
      );
      const signers = path.join(dir, `${file}.signers`);
      fs.writeFileSync(signers, `alice ${pubLine[0]} ${pubLine[1]}\n`);
      const args = ['-Y', 'verify', '-f', signers, '-I', 'alice', '-n', 'file', '-s', sigFile];
      const ok = await run(SSH_KEYGEN, args, { input: message.toString() });
      assert.equal(ok.code, 0, ok.stderr);
      assert.match(ok.stdout, /Good "file" signature for alice/);
      const bad = await run(SSH_KEYGEN, args, { input: 'another message\n' });
      assert.notEqual(bad.code, 0);
    });
  }

  it('a provider that is not there is a provider error, with the helper saying why, never the PIN', async () => {
    const res = await skSign(
      fixtureKey('id_ed25519_sk'),
      path.join(dir, 'no-such.so'),
      Buffer.from('x'),
      {
        pin: PIN,
        timeoutMs: 20_000,
      },
    );
    assert.ok(!res.ok);
    assert.equal(res.error.kind, 'provider');
    assert.equal(res.error.code, -4);
    assert.match(res.error.message, /signing failed.*no-such\.so/);
    assert.ok(!res.error.message.includes(PIN));
  });

  it('a provider that is not a FIDO middleware is a provider error', async () => {
    const notLib = path.join(dir, 'text.so');
    fs.writeFileSync(notLib, 'not a library\n');
    const res = await skSign(fixtureKey('id_ecdsa_sk'), notLib, Buffer.from('x'), {
      timeoutMs: 20_000,
    });
    assert.ok(!res.ok);
    assert.equal(res.error.kind, 'provider');
    assert.match(res.error.message, /is not an OpenSSH FIDO library/);
  });

  it('a key handle the provider cannot use is a provider error', async () => {
    const key = fixtureKey('id_ecdsa_sk');
    const res = await skSign(
      { ...key, keyHandle: Buffer.alloc(64, 1) },
      SK_DUMMY,
      Buffer.from('x'),
      {
        timeoutMs: 20_000,
      },
    );
    assert.ok(!res.ok);
    assert.equal(res.error.kind, 'provider');
  });

  it("a signature by another key handle does not verify as this key's", async () => {
    // sk-dummy's Ed25519 key handle is the private key itself: another handle signs as another key.
    const key = fixtureKey('id_ed25519_sk');
    const message = Buffer.from('m');
    const res = await skSign({ ...key, keyHandle: crypto.randomBytes(64) }, SK_DUMMY, message, {
      timeoutMs: 20_000,
    });
    assert.ok(res.ok, JSON.stringify(res));
    assert.ok(!verifySkSignature(key, message, res.value));
  });
});

describe('ssh-sk-helper client: broken helpers', () => {
  let dir: string;
  before(() => (dir = mkTemp()));
  after(() => rmTemp(dir));

  function script(name: string, body: string): string {
    const file = path.join(dir, name);
    fs.writeFileSync(file, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
    return file;
  }
  const key = () => fixtureKey('id_ed25519_sk');

  it('finds the helper in $SSH_SK_HELPER, else the default path', () => {
    assert.equal(skHelperPath({ SSH_SK_HELPER: '/opt/helper' }), '/opt/helper');
    assert.equal(skHelperPath({ SSH_SK_HELPER: '' }), DEFAULT_SK_HELPER);
    assert.equal(skHelperPath({}), DEFAULT_SK_HELPER);
    assert.equal(DEFAULT_SK_HELPER, SK_HELPER);
  });

  it('a missing helper is "missing", from the option or from $SSH_SK_HELPER', async () => {
    const gone = path.join(dir, 'no-such-helper');
    for (const opts of [{ helper: gone }, { env: baseEnv({ SSH_SK_HELPER: gone }) }]) {
      const res = await skSign(key(), SK_DUMMY, Buffer.from('x'), opts);
      assert.ok(!res.ok);
      assert.equal(res.error.kind, 'missing');
      assert.match(res.error.message, /no-such-helper" unusable/);
    }
  });

  it('a helper that is not executable is "missing"', async () => {
    const file = path.join(dir, 'not-executable');
    fs.writeFileSync(file, '#!/bin/sh\n', { mode: 0o644 });
    const res = await skSign(key(), SK_DUMMY, Buffer.from('x'), { helper: file });
    assert.ok(!res.ok);
    assert.equal(res.error.kind, 'missing');
  });

  it('a helper that hangs is killed after the timeout', async () => {
    const pidFile = path.join(dir, 'hang.pid');
    const helper = script('hang', `echo $$ > ${pidFile}\nexec sleep 600`);
    const res = await skSign(key(), SK_DUMMY, Buffer.from('x'), {
      helper,
      timeoutMs: 1500,
      pin: PIN,
    });
    assert.ok(!res.ok);
    assert.equal(res.error.kind, 'timeout');
    assert.match(res.error.message, /did not answer in 1500 ms \(killed\)/);
    assert.ok(!res.error.message.includes(PIN));
    const pid = Number(fs.readFileSync(pidFile, 'utf8'));
    await waitFor('the hung helper to be gone', () => !alive(pid), 10_000);
  });

  it('a helper that dies is "died", with its exit status and last words', async () => {
    const helper = script('die', 'cat > /dev/null\necho "helper exploded" >&2\nexit 3');
    const res = await skSign(key(), SK_DUMMY, Buffer.from('x'), { helper, timeoutMs: 20_000 });
    assert.ok(!res.ok);
    assert.equal(res.error.kind, 'died');
    assert.match(res.error.message, /exited with status 3: helper exploded/);
  });

  it('a helper killed by a signal is "died"', async () => {
    const helper = script('killed', 'kill -KILL $$');
    const res = await skSign(key(), SK_DUMMY, Buffer.from('x'), { helper, timeoutMs: 20_000 });
    assert.ok(!res.ok);
    assert.equal(res.error.kind, 'died');
    assert.match(res.error.message, /killed by SIGKILL/);
  });

  it("a helper's stderr is escaped in the message", async () => {
    const helper = script('evil', 'printf "\\033]0;pwned\\007 bye\\n" >&2\nexit 1');
    const res = await skSign(key(), SK_DUMMY, Buffer.from('x'), { helper, timeoutMs: 20_000 });
    assert.ok(!res.ok);
    assert.ok(!/[\x00-\x1f]/.test(res.error.message), res.error.message);
    assert.match(res.error.message, /\\x1b\]0;pwned\\x07 bye/);
  });

  it('a helper speaking another version, or another message, or garbage is "protocol"', async () => {
    const v = SSH_SK_HELPER_VERSION;
    const replies: Record<string, string> = {
      version: `\\000\\000\\000\\005\\00${v + 1}\\000\\000\\000\\001`,
      type: `\\000\\000\\000\\005\\00${v}\\000\\000\\000\\002`,
      truncated: `\\000\\000\\000\\007\\00${v}\\000\\000\\000\\001\\000\\000`,
      trailing: `\\000\\000\\000\\012\\00${v}\\000\\000\\000\\001\\000\\000\\000\\000\\000`,
      huge: '\\177\\377\\377\\377',
    };
    for (const [name, reply] of Object.entries(replies)) {
      const helper = script(`reply-${name}`, `printf '${reply}'\ncat > /dev/null`);
      const res = await skSign(key(), SK_DUMMY, Buffer.from('x'), { helper, timeoutMs: 20_000 });
      assert.ok(!res.ok, name);
      assert.equal(res.error.kind, 'protocol', `${name}: ${res.error.message}`);
    }
  });

  it('a helper that answers but exits non-zero is a failure (reap_helper)', async () => {
    const v = SSH_SK_HELPER_VERSION;
    const reply = `\\000\\000\\000\\011\\00${v}\\000\\000\\000\\001\\000\\000\\000\\000`;
    const helper = script('answer-then-fail', `printf '${reply}'\nexit 2`);
    const res = await skSign(key(), SK_DUMMY, Buffer.from('x'), { helper, timeoutMs: 20_000 });
    assert.ok(!res.ok);
    assert.equal(res.error.kind, 'died');
  });

  it("the helper's error code becomes the failure (wrong PIN is its own kind)", async () => {
    const v = SSH_SK_HELPER_VERSION;
    const err = (code: number) =>
      `\\000\\000\\000\\011\\00${v}\\000\\000\\000\\000\\000\\000\\000\\${code.toString(8).padStart(3, '0')}`;
    const wrong = script('wrong-pin', `cat > /dev/null\nprintf '${err(43)}'`);
    const res = await skSign(key(), SK_DUMMY, Buffer.from('x'), {
      helper: wrong,
      pin: PIN,
      timeoutMs: 20_000,
    });
    assert.ok(!res.ok);
    assert.equal(res.error.kind, 'wrong-pin');
    assert.equal(res.error.code, -43);
    assert.ok(!res.error.message.includes(PIN));
    const nodev = script('no-device', `cat > /dev/null\nprintf '${err(60)}'`);
    const res2 = await skSign(key(), SK_DUMMY, Buffer.from('x'), {
      helper: nodev,
      timeoutMs: 20_000,
    });
    assert.ok(!res2.ok);
    assert.equal(res2.error.kind, 'provider');
    assert.match(res2.error.message, /device not found/);
  });

  it('sends the request ssh-sk-client.c sends (version, SIGN, key, provider, data, alg, compat, pin)', async () => {
    const out = path.join(dir, 'request.bin');
    const helper = script('record', `cat > ${out}`);
    await skSign(key(), SK_DUMMY, Buffer.from('data!'), { helper, pin: PIN, timeoutMs: 20_000 });
    const req = fs.readFileSync(out);
    const r = new WireReader(req);
    assert.equal(r.uint32(), req.length - 4);
    assert.equal(r.byte(), SSH_SK_HELPER_VERSION);
    assert.equal(r.uint32(), 1); // SSH_SK_HELPER_SIGN
    r.byte(); // log on stderr
    r.uint32(); // log level
    const kr = new WireReader(r.string());
    assert.deepEqual(readSkPrivateKey(kr.text(), kr), key());
    kr.end();
    assert.equal(r.text(), SK_DUMMY);
    assert.equal(r.text(), 'data!');
    assert.equal(r.text(), '');
    assert.equal(r.uint32(), 0);
    assert.equal(r.text(), PIN);
    r.end();
  });
});
