// Property tests of the wire codec and the agent protocol (fast-check).
//
// - decodeRequest is total: arbitrary bytes and arbitrary mutations of valid
//   messages never throw, and whatever decodes as an add is a usable key.
// - encodeRequest → decodeRequest round-trips generated requests.
// - WireWriter → WireReader round-trips sequences of primitives; mpint follows RFC 4251.
// - encodeResponse → decodeResponse round-trips; decodeResponse only throws WireError.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import fc from 'fast-check';
import { WireError, WireReader, WireWriter } from '../src/ssh/wire';
import {
  Constraints,
  MSG,
  OutgoingRequest,
  Request,
  Response,
  decodeRequest,
  decodeResponse,
  encodeRequest,
  encodeResponse,
} from '../src/agent/protocol';
import { sign } from '../src/agent/signer';
import { verifySignature } from '../src/ssh/signature';

// Fixed seed so failures can be replayed: FC_SEED=<n> overrides it.
const SEED = process.env.FC_SEED ? Number(process.env.FC_SEED) : 0x5eed;
const runs = (numRuns: number) => ({ numRuns, seed: SEED });
/** fc.record builds null-prototype objects; the decoders build plain ones. */
const record = <T>(model: { [K in keyof T]: fc.Arbitrary<T[K]> }): fc.Arbitrary<T> =>
  fc.record(model, { noNullPrototype: true });

// ---------------------------------------------------------------------------
// Independent encoders and a small fixed set of real keys
// ---------------------------------------------------------------------------

const cat = (...b: Buffer[]) => Buffer.concat(b);
const u8 = (n: number) => Buffer.of(n);
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};
const str = (v: Buffer | string) => {
  const b = typeof v === 'string' ? Buffer.from(v, 'utf8') : v;
  return cat(u32(b.length), b);
};
const mp = (m: Buffer) => {
  const h = m.toString('hex').replace(/^(00)+/, '');
  if (h === '') return u32(0);
  const b = Buffer.from(h, 'hex');
  return str(b[0] & 0x80 ? cat(u8(0), b) : b);
};
const b64u = (s: string | undefined) => Buffer.from(s ?? '', 'base64url');
const toHex = (n: bigint) => {
  const h = n.toString(16);
  return h.length % 2 ? '0' + h : h;
};
const fromBig = (n: bigint) => (n === 0n ? Buffer.alloc(0) : Buffer.from(toHex(n), 'hex'));

interface KeyFixture {
  keyType: string;
  fields: Buffer;
  publicBlob: Buffer;
}

function edFixture(): KeyFixture {
  const jwk = crypto.generateKeyPairSync('ed25519').privateKey.export({ format: 'jwk' });
  const pk = b64u(jwk.x);
  return {
    keyType: 'ssh-ed25519',
    fields: cat(str(pk), str(cat(b64u(jwk.d), pk))),
    publicBlob: cat(str('ssh-ed25519'), str(pk)),
  };
}

function ecFixture(curve: string, crv: string): KeyFixture {
  const jwk = crypto.generateKeyPairSync('ec', { namedCurve: crv }).privateKey.export({
    format: 'jwk',
  });
  const q = cat(u8(4), b64u(jwk.x), b64u(jwk.y));
  const keyType = `ecdsa-sha2-${curve}`;
  return {
    keyType,
    fields: cat(str(curve), str(q), mp(b64u(jwk.d))),
    publicBlob: cat(str(keyType), str(curve), str(q)),
  };
}

function rsaFixture(bits: number): KeyFixture {
  const j = crypto
    .generateKeyPairSync('rsa', { modulusLength: bits })
    .privateKey.export({ format: 'jwk' });
  const [n, e, d, qi, p, q] = [j.n, j.e, j.d, j.qi, j.p, j.q].map(b64u);
  return {
    keyType: 'ssh-rsa',
    fields: cat(mp(n), mp(e), mp(d), mp(qi), mp(p), mp(q)),
    publicBlob: cat(str('ssh-rsa'), mp(e), mp(n)),
  };
}

const KEYS: KeyFixture[] = [
  edFixture(),
  ecFixture('nistp256', 'P-256'),
  ecFixture('nistp384', 'P-384'),
  ecFixture('nistp521', 'P-521'),
  rsaFixture(1024),
];

const RESTRICT = 'restrict-destination-v00@openssh.com';
const hop = (user: string, host: string, keys: Buffer[]) =>
  cat(str(user), str(host), str(''), ...keys.map((k) => cat(str(k), u8(0))));
