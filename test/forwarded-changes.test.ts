// Forwarded connections cannot change the agent (issue 13, in-process): once a
// session-bind was tried on a connection, ADD, REMOVE, REMOVE_ALL, LOCK, UNLOCK,
// the smartcard messages and tsagent's own extensions are refused with FAILURE
// and reported for the audit log; listing and signing work as before. With
// allowForwardedChanges they are served, as by OpenSSH's agent. Also the owner
// lock with a vault: memory keys dropped, only the vault passphrase opens it.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TestKey, generateTestKey } from '../bench/test-keys';
import { AgentClient } from '../src/agent/client';
import { Keyring } from '../src/agent/keyring';
import { readPrivateKey } from '../src/ssh/privatekey';
import { verifySignature } from '../src/ssh/signature';
import { MSG, OutgoingRequest } from '../src/agent/protocol';
import { ConnectionContext, RefusedChangeEvent } from '../src/agent/server';
import { WireReader } from '../src/ssh/wire';
import { makeSigner, sessionBind } from './fuzz/corpus';
import { frame, serveInProcess } from './fixtures/server';
import { sleep } from './fixtures/run';

const host = makeSigner();
const add = (k: TestKey, comment: string, lifetime?: number): OutgoingRequest => ({
  type: 'add',
  keyType: k.keyType,
  fields: k.fields,
  comment,
  constraints: { lifetime, extensions: [] },
});

async function setup(allowForwardedChanges = false) {
  const [local, other] = await Promise.all([
    generateTestKey('ed25519'),
    generateTestKey('ecdsa-p256'),
  ]);
  const keyring = new Keyring<ConnectionContext>({ unlockDelayMs: 1 });
  const refused: RefusedChangeEvent[] = [];
  const a = await serveInProcess(keyring, {
    allowForwardedChanges,
    onRefusedChange: (ev) => refused.push(ev),
    extensions: { 'lock@tsagent': async () => ({ type: 'success' }) },
  });
  const owner = await AgentClient.connect(a.sock);
  assert.equal((await owner.request(add(local, 'local'))).type, 'success');
  return { local, other, keyring, refused, a, owner };
}

/** A connection as a forwarding ssh makes it: a session-bind first (this one verifies or not). */
async function forwardedConnection(sock: string, verified: boolean): Promise<AgentClient> {
  const c = await AgentClient.connect(sock);
  const sid = Buffer.alloc(32, verified ? 1 : 2);
  const bind = sessionBind(host, sid, true);
  if (!verified) bind[bind.length - 2] ^= 1; // the signature's last byte
  assert.equal((await c.raw(frame(bind)))[0], verified ? MSG.SUCCESS : MSG.FAILURE);
  return c;
}

for (const verified of [true, false])
  describe(`a forwarded connection (bind ${verified ? 'verified' : 'attempted, not verified'})`, () => {
    test('cannot change the agent: FAILURE, nothing changes, each refusal reported', async () => {
      const { local, other, keyring, refused, a, owner } = await setup();
      const fwd = await forwardedConnection(a.sock, verified);
      try {
        const type = async (r: OutgoingRequest) => (await fwd.request(r)).type;
        const pass = Buffer.from('lock passphrase');
        assert.equal(await type(add(other, 'from a hop')), 'failure');
        assert.equal(await type(add(other, 'constrained', 5)), 'failure');
        assert.equal(await type({ type: 'remove', keyBlob: local.publicBlob }), 'failure');
        assert.equal(await type({ type: 'remove-all' }), 'failure');
        assert.equal(await type({ type: 'lock', passphrase: pass }), 'failure');
        assert.equal(
          await type({ type: 'extension', name: 'lock@tsagent', contents: Buffer.alloc(0) }),
          'failure',
        );
        assert.equal((await fwd.raw(frame(Buffer.of(MSG.ADD_SMARTCARD_KEY))))[0], MSG.FAILURE);
        assert.equal(keyring.size, 1);
        assert.equal(keyring.locked, false);
        // The owner locks; the hop cannot unlock, even with the right passphrase.
        assert.equal((await owner.request({ type: 'lock', passphrase: pass })).type, 'success');
        assert.equal(await type({ type: 'unlock', passphrase: pass }), 'failure');
        assert.equal(keyring.locked, true);
        assert.ok(
          a.logs.some((l) => /refused UNLOCK from a forwarded connection: a passphrase/.test(l)),
          a.logs.join('\n'),
        );
        assert.equal((await owner.request({ type: 'unlock', passphrase: pass })).type, 'success');
        await sleep(50); // the reports follow the replies
        assert.deepEqual(
          refused.map((e) => e.request),
          [
            'ADD_IDENTITY',
            'ADD_ID_CONSTRAINED',
            'REMOVE_IDENTITY',
            'REMOVE_ALL_IDENTITIES',
            'LOCK',
            'EXTENSION lock@tsagent',
            'ADD_SMARTCARD_KEY',
            'UNLOCK',
          ],
        );
        assert.deepEqual(refused[0].keyBlob, other.publicBlob);
        assert.deepEqual(refused[2].keyBlob, local.publicBlob);
        assert.ok(refused.every((e) => e.ctx.bindAttempted));
      } finally {
        fwd.close();
        owner.close();
        await a.close();
      }
    });

    test('lists and signs as before', async () => {
      const { local, a, owner } = await setup();
      const fwd = await forwardedConnection(a.sock, verified);
      try {
        const ids = await fwd.request({ type: 'request-identities' });
        assert.equal(ids.type === 'identities' && ids.identities.length, 1);
        const data = Buffer.from('forwarded data');
        const sig = await fwd.request({ type: 'sign', keyBlob: local.publicBlob, data, flags: 0 });
        assert.equal(sig.type, 'signature');
        if (sig.type === 'signature')
          assert.ok(verifySignature(local.publicBlob, data, sig.signature));
      } finally {
        fwd.close();
        owner.close();
        await a.close();
      }
    });
  });

