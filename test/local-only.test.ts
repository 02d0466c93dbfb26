// Unit tests of keys kept to this machine (issue 13): the local-only@tsagent
// constraint in the agent codec, the keyring hiding such a key from forwarded
// connections (list, sign, remove) and serving it everywhere else, the vault's
// localOnly metadata, and the refused changes `tsagent status` reports.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import { CONSTRAIN, LOCAL_ONLY } from '../src/agent/constraints';
import { Keyring, RequestContext } from '../src/agent/keyring';
import { LOCAL_ONLY_REFUSAL } from '../src/agent/local-only';
import { Request, decodeRequest, encodeRequest } from '../src/agent/protocol';
import { decodeStatus, encodeStatus, AgentStatus } from '../src/daemon/control-protocol';
import { RECENT_REFUSALS, RefusedChanges } from '../src/daemon/refused-changes';
import { decodePayload, encodePayload, VaultIdentity } from '../src/vault/format';
import { verifySignature } from '../src/ssh/signature';
import { WireWriter } from '../src/ssh/wire';

const b64u = (s: string | undefined) => Buffer.from(s ?? '', 'base64url');

/** An ed25519 key's type and private fields, as ADD_IDENTITY carries them. */
function ed25519Fields(): { keyType: string; fields: Buffer } {
  const j = crypto.generateKeyPairSync('ed25519').privateKey.export({ format: 'jwk' });
  const pk = b64u(j.x);
  return {
    keyType: 'ssh-ed25519',
    fields: new WireWriter()
      .string(pk)
      .string(Buffer.concat([b64u(j.d), pk]))
      .toBuffer(),
  };
}

type Add = Extract<Request, { type: 'add' }>;

/** ADD_ID_CONSTRAINED through the encoder and the decoder, as the agent receives it. */
function addRequest(localOnly: boolean): Add {
  const { keyType, fields } = ed25519Fields();
  const bytes = encodeRequest({
    type: 'add',
    keyType,
    fields,
    comment: 'git-signing',
    constraints: { extensions: [], localOnly: localOnly || undefined },
  });
  const req = decodeRequest(bytes.subarray(4));
  assert.equal(req.type, 'add', JSON.stringify(req));
  return req as Add;
}

const host = { hostKey: Buffer.from('host key'), sessionId: Buffer.alloc(32, 7) };
const CONTEXTS: [string, RequestContext, boolean][] = [
  ['a local client (no bind)', {}, false],
  [
    'a direct ssh login (bound, not forwarded)',
    { binds: [{ ...host, forwarded: false }], bindAttempted: true },
    false,
  ],
  ['a forwarded connection', { binds: [{ ...host, forwarded: true }], bindAttempted: true }, true],
  ['a connection whose bind failed', { binds: [], bindAttempted: true, bindFailed: true }, true],
];

describe('local-only@tsagent in the agent codec', () => {
  test('the encoder writes it and the decoder reads it back, with no data after the name', () => {
    const { keyType, fields } = ed25519Fields();
    const bytes = encodeRequest({
      type: 'add',
      keyType,
      fields,
      comment: 'c',
      constraints: { extensions: [], localOnly: true },
    });
    assert.equal(bytes[4], 25, 'ADD_ID_CONSTRAINED');
    const tail = new WireWriter().byte(CONSTRAIN.EXTENSION).string(LOCAL_ONLY).toBuffer();
    assert.deepEqual(bytes.subarray(bytes.length - tail.length), tail);
    const req = decodeRequest(bytes.subarray(4)) as Add;
    assert.equal(req.constraints.localOnly, true);
    assert.deepEqual(
      req.constraints.extensions.map((e) => e.name),
      [LOCAL_ONLY],
    );
    // Re-encoding what was decoded gives the same bytes (once, not twice).
    const again = encodeRequest({
      type: 'add',
      keyType,
      fields,
      comment: 'c',
      constraints: req.constraints,
    });
    assert.deepEqual(again, bytes);
  });

  test('repeated, it is malformed', () => {
    const { keyType, fields } = ed25519Fields();
    const ext = new WireWriter().byte(CONSTRAIN.EXTENSION).string(LOCAL_ONLY).toBuffer();
    const body = Buffer.concat([
      new WireWriter().byte(25).string(keyType).toBuffer(),
      fields,
      new WireWriter().string('c').toBuffer(),
      ext,
      ext,
    ]);
    assert.equal(decodeRequest(body).type, 'malformed');
  });

  test('an add without it is not local-only', () => {
    assert.ok(!addRequest(false).constraints.localOnly);
  });
});

