// The agent fuzzer: random and mutated messages from the corpus (corpus.ts),
// sent over many connections at once against a running tsagent, then checks
// that it still answers, still signs correctly with the keys added before, has
// neither lost nor gained keys, and has not grown its memory without bound.
//
// What must not happen by design (so that the final check means something):
//   - the key set: the corpus never adds, removes or re-adds a baseline key. A
//     guard decodes every frame the agent will see with the agent's own decoder
//     (decodeRequest), following the agent's framing byte for byte (a shadow of
//     the stream, so length lies and splits are accounted for), and drops before
//     sending any frame that would be a *valid* REMOVE_ALL, a valid REMOVE or ADD
//     of a baseline key, or a valid LOCK/UNLOCK with another passphrase than the
//     corpus's known one. Mutated (malformed) versions of all of these are sent.
//     Valid ADDs of other keys (the fuzz keys, mutated comments and constraints)
//     go through; their blobs are recorded, and at the end every identity that
//     is not a baseline key must be one of those, and is removed by REMOVE of
//     exactly that blob.
//   - the lock: valid LOCK (known passphrase), lock@tsagent and malformed
//     LOCK/UNLOCK (an owner lock: the agent drops the keys that live only in
//     memory, locks if it has a vault, drops the connection) all go through. A
//     controller polls status@tsagent and unlocks with the known passphrase;
//     after an owner lock (counted from the agent's log, `keys dropped`) it adds
//     the baseline keys back. Keys missing without an owner lock are a finding.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { AgentClient } from '../../src/agent/client';
import { MAX_MESSAGE, Request, decodeRequest, decodeResponse } from '../../src/agent/protocol';
import {
  Corpus,
  FuzzKey,
  Seed,
  buildCorpus,
  frame,
  requestIdentities,
  signRequest,
  verify,
} from './corpus';

// A small seeded PRNG (mulberry32), so a run can be repeated with --seed.
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(a: readonly T[]): T {
    return a[this.int(a.length)];
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
}

const INTERESTING32 = [
  0,
  1,
  2,
  3,
  4,
  0x7f,
  0x80,
  0xff,
  0x100,
  0x7fff,
  0xffff,
  0x10000,
  MAX_MESSAGE - 1,
  MAX_MESSAGE,
  MAX_MESSAGE + 1,
  0x7fffffff,
  0x80000000,
  0xfffffffe,
  0xffffffff,
];

/** Mutators on a message body. Each returns a new buffer. */
export function mutate(rng: Rng, msg: Buffer, others: () => Buffer): Buffer {
  let b = Buffer.from(msg);
  const rounds = 1 + rng.int(3);
  for (let i = 0; i < rounds; i++) {
    const op = rng.int(12);
    const at = b.length > 0 ? rng.int(b.length) : 0;
    switch (op) {
      case 0: // bit flips
        if (b.length > 0)
          for (let j = 1 + rng.int(8); j > 0; j--) b[rng.int(b.length)] ^= 1 << rng.int(8);
        break;
      case 1: // interesting byte
        if (b.length > 0) b[at] = rng.pick([0, 1, 0x7f, 0x80, 0xff]);
        break;
      case 2: // truncate
        b = b.subarray(0, rng.int(b.length + 1));
        break;
      case 3: // append random bytes
        b = Buffer.concat([b, rng.bytes(1 + rng.int(32))]);
        break;
      case 4: // length-field lie / huge count at an offset (often where a string length is)
        if (b.length >= 5) {
          const off = rng.chance(0.5)
            ? 1 + 4 * rng.int(Math.max(1, (b.length - 5) >> 2))
            : rng.int(b.length - 3);
          const cur = b.readUInt32BE(Math.min(off, b.length - 4));
          const v = rng.chance(0.5)
            ? rng.pick(INTERESTING32)
            : (cur + rng.pick([-2, -1, 1, 2, 4, 1000])) >>> 0;
          b.writeUInt32BE(v >>> 0, Math.min(off, b.length - 4));
        }
        break;
      case 5: {
        // splice: a prefix of this one and a suffix of another
        const o = others();
        b = Buffer.concat([b.subarray(0, at), o.subarray(rng.int(o.length + 1))]);
        break;
      }
      case 6: {
        // repeat a region (repeated constraints, repeated strings)
        const len = 1 + rng.int(Math.min(64, Math.max(1, b.length - at)));
        const region = b.subarray(at, at + len);
        const times = 1 + rng.int(rng.chance(0.1) ? 200 : 4);
        b = Buffer.concat([b, ...Array.from({ length: times }, () => region)]);
        break;
      }
      case 7: // change the type byte
        if (b.length > 0)
          b[0] = rng.chance(0.7)
            ? rng.pick([5, 6, 11, 12, 13, 14, 17, 18, 19, 20, 21, 22, 23, 25, 26, 27, 28, 29])
            : rng.int(256);
        break;
      case 8: // insert random bytes
        b = Buffer.concat([b.subarray(0, at), rng.bytes(1 + rng.int(16)), b.subarray(at)]);
        break;
      case 9: {
        // delete a region
        const len = 1 + rng.int(16);
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + len)]);
        break;
      }
      case 10: // a trailing constraint byte with or without its argument
        b = Buffer.concat([b, Buffer.of(rng.pick([1, 2, 3, 255, 0, 4])), rng.bytes(rng.int(6))]);
        break;
      case 11: {
        // a large string appended, its length field true or off by one (long comments, huge counts)
        const payload = rng.bytes(rng.int(4096));
        const len = Buffer.alloc(4);
        len.writeUInt32BE((payload.length + rng.pick([-1, 0, 0, 1])) >>> 0);
        b = Buffer.concat([b, len, payload]);
        break;
      }
    }
  }
  return b;
}