const destination = (from: Buffer, to: Buffer) => str(cat(str(from), str(to), str('')));
/** Valid restrict-destination-v00 payloads (none, one hop, two hops). */
const RESTRICT_DATAS: Buffer[] = [
  Buffer.alloc(0),
  destination(hop('', '', []), hop('', 'a.example', [KEYS[0].publicBlob])),
  cat(
    destination(hop('', '', []), hop('', 'a.example', [KEYS[0].publicBlob])),
    destination(
      hop('', 'a.example', [KEYS[0].publicBlob]),
      hop('bob', 'b.example', [KEYS[1].publicBlob]),
    ),
  ),
];

const KNOWN_CODES = new Set<number>([11, 13, 17, 18, 19, 20, 21, 22, 23, 25, 26, 27]);
const REQUEST_TYPES = new Set([
  'request-identities',
  'sign',
  'add',
  'remove',
  'remove-all',
  'lock',
  'unlock',
  'add-sk',
  'add-smartcard',
  'remove-smartcard',
  'extension',
  'unknown',
  'malformed',
]);

function addBody(k: KeyFixture, comment: Buffer, c: Buffer | null): Buffer {
  return cat(
    u8(c ? MSG.ADD_ID_CONSTRAINED : MSG.ADD_IDENTITY),
    str(k.keyType),
    k.fields,
    str(comment),
    c ?? Buffer.alloc(0),
  );
}

/** decodeRequest's contract, checked on any input. */
function checkDecoded(msg: Buffer, req: Request): void {
  assert.ok(REQUEST_TYPES.has(req.type), req.type);
  if (req.type === 'malformed') {
    assert.equal(req.code, msg.length ? msg[0] : -1);
    assert.equal(typeof req.reason, 'string');
  } else {
    assert.ok(msg.length > 0);
  }
  if (req.type === 'unknown') {
    assert.equal(req.code, msg[0]);
    assert.ok(!KNOWN_CODES.has(req.code));
  }
  if (req.type === 'add-smartcard') assert.ok([20, 26].includes(msg[0]));
  if (req.type === 'remove-smartcard') assert.equal(msg[0], 21);
  if (req.type === 'add-sk') assert.ok([17, 25].includes(msg[0]));
}

function decodeNoThrow(msg: Buffer): Request {
  try {
    return decodeRequest(msg);
  } catch (e) {
    assert.fail(`decodeRequest threw on ${msg.toString('hex')}: ${(e as Error).stack}`);
  }
}

// ---------------------------------------------------------------------------
// decodeRequest is total
// ---------------------------------------------------------------------------

test('decodeRequest never throws on arbitrary bytes', () => {
  const anyBytes = fc.uint8Array({ maxLength: 600 });
  // Bias towards a known message type, so the body parsers are exercised too.
  const typedBytes = fc
    .tuple(fc.constantFrom(...KNOWN_CODES), fc.uint8Array({ maxLength: 600 }))
    .map(([code, rest]) => Uint8Array.from([code, ...rest]));
  fc.assert(
    fc.property(fc.oneof(anyBytes, typedBytes), (bytes) => {
      const msg = Buffer.from(bytes);
      checkDecoded(msg, decodeNoThrow(msg));
    }),
    runs(2500),
  );
});

// A pool of valid messages to mutate.
const VALID: Buffer[] = [
  u8(11),
  cat(u8(13), str(KEYS[0].publicBlob), str('data'), u32(2)),
  cat(u8(18), str(KEYS[1].publicBlob)),
  u8(19),
  cat(u8(22), str('passphrase')),
  cat(u8(23), str('passphrase')),
  cat(u8(27), str('query')),
  cat(
    u8(27),
    str('session-bind@openssh.com'),
    str(KEYS[0].publicBlob),
    str('sid'),
    str('sig'),
    u8(0),
  ),
  ...KEYS.map((k) => addBody(k, Buffer.from('comment'), null)),
  ...KEYS.map((k) =>
    addBody(
      k,
      Buffer.from('c'),
      cat(u8(1), u32(60), u8(2), u8(255), str(RESTRICT), str(RESTRICT_DATAS[1])),
    ),
  ),
];
for (const v of VALID) assert.notEqual(decodeRequest(v).type, 'malformed', v.toString('hex'));