describe('a local-only key in the keyring', () => {
  for (const [name, ctx, forwarded] of CONTEXTS) {
    test(`${name}: ${forwarded ? 'neither listed nor used' : 'listed and used'}`, async () => {
      const kr = new Keyring();
      const req = addRequest(true);
      const plain = addRequest(false);
      assert.ok(kr.add(req.key, req.comment, req.constraints).ok);
      assert.ok(kr.add(plain.key, plain.comment, plain.constraints).ok);
      const listed = kr.list(ctx).map((i) => i.keyBlob.toString('base64'));
      const blob = req.key.publicBlob;
      assert.equal(listed.includes(blob.toString('base64')), !forwarded);
      assert.ok(
        listed.includes(plain.key.publicBlob.toString('base64')),
        'the other key is listed',
      );
      const data = Buffer.from('data to sign');
      const res = await kr.sign(blob, data, 0, ctx);
      if (forwarded) {
        assert.equal(res.ok, false);
        assert.ok(!res.ok && res.reason === 'destination' && res.detail === LOCAL_ONLY_REFUSAL);
        // Nor can such a connection remove (or replace) it.
        assert.equal(kr.remove(blob, ctx), false);
        assert.equal(kr.add(req.key, req.comment, { extensions: [] }, { ctx }).ok, false);
        assert.equal(kr.size, 2);
      } else {
        assert.ok(res.ok, JSON.stringify(res));
        assert.ok(res.ok && verifySignature(blob, data, res.signature));
      }
      // The other key signs everywhere.
      assert.ok((await kr.sign(plain.key.publicBlob, data, 0, ctx)).ok);
    });
  }

  test('re-added without the constraint, it is served on forwarded connections again', () => {
    const kr = new Keyring();
    const req = addRequest(true);
    kr.add(req.key, req.comment, req.constraints);
    const fwd = CONTEXTS[2][1];
    assert.equal(kr.list(fwd).length, 0);
    kr.add(req.key, req.comment, { extensions: [] });
    assert.equal(kr.list(fwd).length, 1);
  });
});

describe('localOnly in the vault', () => {
  test('is stored and read back; absent means not local-only', () => {
    const { keyType, fields } = ed25519Fields();
    const req = addRequest(false);
    const base: VaultIdentity = {
      keyType,
      publicBlob: req.key.publicBlob,
      privateFields: fields,
      comment: 'k',
      created: 1,
    };
    const [a, b] = decodePayload(
      encodePayload([
        { ...base, localOnly: true },
        { ...base, comment: 'l' },
      ]),
    );
    assert.equal(a.localOnly, true);
    assert.equal(b.localOnly, undefined);
    assert.equal(a.extra, undefined, 'a known key, not kept as an unknown one');
  });

  test('must be a boolean', () => {
    const { keyType, fields } = ed25519Fields();
    const id = {
      keyType,
      publicBlob: addRequest(false).key.publicBlob,
      privateFields: fields,
      comment: 'k',
      created: 1,
    };
    assert.throws(
      () => encodePayload([{ ...id, localOnly: 'yes' as unknown as boolean }]),
      /localOnly/,
    );
  });
});

describe('refused changes for tsagent status', () => {
  const record = (i: number) => ({
    time: `2026-01-01T00:00:${String(i).padStart(2, '0')}Z`,
    request: 'REMOVE_ALL_IDENTITIES',
    key: '',
    comment: '',
    requester: {},
    hops: ['sparrow', `goober${i}`],
    forwarded: true,
    decision: 'refused' as const,
  });

  test('counts them all and keeps the latest few, oldest first', () => {
    const r = new RefusedChanges();
    assert.deepEqual(r.view(), { count: 0, recent: [] });
    for (let i = 0; i < RECENT_REFUSALS + 3; i++) r.add(record(i));
    const v = r.view();
    assert.equal(v.count, RECENT_REFUSALS + 3);
    assert.equal(v.recent.length, RECENT_REFUSALS);
    assert.deepEqual(v.recent[0], {
      time: record(3).time,
      request: 'REMOVE_ALL_IDENTITIES',
      hops: ['sparrow', 'goober3'],
    });
    assert.deepEqual(v.recent.at(-1)?.hops, ['sparrow', `goober${RECENT_REFUSALS + 2}`]);
  });

  test('the status reply carries them; a malformed list makes the reply malformed', () => {
    const st: AgentStatus = {
      pid: 1,
      uptime: 2,
      socket: '/s',
      locked: false,
      vault: null,
      vaultLoaded: false,
      keys: [],
      refusedChanges: { count: 1, recent: [{ time: 't', request: 'LOCK', hops: ['a', 'b'] }] },
    };
    assert.deepEqual(decodeStatus(encodeStatus(st)), st);
    const { refusedChanges: _, ...older } = st;
    assert.deepEqual(decodeStatus(encodeStatus(older)), older, 'an older agent sends none');
    const bad = {
      ...st,
      refusedChanges: { count: 1, recent: [{ time: 't', request: 'LOCK', hops: [1] }] },
    };
    assert.equal(decodeStatus(Buffer.from(JSON.stringify(bad))), null);
  });
});