/** What the guard makes of one frame the agent will receive. */
interface Classified {
  label: string;
  drop?: string;
  req?: Request;
  /** The agent will hang up after this frame (malformed LOCK/UNLOCK, or decoder error). */
  closes?: boolean;
  decoderThrew?: string;
}

class Guard {
  readonly baseline = new Set<string>();
  /** Blobs of keys a valid ADD has gone through for. */
  readonly added = new Set<string>();
  readonly decoderErrors = new Map<string, string>();
  /** Frames let through that make an owner lock (malformed LOCK/UNLOCK, lock@tsagent). */
  ownerLocks = 0;

  constructor(
    corpus: Corpus,
    private readonly passphrase: string,
    private readonly rng: Rng,
  ) {
    for (const k of corpus.baseline) this.baseline.add(k.blob.toString('base64'));
  }

  classify(body: Buffer): Classified {
    let req: Request;
    try {
      req = decodeRequest(body);
    } catch (e) {
      // decodeRequest is documented never to throw: a finding, sent all the same.
      const msg = (e as Error).message;
      this.decoderErrors.set(msg, body.subarray(0, 64).toString('hex'));
      return { label: `decoder-threw(${body[0]})`, closes: true, decoderThrew: msg };
    }
    const isBase = (b: Buffer) => this.baseline.has(b.toString('base64'));
    switch (req.type) {
      case 'remove-all':
        return { label: req.type, drop: 'valid REMOVE_ALL', req };
      case 'remove':
        return isBase(req.keyBlob)
          ? { label: req.type, drop: 'REMOVE of a baseline key', req }
          : { label: req.type, req };
      case 'add':
        if (isBase(req.key.publicBlob)) return { label: 'add', drop: 'ADD of a baseline key', req };
        return { label: `add`, req };
      case 'lock':
      case 'unlock':
        if (req.passphrase.toString('latin1') !== this.passphrase)
          return { label: req.type, drop: `${req.type} with an unknown passphrase`, req };
        return { label: req.type, req };
      case 'malformed':
        if (req.code === 22 || req.code === 23) {
          // Each one locks the agent until the controller unlocks it: let only
          // some through, so that most of the run fuzzes an unlocked agent.
          if (!this.rng.chance(0.1))
            return {
              label: `malformed(${req.code})`,
              drop: 'malformed LOCK/UNLOCK (thinned out)',
              req,
            };
          return { label: `malformed(${req.code})`, req, closes: true };
        }
        return { label: `malformed(${req.code})`, req };
      case 'extension':
        return { label: `extension`, req };
      case 'smartcard':
      case 'unknown':
        return { label: `${req.type}(${req.code})`, req };
      default:
        return { label: req.type, req };
    }
  }

  commit(c: Classified): void {
    if (c.req?.type === 'add') this.added.add(c.req.key.publicBlob.toString('base64'));
    if (c.closes && c.req?.type === 'malformed') this.ownerLocks++;
    if (c.req?.type === 'extension' && c.req.name === 'lock@tsagent') this.ownerLocks++;
  }
}