type Mutation =
  | { op: 'flip'; at: number; bit: number }
  | { op: 'truncate'; at: number }
  | { op: 'insert'; at: number; bytes: Uint8Array }
  | { op: 'delete'; at: number; count: number }
  | { op: 'length'; at: number; value: number }
  | { op: 'duplicate'; at: number; count: number };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  record({
    op: fc.constant('flip' as const),
    at: fc.nat(),
    bit: fc.integer({ min: 0, max: 7 }),
  }),
  record({ op: fc.constant('truncate' as const), at: fc.nat() }),
  record({
    op: fc.constant('insert' as const),
    at: fc.nat(),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }),
  }),
  record({
    op: fc.constant('delete' as const),
    at: fc.nat(),
    count: fc.integer({ min: 1, max: 8 }),
  }),
  record({
    op: fc.constant('length' as const),
    at: fc.nat(),
    value: fc.oneof(
      fc.constantFrom(0, 1, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff),
      fc.integer({ min: 0, max: 0xffffffff }),
    ),
  }),
  record({
    op: fc.constant('duplicate' as const),
    at: fc.nat(),
    count: fc.integer({ min: 1, max: 16 }),
  }),
);

function mutate(msg: Buffer, m: Mutation): Buffer {
  const at = msg.length ? m.at % (msg.length + 1) : 0;
  switch (m.op) {
    case 'flip': {
      if (!msg.length) return msg;
      const b = Buffer.from(msg);
      b[at % msg.length] ^= 1 << m.bit;
      return b;
    }
    case 'truncate':
      return msg.subarray(0, at);
    case 'insert':
      return cat(msg.subarray(0, at), Buffer.from(m.bytes), msg.subarray(at));
    case 'delete':
      return cat(msg.subarray(0, at), msg.subarray(at + m.count));
    case 'length': {
      if (msg.length < 4) return msg;
      const b = Buffer.from(msg);
      b.writeUInt32BE(m.value >>> 0, at % (msg.length - 3));
      return b;
    }
    case 'duplicate':
      return cat(msg.subarray(0, at + m.count), msg.subarray(at));
  }
}

test('decodeRequest never throws on mutated valid messages, and adds stay usable keys', async () => {
  let adds = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom(...VALID),
      fc.array(mutation, { minLength: 1, maxLength: 3 }),
      async (valid, ms) => {
        const msg = ms.reduce(mutate, valid);
        const req = decodeNoThrow(msg);
        checkDecoded(msg, req);
        if (req.type === 'add') {
          // Whatever the decoder accepts must be a consistent key pair.
          adds++;
          const data = Buffer.from('probe');
          const sig = await sign(req.key, data, 4);
          assert.ok(verifySignature(req.key.publicBlob, data, sig), 'accepted key cannot sign');
        }
      },
    ),
    runs(2000),
  );
  assert.ok(adds > 0, 'some mutations should leave an add valid');
});

// ---------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------

const bytes = (maxLength = 64) => fc.uint8Array({ maxLength }).map((u) => Buffer.from(u));
const uint32 = fc.integer({ min: 0, max: 0xffffffff });
/** Strings that survive UTF-8 (no lone surrogates). */
const text = fc
  .string({ unit: 'binary', maxLength: 24 })
  .filter((s) => Buffer.from(s, 'utf8').toString('utf8') === s);

const simpleRequest: fc.Arbitrary<OutgoingRequest> = fc.oneof(
  fc.constant({ type: 'request-identities' as const }),
  record({ type: fc.constant('sign' as const), keyBlob: bytes(), data: bytes(), flags: uint32 }),
  record({ type: fc.constant('remove' as const), keyBlob: bytes() }),
  fc.constant({ type: 'remove-all' as const }),
  record({ type: fc.constant('lock' as const), passphrase: bytes() }),
  record({ type: fc.constant('unlock' as const), passphrase: bytes() }),
  record({ type: fc.constant('extension' as const), name: text, contents: bytes() }),
  record({
    type: fc.constant('add-smartcard' as const),
    provider: text.filter((t) => t.length > 0 && !t.includes('\0')),
    pin: bytes(),
    constraints: fc.constant<Constraints>({ extensions: [] }),
  }),
  record({
    type: fc.constant('remove-smartcard' as const),
    provider: text.filter((t) => t.length > 0 && !t.includes('\0')),
    pin: bytes(),
  }),
  record({
    type: fc.constant('unknown' as const),
    code: fc.integer({ min: 0, max: 255 }).filter((c) => !KNOWN_CODES.has(c)),
  }),
);

test('encodeRequest → decodeRequest round-trips (non-add requests)', () => {
  fc.assert(
    fc.property(simpleRequest, (req) => {
      const wire = encodeRequest(req);
      assert.equal(wire.readUInt32BE(0), wire.length - 4);
      assert.deepEqual(decodeRequest(wire.subarray(4)), req);
    }),
    runs(2000),
  );
});

