// Nothing secret in the debug log: with `-d`, add keys of every type (and a
// certificate) with ssh-add, sign with each, lock and unlock with a passphrase,
// try a wrong one, send malformed LOCK/UNLOCK and an ADD that fails, lock with
// SIGUSR1; then the captured stdout/stderr must hold none of the private numbers
// (Ed25519 seed, ECDSA d, RSA d/p/q; hex, base64, base64url, any 12-byte
// window in hex), nor the lock passphrases; and no recovery secret is written.

import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { AgentClient } from '../src/agent/client';
import { WireReader } from '../src/ssh/wire';
import { Tsagent, startTsagent } from './fuzz/agent';
import { frame, rawRequest } from './fixtures/agent';
import { Askpass, KEY_TYPES, TestKey, makeKey, publicBlob } from './fixtures/keys';
import {
  SSH_ADD,
  SSH_KEYGEN,
  baseEnv,
  mkTemp,
  rmTemp,
  run,
  skipUnless,
  waitFor,
} from './fixtures/run';

const skip = skipUnless([SSH_ADD, SSH_KEYGEN]);
const LOCK_PASS = 'Correct-Horse-lock-9b1f2e';
const WRONG_PASS = 'Wrong-Battery-guess-77d0aa';
const MALFORMED_PASS = 'Malformed-Staple-4c4c4c';

/** The secret numbers of an unencrypted OpenSSH private key file. */
function privateNumbers(file: string): Buffer[] {
  const b64 = fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l && !l.startsWith('-----'))
    .join('');
  const raw = Buffer.from(b64, 'base64');
  const magic = 'openssh-key-v1\0';
  assert.equal(raw.subarray(0, magic.length).toString('latin1'), magic);
  const r = new WireReader(raw.subarray(magic.length));
  assert.equal(r.text(), 'none', 'the key must not be encrypted');
  r.string(); // kdf
  r.string(); // kdf options
  assert.equal(r.uint32(), 1);
  r.string(); // public key
  const p = new WireReader(r.string());
  p.uint32();
  p.uint32(); // check ints
  const type = p.text();
  if (type === 'ssh-ed25519') {
    p.string(); // pk
    const sk = p.string();
    return [sk.subarray(0, 32), sk];
  }
  if (type.startsWith('ecdsa-sha2-')) {
    p.string(); // curve
    p.string(); // Q
    return [p.mpint()];
  }
  if (type === 'ssh-rsa') {
    p.mpint(); // n
    p.mpint(); // e
    const d = p.mpint();
    const iqmp = p.mpint();
    return [d, iqmp, p.mpint(), p.mpint()];
  }
  throw new Error(`unexpected key type ${type}`);
}

/** Encodings of a secret that a careless log line could contain. */
function forms(secret: Buffer): string[] {
  const out = new Set<string>();
  out.add(secret.toString('hex'));
  out.add(secret.toString('hex').toUpperCase());
  out.add(secret.toString('base64').replace(/=+$/, ''));
  out.add(secret.toString('base64url'));
  // Any 12-byte window, in hex (a partial dump).
  for (let i = 0; i + 12 <= secret.length; i += 4)
    out.add(secret.subarray(i, i + 12).toString('hex'));
  return [...out];
}

function textForms(s: string): string[] {
  const b = Buffer.from(s);
  return [s, b.toString('hex'), b.toString('base64').replace(/=+$/, ''), JSON.stringify(s)];
}