test('a malformed LOCK from a forwarded connection closes it, drops no key, is audited', async () => {
  const { keyring, refused, a, owner } = await setup();
  const fwd = await forwardedConnection(a.sock, true);
  try {
    await assert.rejects(fwd.raw(frame(Buffer.of(MSG.LOCK, 0, 0, 0, 50, 1))), /closed/);
    assert.equal(keyring.size, 1);
    assert.equal(keyring.locked, false);
    assert.equal((await owner.request({ type: 'request-identities' })).type, 'identities');
    assert.deepEqual(
      refused.map((e) => e.request),
      ['LOCK'],
    );
  } finally {
    owner.close();
    await a.close();
  }
});

test('a local connection (no bind) changes the agent as before', async () => {
  const { other, keyring, refused, a, owner } = await setup();
  try {
    assert.equal((await owner.request(add(other, 'second'))).type, 'success');
    assert.equal((await owner.request({ type: 'remove-all' })).type, 'success');
    assert.equal(keyring.size, 0);
    assert.deepEqual(refused, []);
  } finally {
    owner.close();
    await a.close();
  }
});

test("allowForwardedChanges: a forwarded connection changes the agent, as OpenSSH's", async () => {
  const { local, other, keyring, refused, a, owner } = await setup(true);
  const fwd = await forwardedConnection(a.sock, true);
  try {
    assert.equal((await fwd.request(add(other, 'from a hop'))).type, 'success');
    assert.equal(
      (await fwd.request({ type: 'remove', keyBlob: local.publicBlob })).type,
      'success',
    );
    const pass = Buffer.from('p');
    assert.equal((await fwd.request({ type: 'lock', passphrase: pass })).type, 'success');
    assert.equal((await fwd.request({ type: 'unlock', passphrase: pass })).type, 'success');
    assert.equal((await fwd.request({ type: 'remove-all' })).type, 'success');
    assert.equal(keyring.size, 0);
    assert.deepEqual(refused, []);
    // The query lists what is served either way.
    const q = await fwd.request({ type: 'extension', name: 'query', contents: Buffer.alloc(0) });
    assert.equal(q.type, 'extension-response');
    if (q.type === 'extension-response') assert.ok(new WireReader(q.contents).text());
  } finally {
    fwd.close();
    owner.close();
    await a.close();
  }
});

test('the owner lock with a vault: memory keys go, only the vault passphrase opens it', async () => {
  const [memKey, vaultKey] = await Promise.all([
    generateTestKey('ed25519'),
    generateTestKey('ed25519'),
  ]);
  // A stand-in vault: its passphrase "vault pass" yields one identity.
  const vaultPrivate = readPrivateKey(new WireReader(vaultKey.fields), vaultKey.keyType);
  const keyring = new Keyring<ConnectionContext>({
    unlockDelayMs: 1,
    unlocker: async (p) =>
      p.toString() === 'vault pass'
        ? [{ key: vaultPrivate, comment: Buffer.from('vault'), constraints: { extensions: [] } }]
        : null,
  });
  const a = await serveInProcess(keyring);
  const c = await AgentClient.connect(a.sock);
  try {
    assert.equal((await c.request(add(memKey, 'memory'))).type, 'success');
    assert.equal(
      (await c.request({ type: 'lock', passphrase: Buffer.from('lock pass') })).type,
      'success',
    );
    // The owner lock (SIGUSR1, idle, malformed LOCK) while already locked with a passphrase.
    assert.equal(await a.server.lockForOwner('test'), false);
    assert.equal(keyring.locked, true);
    assert.equal(keyring.size, 0, 'the memory key is still there');
    const unlock = async (p: string) =>
      (await c.request({ type: 'unlock', passphrase: Buffer.from(p) })).type;
    assert.equal(await unlock('lock pass'), 'failure', 'the lock passphrase still opens it');
    assert.equal(await unlock('vault pass'), 'success');
    const ids = await c.request({ type: 'request-identities' });
    assert.deepEqual(ids.type === 'identities' && ids.identities.map((i) => i.comment.toString()), [
      'vault',
    ]);
    // And from unlocked: locked at once, true.
    assert.equal(await a.server.lockForOwner('again'), true);
    assert.equal(keyring.locked, true);
    assert.ok(a.logs.some((l) => /agent locked: again; keys dropped from memory/.test(l)));
  } finally {
    c.close();
    await a.close();
  }
});
