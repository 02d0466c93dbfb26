// Device keys through the agent protocol, in-process (AgentServer + Keyring +
// DeviceKeys): security keys added with the sk-provider constraint as ssh-add
// sends them, PKCS#11 tokens with associated certificates (OpenSSH 9.6), and
// the policy: the allow-list, no provider from a forwarded connection unless
// allowed, "internal", web-origin keys, a dying token helper.

import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AgentClient } from '../src/agent/client';
import { ASSOCIATED_CERTS } from '../src/agent/constraints';
import { DeviceKeys, DeviceKeysOptions } from '../src/agent/device-keys';
import { Keyring } from '../src/agent/keyring';
import { MSG, decodeResponse } from '../src/agent/protocol';
import { ProviderAllowList } from '../src/agent/provider-allowlist';
import { AgentServer, ConnectionContext } from '../src/agent/server';
import { verifySignature } from '../src/ssh/signature';
import { SkPrivateKey, readSkPrivateKey, writeSkPrivateKey } from '../src/ssh/sk-key';
import { verifySkSignature } from '../src/ssh/sk-signature';
import { WireReader, WireWriter } from '../src/ssh/wire';
import { SSH_KEYGEN, mkTemp, rmTemp, run, waitFor } from './fixtures/run';
import { SK_DUMMY, SK_FIXTURES, skipUnlessSk } from './fixtures/sk';
import {
  SOFTHSM_LIB,
  SoftToken,
  TOKEN_PIN,
  makeSoftToken,
  skipUnlessSoftHsm,
  sshBlob,
} from './fixtures/softhsm';

const frame = (body: Buffer) => new WireWriter().string(body).toBuffer();
const SK_EXT = 'sk-provider@openssh.com';

let dir: string;
let n = 0;
before(() => (dir = mkTemp()));
after(() => rmTemp(dir));

interface Served {
  keyring: Keyring<ConnectionContext>;
  server: AgentServer;
  client: AgentClient;
  logs: string[];
  close(): Promise<void>;
}

/** `forwardedChanges`: serve changes from forwarded connections, so DeviceKeys' own rule decides. */
async function serve(opts: DeviceKeysOptions = {}, forwardedChanges = false): Promise<Served> {
  const logs: string[] = [];
  const keyring = new Keyring<ConnectionContext>({ unlockDelayMs: 1 });
  const devices = new DeviceKeys({
    sk: { timeoutMs: 20_000 },
    onTokenGone: (blobs) => blobs.forEach((b) => keyring.remove(b)),
    ...opts,
  });
  const server = new AgentServer(keyring, {
    log: (m) => logs.push(m),
    devices,
    allowForwardedChanges: forwardedChanges,
  });
  const sock = path.join(dir, `agent-${n++}.sock`);
  await server.listen(sock);
  const client = await AgentClient.connect(sock);
  return {
    keyring,
    server,
    client,
    logs,
    close: async () => {
      client.close();
      await devices.removeAllTokens();
      await server.close();
    },
  };
}

const reply = async (c: AgentClient, body: Buffer) => decodeResponse(await c.raw(frame(body)));

function fixtureKey(file: string): SkPrivateKey {
  const r = new WireReader(fs.readFileSync(path.join(SK_FIXTURES, `${file}.add.bin`)).subarray(1));
  return readSkPrivateKey(r.text(), r);
}

/** ADD_ID_CONSTRAINED of an sk key, with the sk-provider constraint if `provider`. */
function addSk(key: SkPrivateKey, provider?: string): Buffer {
  const w = new WireWriter().byte(
    provider === undefined ? MSG.ADD_IDENTITY : MSG.ADD_ID_CONSTRAINED,
  );
  writeSkPrivateKey(w, key).string('comment');
  if (provider !== undefined) w.byte(255).string(SK_EXT).string(provider);
  return w.toBuffer();
}

const signBody = (blob: Buffer, data: Buffer) =>
  new WireWriter().byte(MSG.SIGN_REQUEST).string(blob).string(data).uint32(0).toBuffer();