/** The agent's framing, mirrored: which whole frames a stream of bytes makes. */
class Shadow {
  pending = Buffer.alloc(0);
  closed = false;

  /** Frames completed if `bytes` were sent now; `over` if a length over the limit comes first. */
  peek(bytes: Buffer): { frames: Buffer[]; rest: Buffer; over: boolean } {
    let buf = Buffer.concat([this.pending, bytes]);
    const frames: Buffer[] = [];
    let over = false;
    while (buf.length >= 4) {
      const len = buf.readUInt32BE(0);
      if (len > MAX_MESSAGE) {
        over = true;
        break;
      }
      if (buf.length < 4 + len) break;
      frames.push(buf.subarray(4, 4 + len));
      buf = buf.subarray(4 + len);
    }
    return { frames, rest: buf, over };
  }

  /** Bytes still missing before the pending frame is whole (0 if none is pending). */
  missing(): number {
    if (this.pending.length === 0) return 0;
    if (this.pending.length < 4) return 4 - this.pending.length;
    return 4 + this.pending.readUInt32BE(0) - this.pending.length;
  }
}

export interface FuzzOptions {
  sock: string;
  pid: number;
  /** Owner locks so far (the agent's log says `keys dropped`); default: those the guard let through. */
  ownerLocks?: () => number;
  count: number;
  seconds: number;
  concurrency: number;
  seed: number;
  corpus?: Corpus;
  log?: (msg: string) => void;
}

export interface FuzzReport {
  seed: number;
  messages: number;
  elapsedMs: number;
  perType: Record<string, number>;
  perSeed: Record<string, number>;
  replies: Record<string, number>;
  guarded: Record<string, number>;
  connections: number;
  unexpectedCloses: { count: number; samples: string[] };
  badSignatures: string[];
  signaturesVerified: number;
  decoderErrors: Record<string, string>;
  unlocks: { known: number; raced: number; failed: number };
  /** Times the controller added the baseline keys back after an owner lock. */
  restores: number;
  /** Of the controller's polls, how many found the agent locked. */
  polls: { total: number; locked: number };
  rss: { startKiB: number; baselineKiB: number; peakKiB: number; endKiB: number };
  final: {
    alive: boolean;
    answers: boolean;
    missing: string[];
    unexpected: string[];
    removedFuzzKeys: number;
    signedOk: number;
    signFailures: string[];
    lockedAtEnd: boolean;
  };
  problems: string[];
}