const constraints: fc.Arbitrary<Constraints> = fc
  .record(
    {
      lifetime: uint32,
      confirm: fc.boolean(),
      maxSign: uint32,
      restrict: fc.constantFrom(...RESTRICT_DATAS),
    },
    { requiredKeys: [] },
  )
  .map(({ lifetime, confirm, maxSign, restrict }) => {
    const c: Constraints = { extensions: [] };
    if (lifetime !== undefined) c.lifetime = lifetime;
    if (confirm !== undefined) c.confirm = confirm;
    if (maxSign !== undefined) c.maxSign = maxSign;
    if (restrict !== undefined) c.extensions.push({ name: RESTRICT, data: restrict });
    return c;
  });

test('encodeRequest → decodeRequest round-trips adds with generated constraints', () => {
  fc.assert(
    fc.property(
      fc.constantFrom(...KEYS),
      fc.oneof(
        bytes(40),
        text.map((s) => s as string | Buffer),
      ),
      constraints,
      (key, comment, c) => {
        const wire = encodeRequest({
          type: 'add',
          keyType: key.keyType,
          fields: key.fields,
          comment,
          constraints: c,
        });
        const constrained =
          c.lifetime !== undefined ||
          !!c.confirm ||
          c.maxSign !== undefined ||
          c.extensions.length > 0;
        assert.equal(wire[4], constrained ? MSG.ADD_ID_CONSTRAINED : MSG.ADD_IDENTITY);
        const req = decodeRequest(wire.subarray(4));
        assert.equal(req.type, 'add', req.type === 'malformed' ? req.reason : req.type);
        if (req.type !== 'add') return;
        assert.equal(req.key.keyType, key.keyType);
        assert.deepEqual(req.key.publicBlob, key.publicBlob);
        assert.deepEqual(req.comment, Buffer.from(comment));
        const want: Constraints = { extensions: c.extensions };
        if (c.lifetime !== undefined) want.lifetime = c.lifetime;
        if (c.confirm) want.confirm = true;
        if (c.maxSign !== undefined) want.maxSign = c.maxSign;
        const got: Constraints = { extensions: req.constraints.extensions };
        for (const k of ['lifetime', 'confirm', 'maxSign'] as const)
          if (req.constraints[k] !== undefined) Object.assign(got, { [k]: req.constraints[k] });
        assert.deepEqual(got, want);
      },
    ),
    runs(300),
  );
});

type Op =
  | { t: 'byte'; v: number }
  | { t: 'bool'; v: boolean }
  | { t: 'uint32'; v: number }
  | { t: 'uint64'; v: bigint }
  | { t: 'string'; v: Buffer }
  | { t: 'mpint'; v: bigint; zeros: number };

const nonNegative = fc.oneof(
  fc.bigInt({ min: 0n, max: 2n ** 64n }),
  fc.bigInt({ min: 0n, max: 2n ** 4200n }),
  // Top bit set in the leading byte: needs the 00 sign byte.
  fc.integer({ min: 1, max: 520 }).map((k) => 2n ** BigInt(8 * k - 1)),
  fc.integer({ min: 1, max: 520 }).map((k) => 2n ** BigInt(8 * k) - 1n),
  fc.constantFrom(0n, 1n, 0x7fn, 0x80n, 0xffn, 0x100n),
);

const op: fc.Arbitrary<Op> = fc.oneof(
  record({ t: fc.constant('byte' as const), v: fc.integer({ min: 0, max: 255 }) }),
  record({ t: fc.constant('bool' as const), v: fc.boolean() }),
  record({ t: fc.constant('uint32' as const), v: uint32 }),
  record({ t: fc.constant('uint64' as const), v: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }) }),
  record({ t: fc.constant('string' as const), v: bytes(80) }),
  record({
    t: fc.constant('mpint' as const),
    v: nonNegative,
    zeros: fc.integer({ min: 0, max: 3 }),
  }),
);