/** A session-bind the server refuses: the connection then counts as forwarded (bindAttempted). */
const badBind = () =>
  new WireWriter()
    .byte(MSG.EXTENSION)
    .string('session-bind@openssh.com')
    .string(Buffer.alloc(8))
    .string(Buffer.alloc(32))
    .string(Buffer.alloc(8))
    .bool(true)
    .toBuffer();

describe('security keys through the agent protocol', { skip: skipUnlessSk() }, () => {
  it("ssh-add's recorded ADD_ID_CONSTRAINED adds the key; it lists and signs through the helper", async () => {
    const s = await serve();
    try {
      const msg = fs.readFileSync(path.join(SK_FIXTURES, 'id_ecdsa_sk.add.bin'));
      assert.deepEqual(await reply(s.client, msg), { type: 'success' });
      const key = fixtureKey('id_ecdsa_sk');
      const ids = await s.client.request({ type: 'request-identities' });
      assert.equal(ids.type, 'identities');
      if (ids.type !== 'identities') return;
      assert.equal(ids.identities.length, 1);
      const blob = ids.identities[0].keyBlob;
      const data = crypto.randomBytes(32);
      const sig = await reply(s.client, signBody(blob, data));
      assert.equal(sig.type, 'signature');
      if (sig.type === 'signature') assert.ok(verifySkSignature(key, data, sig.signature, 1));
    } finally {
      await s.close();
    }
  });

  it('refuses a provider outside the allow-list, and a key without an sk-provider', async () => {
    const s = await serve({ allowList: new ProviderAllowList('/nowhere/*') });
    try {
      const key = fixtureKey('id_ed25519_sk');
      assert.deepEqual(await reply(s.client, addSk(key, SK_DUMMY)), { type: 'failure' });
      assert.ok(
        s.logs.some((l) => /add refused: provider ".*sk-dummy\.so" is not allowed/.test(l)),
        s.logs.join('\n'),
      );
      assert.deepEqual(await reply(s.client, addSk(key)), { type: 'failure' });
      assert.ok(s.logs.some((l) => /without an sk-provider/.test(l)));
      assert.equal(s.keyring.size, 0);
    } finally {
      await s.close();
    }
  });

  it('a forwarded connection may not name a provider (OpenSSH 9.4), unless -O allow-remote-pkcs11', async () => {
    for (const allowRemoteProviders of [false, true]) {
      const s = await serve({ allowRemoteProviders }, true);
      try {
        assert.equal((await reply(s.client, badBind())).type, 'failure');
        const r = await reply(s.client, addSk(fixtureKey('id_ed25519_sk'), SK_DUMMY));
        assert.deepEqual(r, { type: allowRemoteProviders ? 'success' : 'failure' });
        if (!allowRemoteProviders)
          assert.ok(s.logs.some((l) => /remote addition of providers is disabled/.test(l)));
      } finally {
        await s.close();
      }
    }
  });

  it('"internal" needs no path; its failure to sign is a FAILURE and the agent keeps serving', async () => {
    const s = await serve({ allowList: new ProviderAllowList('/nowhere/*') });
    try {
      const key = fixtureKey('id_ed25519_sk');
      assert.deepEqual(await reply(s.client, addSk(key, 'internal')), { type: 'success' });
      const entry = s.keyring.entriesView()[0];
      assert.equal(entry.key.algorithm === 'device' && entry.key.provider, 'internal');
      assert.deepEqual(await reply(s.client, signBody(entry.key.publicBlob, Buffer.from('x'))), {
        type: 'failure',
      });
      assert.ok(
        s.logs.some((l) => /sign refused: error/.test(l)),
        s.logs.join('\n'),
      );
      assert.equal((await s.client.request({ type: 'request-identities' })).type, 'identities');
    } finally {
      await s.close();
    }
  });

  it('a web-origin key signs SSH logins and SSHSIG only, unless websafe is off', async () => {
    const web = { ...fixtureKey('id_ed25519_sk'), application: 'https://example.com' };
    const sshsig = Buffer.concat([
      Buffer.from('SSHSIG'),
      new WireWriter()
        .string('file')
        .string('')
        .string('sha512')
        .string(Buffer.alloc(64))
        .toBuffer(),
    ]);
    for (const restrictWebsafe of [true, false]) {
      const s = await serve({ restrictWebsafe });
      try {
        assert.deepEqual(await reply(s.client, addSk(web, SK_DUMMY)), { type: 'success' });
        const blob = s.keyring.entriesView()[0].key.publicBlob;
        const other = await reply(s.client, signBody(blob, Buffer.from('a WebAuthn challenge')));
        assert.equal(other.type, restrictWebsafe ? 'failure' : 'signature');
        if (restrictWebsafe) assert.ok(s.logs.some((l) => /web-origin key/.test(l)));
        const sig = await reply(s.client, signBody(blob, sshsig));
        assert.equal(sig.type, 'signature');
        if (sig.type === 'signature') assert.ok(verifySkSignature(web, sshsig, sig.signature));
      } finally {
        await s.close();
      }
    }
  });

  it('tells the user to touch the key while it signs, and takes the notice down after', async () => {
    const events: string[] = [];
    const s = await serve({
      onTouch: (key) => {
        events.push(`touch ${key.keyType}`);
        return () => events.push('done');
      },
    });
    try {
      await reply(s.client, addSk(fixtureKey('id_ed25519_sk'), SK_DUMMY));
      await reply(s.client, addSk({ ...fixtureKey('id_ecdsa_sk'), flags: 0 }, SK_DUMMY));
      const [ed, ec] = s.keyring.entriesView().map((e) => e.key.publicBlob);
      assert.equal((await reply(s.client, signBody(ed, Buffer.from('x')))).type, 'signature');
      assert.deepEqual(events, ['touch sk-ssh-ed25519@openssh.com', 'done']);
      assert.equal((await reply(s.client, signBody(ec, Buffer.from('x')))).type, 'signature');
      assert.deepEqual(events.length, 2, 'no touch needed without the user-presence flag');
    } finally {
      await s.close();
    }
  });
});