const inc = (m: Record<string, number>, k: string, n = 1) => (m[k] = (m[k] ?? 0) + n);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function rss(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** Send a request on a fresh control connection (never fuzzed). */
async function control<T>(sock: string, fn: (c: AgentClient) => Promise<T>): Promise<T> {
  const c = await AgentClient.connect(sock);
  try {
    return await fn(c);
  } finally {
    c.close();
  }
}

async function lockedNow(sock: string): Promise<boolean> {
  return control(sock, async (c) => {
    const r = await c.request({
      type: 'extension',
      name: 'status@tsagent',
      contents: Buffer.alloc(0),
    });
    if (r.type !== 'extension-response') throw new Error(`status: ${r.type}`);
    return (JSON.parse(r.contents.toString('utf8')) as { locked: boolean }).locked;
  });
}

/**
 * Unlock with the known passphrase. Returns 'known' if it worked, 'raced' if
 * the agent was unlocked meanwhile by someone else, or null.
 */
async function unlockAgent(
  opts: FuzzOptions,
  passphrase: string,
): Promise<'known' | 'raced' | null> {
  if (!(await lockedNow(opts.sock))) return 'raced';
  const r = await control(opts.sock, (c) =>
    c.request({ type: 'unlock', passphrase: Buffer.from(passphrase, 'latin1') }),
  );
  return r.type === 'success' ? 'known' : null;
}

/** Add the baseline keys the agent no longer lists (after an owner lock dropped them). */
async function addBaseline(
  sock: string,
  keys: readonly FuzzKey[],
  missingOnly: boolean,
): Promise<number> {
  return control(sock, async (c) => {
    const ids = await c.request({ type: 'request-identities' });
    const present = new Set(
      ids.type === 'identities' ? ids.identities.map((i) => i.keyBlob.toString('base64')) : [],
    );
    let added = 0;
    for (const k of keys) {
      if (missingOnly && present.has(k.blob.toString('base64'))) continue;
      const r = await c.request({
        type: 'add',
        keyType: k.keyType,
        fields: k.fields,
        comment: k.name,
        constraints: { extensions: [] },
      });
      if (r.type !== 'success') throw new Error(`adding baseline key ${k.name}: ${r.type}`);
      added++;
    }
    return added;
  });
}

export async function fuzzAgent(opts: FuzzOptions): Promise<FuzzReport> {
  const log = opts.log ?? (() => {});
  const corpus = opts.corpus ?? buildCorpus();
  const rng = new Rng(opts.seed);
  const guard = new Guard(corpus, corpus.lockPassphrase, new Rng(opts.seed ^ 0x5eed));
  const keysByBlob = new Map<string, FuzzKey>();
  for (const k of [...corpus.baseline, ...corpus.fuzzKeys])
    keysByBlob.set(k.blob.toString('base64'), k);
  const allBodies = corpus.seeds.flatMap((s) => s.messages);
  const report: FuzzReport = {
    seed: opts.seed,
    messages: 0,
    elapsedMs: 0,
    perType: {},
    perSeed: {},
    replies: {},
    guarded: {},
    connections: 0,
    unexpectedCloses: { count: 0, samples: [] },
    badSignatures: [],
    signaturesVerified: 0,
    decoderErrors: {},
    unlocks: { known: 0, raced: 0, failed: 0 },
    restores: 0,
    polls: { total: 0, locked: 0 },
    rss: { startKiB: rss(opts.pid), baselineKiB: 0, peakKiB: 0, endKiB: 0 },
    final: {
      alive: false,
      answers: false,
      missing: [],
      unexpected: [],
      removedFuzzKeys: 0,
      signedOk: 0,
      signFailures: [],
      lockedAtEnd: false,
    },
    problems: [],
  };

  // 1. The baseline keys, added on a control connection.
  await addBaseline(opts.sock, corpus.baseline, false);
  const ownerLocks = opts.ownerLocks ?? (() => guard.ownerLocks);
  let restoredFor = ownerLocks();
  /** After a new owner lock only: add back the baseline keys it dropped. */
  const restore = async () => {
    const n = ownerLocks(); // read first: a drop after this is restored next time
    if (n <= restoredFor || (await lockedNow(opts.sock))) return;
    if ((await addBaseline(opts.sock, corpus.baseline, true)) > 0) report.restores++;
    restoredFor = n;
  };

  const started = Date.now();
  const deadline = started + opts.seconds * 1000;
  let budget = opts.count;
  const more = () => budget > 0 && Date.now() < deadline;

  // 2. The controller: keep the agent unlocked, sample its memory.
  let stopControl = false;
  const controller = (async () => {
    while (!stopControl) {
      await sleep(50);
      report.rss.peakKiB = Math.max(report.rss.peakKiB, rss(opts.pid));
      try {
        report.polls.total++;
        if (await lockedNow(opts.sock)) {
          report.polls.locked++;
          const how = await unlockAgent(opts, corpus.lockPassphrase);
          if (how) report.unlocks[how]++;
          else report.unlocks.failed++;
        }
        await restore();
      } catch (e) {
        log(`controller: ${(e as Error).message}`);
      }
    }
  })();

  // 3. The workers.
  const pickBodies = (): { label: string; bodies: Buffer[] } => {
    const r = rng.next();
    if (r < 0.08) {
      // Pure random message, typed or not.
      const n = rng.int(rng.chance(0.9) ? 64 : 2048);
      const b = rng.bytes(n);
      if (n > 0 && rng.chance(0.7)) b[0] = rng.pick([11, 13, 17, 18, 19, 22, 23, 25, 27]);
      return { label: 'random', bodies: [b] };
    }
    const seed: Seed = rng.pick(corpus.seeds);
    let bodies = seed.messages;
    if (bodies.length > 1 && rng.chance(0.5)) bodies = [rng.pick(bodies)];
    const mutated = rng.chance(0.85);
    if (mutated) {
      bodies = bodies.map((b) => (rng.chance(0.7) ? mutate(rng, b, () => rng.pick(allBodies)) : b));
    }
    return { label: `${seed.label}${mutated ? ' (mutated)' : ''}`, bodies };
  };

  const worker = async (id: number) => {
    while (more()) {
      report.connections++;
      await connection(id);
    }
  };

  const connection = (id: number): Promise<void> =>
    new Promise((resolveConn) => {
      const sock = net.connect(opts.sock);
      const shadow = new Shadow();
      /** Frames sent whose replies are awaited, in order. */
      const awaiting: { c: Classified; body: Buffer }[] = [];
      let expectClose = false;
      let rbuf = Buffer.alloc(0);
      let wake: (() => void) | null = null;
      let closed = false;
      const poke = () => {
        const w = wake;
        wake = null;
        w?.();
      };
      sock.on('data', (d: Buffer) => {
        rbuf = Buffer.concat([rbuf, d]);
        while (rbuf.length >= 4 && rbuf.length >= 4 + rbuf.readUInt32BE(0)) {
          const body = rbuf.subarray(4, 4 + rbuf.readUInt32BE(0));
          rbuf = rbuf.subarray(4 + body.length);
          const sent = awaiting.shift();
          if (!sent) {
            inc(report.replies, 'unsolicited');
            continue;
          }
          onReply(sent, body);
        }
        poke();
      });
      sock.on('error', () => {});
      sock.on('close', () => {
        closed = true;
        if (awaiting.length > 0) {
          inc(report.replies, 'closed', awaiting.length);
          if (!expectClose) {
            report.unexpectedCloses.count++;
            if (report.unexpectedCloses.samples.length < 10)
              report.unexpectedCloses.samples.push(
                awaiting[0].body.subarray(0, 80).toString('hex'),
              );
          }
        }
        awaiting.length = 0;
        poke();
      });

      const onReply = (sent: { c: Classified; body: Buffer }, body: Buffer) => {
        let r;
        try {
          r = decodeResponse(body);
        } catch {
          inc(report.replies, 'undecodable');
          report.problems.push(`undecodable reply ${body.subarray(0, 32).toString('hex')}`);
          return;
        }
        inc(report.replies, r.type);
        const req = sent.c.req;
        if (r.type === 'signature') {
          if (req?.type !== 'sign') {
            report.problems.push(`signature in reply to ${sent.c.label}`);
            return;
          }
          const key = keysByBlob.get(req.keyBlob.toString('base64'));
          if (!key) {
            report.problems.push('signature with a key the fuzzer does not know');
            return;
          }
          if (verify(key, req.data, req.flags, r.signature)) report.signaturesVerified++;
          else report.badSignatures.push(`${key.name} flags ${req.flags}`);
        }
      };

      const waitReplies = async (ms: number): Promise<boolean> => {
        const until = Date.now() + ms;
        while (awaiting.length > 0 && !closed) {
          const left = until - Date.now();
          if (left <= 0) return false;
          await new Promise<void>((r) => {
            wake = r;
            setTimeout(r, left);
          });
        }
        return true;
      };

      /** Send bytes if the guard lets every frame they complete through. */
      const send = (bytes: Buffer): boolean => {
        const p = shadow.peek(bytes);
        const cs = p.frames.map((f) => guard.classify(f));
        const dropped = cs.find((c) => c.drop);
        if (dropped) {
          inc(report.guarded, dropped.drop!);
          return false;
        }
        cs.forEach((c) => guard.commit(c));
        shadow.pending = Buffer.from(p.rest);
        for (let i = 0; i < cs.length; i++) {
          inc(report.perType, cs[i].label);
          if (cs[i].closes) {
            expectClose = true;
            awaiting.push({ c: cs[i], body: p.frames[i] });
            break; // the agent reads nothing after it
          }
          awaiting.push({ c: cs[i], body: p.frames[i] });
        }
        if (p.over) {
          expectClose = true;
          inc(report.perType, 'over-limit');
        }
        sock.write(bytes);
        return true;
      };

      const run = async () => {
        await new Promise<void>((r, j) => {
          sock.once('connect', () => r());
          sock.once('error', j);
        }).catch(() => undefined);
        while (!closed && more() && !expectClose) {
          const { label, bodies } = pickBodies();
          inc(report.perSeed, label);
          budget -= bodies.length;
          report.messages += bodies.length;
          const mode = rng.next();
          let ok = true;
          if (mode < 0.55) {
            // One frame at a time.
            for (const b of bodies) {
              if (!send(frame(b))) break;
              if (!(ok = await waitReplies(5000))) break;
            }
          } else if (mode < 0.75) {
            // Pipelined in one write.
            send(Buffer.concat(bodies.map(frame)));
            ok = await waitReplies(5000);
          } else if (mode < 0.85) {
            // Split into small pieces, written one by one.
            const all = Buffer.concat(bodies.map(frame));
            let off = 0;
            while (off < all.length && !closed) {
              const n = 1 + rng.int(Math.min(64, all.length - off));
              if (!send(all.subarray(off, off + n))) break;
              off += n;
              if (rng.chance(0.2)) await sleep(1);
            }
            ok = await waitReplies(5000);
          } else if (mode < 0.95) {
            // A length that lies about the body.
            const b = bodies[0];
            const f = frame(b);
            const lie = rng.chance(0.5)
              ? (b.length + rng.pick([-3, -2, -1, 1, 2, 3, 16, 100])) >>> 0
              : rng.pick(INTERESTING32);
            f.writeUInt32BE(lie >>> 0, 0);
            send(f);
            ok = await waitReplies(5000);
          } else {
            // Raw garbage on the stream.
            send(rng.bytes(1 + rng.int(64)));
            ok = await waitReplies(5000);
          }
          if (!ok) {
            inc(report.replies, 'timeout', awaiting.length);
            awaiting.length = 0; // we hang up, not the agent
            break;
          }
          // A frame left waiting for bytes that will not come: sometimes fill it
          // with the next round's bytes, otherwise hang up.
          const missing = shadow.missing();
          if (missing > 4096 || (missing > 0 && rng.chance(0.5))) break;
        }
        if (expectClose && !closed) await waitReplies(3000);
        sock.destroy();
        resolveConn();
      };
      void run();
      void id;
    });

  // Warm-up: every seed once, unmutated, then the memory baseline.
  await control(opts.sock, async (c) => {
    for (const s of corpus.seeds) {
      for (const m of s.messages) {
        const g = guard.classify(m);
        if (g.drop || g.closes) continue;
        guard.commit(g);
        try {
          await c.raw(frame(m));
        } catch {
          break;
        }
      }
    }
  }).catch((e) => log(`warm-up: ${(e as Error).message}`));
  report.rss.baselineKiB = rss(opts.pid);

  await Promise.all(Array.from({ length: opts.concurrency }, (_, i) => worker(i)));
  report.elapsedMs = Date.now() - started;
  stopControl = true;
  await controller;
  report.decoderErrors = Object.fromEntries(guard.decoderErrors);

  // 4. The checks.
  const f = report.final;
  f.alive = alive(opts.pid);
  report.rss.endKiB = rss(opts.pid);
  report.rss.peakKiB = Math.max(report.rss.peakKiB, report.rss.endKiB);
  try {
    // Unlock if the last messages locked it; add back what a last owner lock dropped.
    for (let i = 0; i < 3 && (await lockedNow(opts.sock)); i++) {
      const how = await unlockAgent(opts, corpus.lockPassphrase);
      if (how) report.unlocks[how]++;
    }
    await sleep(200); // the agent's last log lines
    await restore();
    f.lockedAtEnd = await lockedNow(opts.sock);
    const ids = await control(opts.sock, (c) => c.request({ type: 'request-identities' }));
    f.answers = ids.type === 'identities';
    const present = new Map<string, Buffer>();
    if (ids.type === 'identities')
      for (const i of ids.identities) present.set(i.keyBlob.toString('base64'), i.comment);
    for (const k of corpus.baseline) {
      const comment = present.get(k.blob.toString('base64'));
      if (!comment) f.missing.push(k.name);
      else if (comment.toString() !== k.name)
        f.missing.push(`${k.name} (comment now ${JSON.stringify(comment.toString())})`);
    }
    for (const blob of present.keys()) {
      if (guard.baseline.has(blob)) continue;
      if (!guard.added.has(blob)) {
        f.unexpected.push(blob.slice(0, 40));
        continue;
      }
      const r = await control(opts.sock, (c) =>
        c.request({ type: 'remove', keyBlob: Buffer.from(blob, 'base64') }),
      );
      if (r.type === 'success') f.removedFuzzKeys++;
      else f.unexpected.push(`could not remove ${blob.slice(0, 40)}`);
    }
    const after = await control(opts.sock, (c) => c.request({ type: 'request-identities' }));
    if (after.type !== 'identities' || after.identities.length !== corpus.baseline.length)
      f.unexpected.push(
        `after removing fuzz keys: ${after.type === 'identities' ? after.identities.length : after.type} identities`,
      );
    // Every baseline key signs, and the signature verifies (every RSA hash).
    await control(opts.sock, async (c) => {
      for (const k of corpus.baseline) {
        for (const flags of k.kind === 'rsa' ? [0, 2, 4] : [0]) {
          const data = crypto.randomBytes(100);
          const r = await c.raw(frame(signRequest(k.blob, data, flags)));
          const res = decodeResponse(r);
          if (res.type === 'signature' && verify(k, data, flags, res.signature)) f.signedOk++;
          else f.signFailures.push(`${k.name} flags ${flags}: ${res.type}`);
        }
      }
      await c.raw(frame(requestIdentities()));
    });
  } catch (e) {
    report.problems.push(`final check: ${(e as Error).message}`);
  }

  const p = report.problems;
  if (!f.alive) p.push('agent process is gone');
  if (!f.answers) p.push('agent does not answer REQUEST_IDENTITIES');
  if (f.lockedAtEnd) p.push('agent still locked after the run');
  if (f.missing.length) p.push(`baseline keys lost or changed: ${f.missing.join(', ')}`);
  if (f.unexpected.length) p.push(`unexpected identities: ${f.unexpected.join(', ')}`);
  if (f.signFailures.length) p.push(`baseline signatures failed: ${f.signFailures.join(', ')}`);
  if (report.badSignatures.length)
    p.push(`invalid signatures during the run: ${report.badSignatures.slice(0, 5).join(', ')}`);
  if (report.unexpectedCloses.count)
    p.push(
      `${report.unexpectedCloses.count} connections closed unexpectedly (first frames: ${report.unexpectedCloses.samples.slice(0, 3).join(' | ')})`,
    );
  if (Object.keys(report.decoderErrors).length)
    p.push(`decodeRequest threw: ${JSON.stringify(report.decoderErrors)}`);
  const bound = 3 * report.rss.baselineKiB + 50 * 1024;
  if (report.rss.endKiB > bound)
    p.push(
      `RSS grew from ${report.rss.baselineKiB} KiB to ${report.rss.endKiB} KiB (bound ${bound})`,
    );
  return report;
}

/** A human-readable summary. */
export function formatReport(r: FuzzReport): string {
  const secs = r.elapsedMs / 1000;
  const sorted = (m: Record<string, number>) =>
    Object.entries(m)
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `  ${String(v).padStart(8)}  ${k}`)
      .join('\n');
  return [
    `seed ${r.seed}: ${r.messages} messages in ${secs.toFixed(1)} s (${Math.round(r.messages / Math.max(secs, 0.001))}/s) over ${r.connections} connections`,
    `frames the agent received, by decoded type:\n${sorted(r.perType)}`,
    `replies:\n${sorted(r.replies)}`,
    `guarded (not sent):\n${sorted(r.guarded) || '  none'}`,
    `signatures verified during the run: ${r.signaturesVerified}, invalid: ${r.badSignatures.length}`,
    `lock: ${r.polls.locked} of ${r.polls.total} polls found the agent locked; unlocked by the controller with the known passphrase ${r.unlocks.known} (raced ${r.unlocks.raced}, failed ${r.unlocks.failed}); baseline keys added back after an owner lock ${r.restores} times`,
    `RSS: start ${r.rss.startKiB} KiB, after warm-up ${r.rss.baselineKiB} KiB, peak ${r.rss.peakKiB} KiB, end ${r.rss.endKiB} KiB`,
    `final: alive ${r.final.alive}, answers ${r.final.answers}, fuzz keys removed ${r.final.removedFuzzKeys}, baseline signatures verified ${r.final.signedOk}`,
    r.problems.length ? `PROBLEMS:\n  ${r.problems.join('\n  ')}` : 'no problems',
  ].join('\n');
}

/** Per-seed counts, for the long report. */
export function formatSeeds(r: FuzzReport): string {
  return Object.entries(r.perSeed)
    .sort((a, b) => (a[0] < b[0] ? -1 : 1))
    .map(([k, v]) => `  ${String(v).padStart(8)}  ${k}`)
    .join('\n');
}