test('WireWriter → WireReader round-trips uint32/uint64/string/mpint sequences', () => {
  fc.assert(
    fc.property(fc.array(op, { maxLength: 12 }), (ops) => {
      const w = new WireWriter();
      const expected: Buffer[] = [];
      for (const o of ops) {
        switch (o.t) {
          case 'byte':
            w.byte(o.v);
            expected.push(u8(o.v));
            break;
          case 'bool':
            w.bool(o.v);
            expected.push(u8(o.v ? 1 : 0));
            break;
          case 'uint32':
            w.uint32(o.v);
            expected.push(u32(o.v));
            break;
          case 'uint64': {
            w.uint64(o.v);
            const b = Buffer.alloc(8);
            b.writeBigUInt64BE(o.v);
            expected.push(b);
            break;
          }
          case 'string':
            w.string(o.v);
            expected.push(str(o.v));
            break;
          case 'mpint':
            // Leading zero bytes in the input magnitude must not reach the wire.
            w.mpint(cat(Buffer.alloc(o.zeros), fromBig(o.v)));
            expected.push(mp(fromBig(o.v)));
            break;
        }
      }
      const out = w.toBuffer();
      assert.deepEqual(out, cat(...expected));
      const r = new WireReader(out);
      for (const o of ops) {
        switch (o.t) {
          case 'byte':
            assert.equal(r.byte(), o.v);
            break;
          case 'bool':
            assert.equal(r.bool(), o.v);
            break;
          case 'uint32':
            assert.equal(r.uint32(), o.v);
            break;
          case 'uint64':
            assert.equal(r.uint64(), o.v);
            break;
          case 'string':
            assert.deepEqual(r.string(), o.v);
            break;
          case 'mpint': {
            const m = r.mpint();
            assert.deepEqual(m, fromBig(o.v), 'magnitude without sign padding');
            assert.ok(m.length === 0 || m[0] !== 0);
            break;
          }
        }
      }
      r.end();
    }),
    runs(1500),
  );
});

test('mpint: encoding is RFC 4251 two’s complement; readers refuse negatives and padding', () => {
  const twos = (n: bigint): Buffer => {
    // Minimal two's complement, as RFC 4251 writes any integer.
    if (n === 0n) return Buffer.alloc(0);
    let len = 1;
    while (!(n >= -(2n ** BigInt(8 * len - 1)) && n < 2n ** BigInt(8 * len - 1))) len++;
    const v = n < 0n ? 2n ** BigInt(8 * len) + n : n;
    return Buffer.from(toHex(v).padStart(2 * len, '0'), 'hex');
  };
  fc.assert(
    fc.property(fc.bigInt({ min: -(2n ** 2100n), max: 2n ** 2100n }), fc.nat(3), (n, pad) => {
      const enc = str(twos(n));
      if (n >= 0n) {
        assert.deepEqual(new WireWriter().mpint(fromBig(n)).toBuffer(), enc);
        const r = new WireReader(enc);
        assert.deepEqual(r.mpint(), fromBig(n));
        r.end();
        // Any extra leading zero byte makes it non-minimal.
        if (pad > 0) {
          const padded = str(cat(Buffer.alloc(pad), twos(n)));
          assert.throws(() => new WireReader(padded).mpint(), WireError);
        }
      } else {
        assert.throws(() => new WireReader(enc).mpint(), WireError);
      }
    }),
    runs(1500),
  );
});

const response: fc.Arbitrary<Response> = fc.oneof(
  fc.constant({ type: 'success' as const }),
  fc.constant({ type: 'failure' as const }),
  fc.constant({ type: 'extension-failure' as const }),
  record({
    type: fc.constant('identities' as const),
    identities: fc.array(record({ keyBlob: bytes(), comment: bytes(20) }), { maxLength: 5 }),
  }),
  record({ type: fc.constant('signature' as const), signature: bytes(100) }),
  record({ type: fc.constant('extension-response' as const), name: text, contents: bytes() }),
);

test('encodeResponse → decodeResponse round-trips; decodeResponse throws only WireError', () => {
  fc.assert(
    fc.property(response, (res) => {
      const wire = encodeResponse(res);
      assert.equal(wire.readUInt32BE(0), wire.length - 4);
      assert.deepEqual(decodeResponse(wire.subarray(4)), res);
    }),
    runs(1500),
  );
  fc.assert(
    fc.property(
      fc.oneof(
        fc.uint8Array({ maxLength: 200 }),
        fc
          .tuple(fc.constantFrom(5, 6, 12, 14, 28, 29), fc.uint8Array({ maxLength: 200 }))
          .map(([c, rest]) => Uint8Array.from([c, ...rest])),
      ),
      (b) => {
        try {
          decodeResponse(Buffer.from(b));
        } catch (e) {
          assert.ok(e instanceof WireError, `threw ${(e as Error).name}: ${(e as Error).message}`);
        }
      },
    ),
    runs(2500),
  );
});