describe('no secrets in the debug log', { skip }, () => {
  let dir: string;
  let keys: TestKey[];
  let certKey: TestKey;
  let agent: Tsagent;
  let askpass: Askpass;

  before(async () => {
    dir = mkTemp();
    askpass = new Askpass(dir);
    keys = await Promise.all(KEY_TYPES.map((t) => makeKey(dir, t)));
    // A user certificate for one more key, signed by a CA (ssh-add adds key and certificate).
    const ca = await makeKey(dir, KEY_TYPES[0], { name: 'ca' });
    certKey = await makeKey(dir, KEY_TYPES[1], { name: 'certified' });
    const r = await run(SSH_KEYGEN, [
      '-q',
      '-s',
      ca.priv,
      '-I',
      'secrets-test',
      '-n',
      'root',
      certKey.pub,
    ]);
    assert.equal(r.code, 0, r.stderr);
    agent = await startTsagent({ debug: true });
  });
  after(async () => {
    await agent?.stop();
    rmTemp(dir);
  });

  const sshAdd = (args: string[], env: Record<string, string | undefined> = {}) =>
    run(SSH_ADD, args, { env: baseEnv({ SSH_AUTH_SOCK: agent.sock, ...env }) });

  it('exercise the agent: add, sign, lock, unlock, malformed and refused requests', async () => {
    let r = await sshAdd([...keys.map((k) => k.priv), certKey.priv]);
    assert.equal(r.code, 0, r.stderr);
    r = await sshAdd(['-t', '600', keys[0].priv]); // constrained re-add
    assert.equal(r.code, 0, r.stderr);
    r = await sshAdd(['-l']);
    assert.equal(r.stdout.trim().split('\n').length, keys.length + 2, r.stdout);

    // Sign with each key and the certificate; then once through ssh-keygen -Y sign.
    const c = await AgentClient.connect(agent.sock);
    try {
      for (const k of keys) {
        for (const flags of k.type.name.startsWith('rsa') ? [0, 2, 4] : [0]) {
          const res = await c.request({
            type: 'sign',
            keyBlob: publicBlob(k),
            data: crypto.randomBytes(64),
            flags,
          });
          assert.equal(res.type, 'signature', k.type.name);
        }
      }
      const ids = await c.request({ type: 'request-identities' });
      assert.equal(ids.type, 'identities');
      const cert =
        ids.type === 'identities'
          ? ids.identities.find((i) =>
              i.keyBlob.toString('latin1').includes('-cert-v01@openssh.com'),
            )
          : undefined;
      assert.ok(cert, 'certificate listed');
      assert.equal(
        (await c.request({ type: 'sign', keyBlob: cert.keyBlob, data: Buffer.from('x'), flags: 0 }))
          .type,
        'signature',
      );
      // A sign with an unknown key and an ADD that fails (private part does not match) are logged.
      assert.equal(
        (
          await c.request({
            type: 'sign',
            keyBlob: Buffer.from('nonsense'),
            data: Buffer.from('x'),
            flags: 0,
          })
        ).type,
        'failure',
      );
    } finally {
      c.close();
    }
    const data = `${dir}/message`;
    fs.writeFileSync(data, 'sign me');
    r = await run(SSH_KEYGEN, ['-Y', 'sign', '-f', keys[0].pub, '-n', 'file', data], {
      env: baseEnv({ SSH_AUTH_SOCK: agent.sock }),
    });
    assert.equal(r.code, 0, r.stderr);

    // Lock, a wrong unlock, the right one.
    askpass.answer(LOCK_PASS);
    r = await sshAdd(['-x'], askpass.env());
    assert.equal(r.code, 0, r.stdout + r.stderr);
    askpass.answer(WRONG_PASS);
    assert.notEqual((await sshAdd(['-X'], askpass.env())).code, 0);
    askpass.answer(LOCK_PASS);
    r = await sshAdd(['-X'], askpass.env());
    assert.equal(r.code, 0, r.stdout + r.stderr);

    // Malformed LOCK carrying a would-be passphrase (trailing byte): the keys in
    // memory are dropped (no vault: the agent stays open); the owner adds again.
    const malformed = frame(
      Buffer.concat([
        Buffer.of(22, 0, 0, 0, MALFORMED_PASS.length),
        Buffer.from(MALFORMED_PASS),
        Buffer.of(0),
      ]),
    );
    assert.equal(await rawRequest(agent.sock, malformed), 'closed');
    assert.equal((await sshAdd(['-l'])).code, 1, 'keys still listed after a malformed LOCK');
    r = await sshAdd(keys.map((k) => k.priv));
    assert.equal(r.code, 0, r.stderr);

    // An ADD whose private half does not match its public half: refused and logged.
    const ed = keys[0];
    const bad = Buffer.concat([
      Buffer.of(0, 0, 0, 11),
      Buffer.from('ssh-ed25519'),
      Buffer.of(0, 0, 0, 32),
      crypto.randomBytes(32),
      Buffer.of(0, 0, 0, 64),
      privateNumbers(ed.priv)[1].subarray(0, 32),
      crypto.randomBytes(32),
      Buffer.of(0, 0, 0, 0),
    ]);
    const reply = await rawRequest(agent.sock, frame(Buffer.concat([Buffer.of(17), bad])));
    assert.deepEqual(reply, Buffer.of(5));

    // SIGUSR1: the keys are dropped again.
    process.kill(agent.pid, 'SIGUSR1');
    await waitFor('SIGUSR1 handled', () => /keys dropped: SIGUSR1/.test(agent.output().stderr));
    await waitFor('the log to catch up', () => /unlock failed/.test(agent.output().stderr));
  });

  it('the captured output holds no private key numbers or passphrases; no recovery secret', async () => {
    const { stdout, stderr } = agent.output();
    const log = stdout + stderr;
    assert.match(log, /added ssh-ed25519 key/, 'the debug log is there');
    const leaks: string[] = [];
    for (const k of [...keys, certKey]) {
      for (const secret of privateNumbers(k.priv)) {
        for (const f of forms(secret))
          if (log.includes(f)) leaks.push(`${k.type.name}: ${f.slice(0, 16)}…`);
      }
    }
    for (const p of [LOCK_PASS, WRONG_PASS, MALFORMED_PASS])
      for (const f of textForms(p)) if (log.includes(f)) leaks.push(`passphrase ${p}`);
    // No file that unlocks the agent is ever written.
    assert.equal(fs.existsSync(agent.recovery), false, 'a recovery secret was written');
    assert.deepEqual(leaks, [], `secrets in the log:\n${leaks.join('\n')}`);
  });
});