describe('PKCS#11 tokens through the agent protocol', { skip: skipUnlessSoftHsm() }, () => {
  let token: SoftToken;
  let certs: Buffer[];
  before(async () => {
    token = await makeSoftToken(path.join(dir, 'token'));
    // A certificate for the token's ECDSA key.
    const ca = path.join(dir, 'ca');
    await run(SSH_KEYGEN, ['-q', '-t', 'ed25519', '-N', '', '-f', ca]);
    const ec = token.keys.find((k) => k.label === 'ec-key')!;
    const pub = path.join(dir, 'ec-key.pub');
    fs.writeFileSync(pub, `ecdsa-sha2-nistp256 ${sshBlob(ec.publicKey).toString('base64')} ec\n`);
    const r = await run(SSH_KEYGEN, ['-q', '-s', ca, '-I', 'token-cert', '-n', 'alice', pub]);
    assert.equal(r.code, 0, r.stderr);
    const line = fs.readFileSync(path.join(dir, 'ec-key-cert.pub'), 'utf8');
    certs = [Buffer.from(line.split(' ')[1], 'base64')];
  });

  const addCard = (certsOnly?: boolean, pin = TOKEN_PIN) => {
    const w = new WireWriter()
      .byte(certsOnly === undefined ? MSG.ADD_SMARTCARD_KEY : MSG.ADD_SMARTCARD_KEY_CONSTRAINED)
      .string(SOFTHSM_LIB)
      .string(pin);
    if (certsOnly !== undefined) {
      const blob = new WireWriter();
      for (const c of certs) blob.string(c);
      w.byte(255).string(ASSOCIATED_CERTS).bool(certsOnly).string(blob.toBuffer());
    }
    return w.toBuffer();
  };
  const removeCard = () =>
    new WireWriter().byte(MSG.REMOVE_SMARTCARD_KEY).string(SOFTHSM_LIB).string('').toBuffer();

  it('associated certificates are grafted onto the token key; certs_only loads only them', async () => {
    const s = await serve({ pkcs11: { env: token.env } });
    try {
      assert.deepEqual(await reply(s.client, addCard(false)), { type: 'success' });
      const blobs = s.keyring.entriesView().map((e) => e.key.publicBlob);
      assert.equal(blobs.length, 3);
      assert.ok(blobs.some((b) => b.equals(certs[0])));
      const data = crypto.randomBytes(40);
      const sig = await reply(s.client, signBody(certs[0], data));
      assert.equal(sig.type, 'signature');
      const ec = token.keys.find((k) => k.label === 'ec-key')!;
      if (sig.type === 'signature')
        assert.ok(verifySignature(sshBlob(ec.publicKey), data, sig.signature));
      assert.deepEqual(await reply(s.client, removeCard()), { type: 'success' });
      assert.equal(s.keyring.size, 0, 'the certificate goes with the token');
      assert.deepEqual(await reply(s.client, addCard(true)), { type: 'success' });
      assert.deepEqual(
        s.keyring.entriesView().map((e) => e.key.publicBlob),
        certs,
      );
    } finally {
      await s.close();
    }
  });

  it('a forwarded connection may not load a token (the server refuses its changes, and DeviceKeys too)', async () => {
    const s = await serve({ pkcs11: { env: token.env } }, true);
    try {
      await reply(s.client, badBind());
      assert.equal((await reply(s.client, addCard())).type, 'failure');
      assert.ok(
        s.logs.some((l) => /remote addition of providers is disabled/.test(l)),
        s.logs.join('\n'),
      );
    } finally {
      await s.close();
    }
  });

  it('a forwarded connection may not load a token; a wrong PIN fails with a clear log line', async () => {
    const s = await serve({ pkcs11: { env: token.env } });
    try {
      assert.equal((await reply(s.client, addCard(undefined, '0000'))).type, 'failure');
      assert.ok(
        s.logs.some((l) => /PKCS#11 add refused: .*wrong PIN/.test(l)),
        s.logs.join('\n'),
      );
      assert.ok(!s.logs.some((l) => l.includes('0000')));
      await reply(s.client, badBind());
      assert.equal((await reply(s.client, addCard())).type, 'failure');
      assert.ok(
        s.logs.some((l) => /refused ADD_SMARTCARD_KEY from a forwarded connection/.test(l)),
      );
    } finally {
      await s.close();
    }
  });

  it('a token whose helper dies loses its keys; it can be loaded again', async () => {
    const s = await serve({ pkcs11: { env: token.env } });
    try {
      assert.deepEqual(await reply(s.client, addCard()), { type: 'success' });
      assert.equal(s.keyring.size, 2);
      const helper = fs
        .readdirSync('/proc')
        .filter((d) => /^\d+$/.test(d))
        .find((d) => {
          try {
            const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
            return (
              stat.includes('(ssh-pkcs11-help)') &&
              stat.split(') ')[1].split(' ')[1] === String(process.pid)
            );
          } catch {
            return false;
          }
        });
      assert.ok(helper, 'the helper is our child');
      process.kill(Number(helper), 'SIGKILL');
      await waitFor('its keys to go', () => s.keyring.size === 0);
      assert.deepEqual(await reply(s.client, addCard()), { type: 'success' });
      assert.equal(s.keyring.size, 2);
      // ssh-add -D unloads the token too (OpenSSH 9.2 keeps it, refusing the next -s).
      assert.deepEqual(await s.client.request({ type: 'remove-all' }), { type: 'success' });
      assert.deepEqual(await reply(s.client, addCard()), { type: 'success' });
    } finally {
      await s.close();
    }
  });
});
