// Shared by the benchmark, the load generator and the async-sign guard test:
// test keys as ADD_IDENTITY fields, a minimal agent client, agent processes and
// /proc accounting. Nothing here depends on how tsagent is implemented.

import { ChildProcess, spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { MSG, OutgoingRequest, SIGN_FLAG, encodeRequest } from '../src/agent/protocol';
import { WireWriter } from '../src/ssh/wire';

export type KeyKind = 'ed25519' | 'ecdsa-p256' | 'ecdsa-p384' | 'rsa-2048' | 'rsa-4096';
export const KEY_KINDS: KeyKind[] = ['ed25519', 'ecdsa-p256', 'ecdsa-p384', 'rsa-2048', 'rsa-4096'];

/** A key ready to be added over the protocol and named in sign requests. */
export interface TestKey {
  kind: KeyKind;
  keyType: string;
  /** ADD_IDENTITY private-key fields (after the key type, before the comment). */
  fields: Buffer;
  publicBlob: Buffer;
  /** SIGN_REQUEST flags: rsa-sha2-256 for rsa-2048, rsa-sha2-512 for rsa-4096. */
  signFlags: number;
}

const b64 = (s: string | undefined): Buffer => Buffer.from(s!, 'base64url');

/** Turn a Node private key into the agent protocol's view of it. */
export function testKeyFrom(kind: KeyKind, key: crypto.KeyObject): TestKey {
  const jwk = key.export({ format: 'jwk' });
  if (kind === 'ed25519') {
    const pk = b64(jwk.x);
    const sk = Buffer.concat([b64(jwk.d), pk]);
    return {
      kind,
      keyType: 'ssh-ed25519',
      fields: new WireWriter().string(pk).string(sk).toBuffer(),
      publicBlob: new WireWriter().string('ssh-ed25519').string(pk).toBuffer(),
      signFlags: 0,
    };
  }
  if (kind === 'ecdsa-p256' || kind === 'ecdsa-p384') {
    const curve = kind === 'ecdsa-p256' ? 'nistp256' : 'nistp384';
    const keyType = `ecdsa-sha2-${curve}`;
    const q = Buffer.concat([Buffer.of(4), b64(jwk.x), b64(jwk.y)]);
    return {
      kind,
      keyType,
      fields: new WireWriter().string(curve).string(q).mpint(b64(jwk.d)).toBuffer(),
      publicBlob: new WireWriter().string(keyType).string(curve).string(q).toBuffer(),
      signFlags: 0,
    };
  }
  const [n, e, d, iqmp, p, q] = [jwk.n, jwk.e, jwk.d, jwk.qi, jwk.p, jwk.q].map(b64);
  const w = new WireWriter();
  for (const x of [n, e, d, iqmp, p, q]) w.mpint(x);
  return {
    kind,
    keyType: 'ssh-rsa',
    fields: w.toBuffer(),
    publicBlob: new WireWriter().string('ssh-rsa').mpint(e).mpint(n).toBuffer(),
    signFlags: kind === 'rsa-2048' ? SIGN_FLAG.RSA_SHA2_256 : SIGN_FLAG.RSA_SHA2_512,
  };
}

/** Generate one key of a kind (RSA on the thread pool, so several can run at once). */
export async function generateTestKey(kind: KeyKind): Promise<TestKey> {
  const gen = (type: string, opts: object) =>
    new Promise<crypto.KeyObject>((resolve, reject) =>
      crypto.generateKeyPair(
        type as 'rsa',
        opts as crypto.RSAKeyPairKeyObjectOptions,
        (err, _pub, priv) => (err ? reject(err) : resolve(priv)),
      ),
    );
  switch (kind) {
    case 'ed25519':
      return testKeyFrom(kind, await gen('ed25519', {}));
    case 'ecdsa-p256':
      return testKeyFrom(kind, await gen('ec', { namedCurve: 'P-256' }));
    case 'ecdsa-p384':
      return testKeyFrom(kind, await gen('ec', { namedCurve: 'P-384' }));
    case 'rsa-2048':
      return testKeyFrom(kind, await gen('rsa', { modulusLength: 2048 }));
    case 'rsa-4096':
      return testKeyFrom(kind, await gen('rsa', { modulusLength: 4096 }));
  }
}

/** Many ed25519 keys, synchronously (about 20 µs each). */
export function manyEd25519(count: number): TestKey[] {
  const out: TestKey[] = [];
  for (let i = 0; i < count; i++)
    out.push(testKeyFrom('ed25519', crypto.generateKeyPairSync('ed25519').privateKey));
  return out;
}

export function addRequest(key: TestKey, comment: string): Buffer {
  return encodeRequest({
    type: 'add',
    keyType: key.keyType,
    fields: key.fields,
    comment,
    constraints: { extensions: [] },
  });
}

/** Realistic-size data to sign: about what ssh signs for publickey user auth. */
export const SIGN_DATA = crypto.randomBytes(160);

export function signRequest(key: TestKey, data: Buffer = SIGN_DATA): Buffer {
  return encodeRequest({ type: 'sign', keyBlob: key.publicBlob, data, flags: key.signFlags });
}

export const LIST_REQUEST = encodeRequest({ type: 'request-identities' } as OutgoingRequest);

/**
 * A minimal agent client: one connection, replies delivered in order. Requests
 * may be pipelined (sent before earlier replies arrive).
 */
export class AgentClient {
  private pending: Buffer = Buffer.alloc(0);
  private waiters: { resolve: (b: Buffer) => void; reject: (e: Error) => void }[] = [];
  private closedError: Error | null = null;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
      while (this.pending.length >= 4) {
        const len = this.pending.readUInt32BE(0);
        if (this.pending.length < 4 + len) break;
        const body = this.pending.subarray(4, 4 + len);
        this.pending = this.pending.subarray(4 + len);
        this.waiters.shift()?.resolve(body);
      }
    });
    const fail = (e: Error) => {
      this.closedError ??= e;
      for (const w of this.waiters.splice(0)) w.reject(e);
    };
    socket.on('error', fail);
    socket.on('close', () => fail(new Error('agent closed the connection')));
  }

  static connect(sock: string): Promise<AgentClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect(sock);
      s.once('connect', () => {
        s.off('error', reject);
        resolve(new AgentClient(s));
      });
      s.once('error', reject);
    });
  }

  /** Send an encoded request (with its length prefix); resolves to the reply body. */
  send(frame: Buffer): Promise<Buffer> {
    if (this.closedError) return Promise.reject(this.closedError);
    const p = new Promise<Buffer>((resolve, reject) => this.waiters.push({ resolve, reject }));
    this.socket.write(frame);
    return p;
  }

  /** Send several framed requests in a single write (pipelined); one promise per reply. */
  sendBatch(frames: Buffer[]): Promise<Buffer>[] {
    if (this.closedError) return frames.map(() => Promise.reject(this.closedError));
    const ps = frames.map(
      () => new Promise<Buffer>((resolve, reject) => this.waiters.push({ resolve, reject })),
    );
    this.socket.write(Buffer.concat(frames));
    return ps;
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Add keys one after another; throws unless every add is answered SUCCESS. */
export async function addKeys(sock: string, keys: TestKey[], prefix = 'bench'): Promise<void> {
  const c = await AgentClient.connect(sock);
  try {
    for (let i = 0; i < keys.length; i++) {
      const r = await c.send(addRequest(keys[i], `${prefix}-${keys[i].kind}-${i}`));
      if (r[0] !== MSG.SUCCESS) throw new Error(`adding ${keys[i].kind} key: reply ${r[0]}`);
    }
  } finally {
    c.close();
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** One REQUEST_IDENTITIES round trip; true if an IDENTITIES_ANSWER came back. */
export function probe(sock: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(sock);
    let done = false;
    const finish = (v: boolean) => {
      if (done) return;
      done = true;
      s.destroy();
      resolve(v);
    };
    s.on('connect', () => s.write(LIST_REQUEST));
    s.on('data', (d: Buffer) => finish(d.length >= 5 && d[4] === MSG.IDENTITIES_ANSWER));
    s.on('error', () => finish(false));
    s.on('close', () => finish(false));
  });
}

/**
 * The environment agents run in: everything private to `dir`, so no real agent
 * socket, vault or audit log is touched (and none changes what is measured: the
 * default configuration, without a vault or an audit log).
 */
export function benchEnv(dir: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, XDG_RUNTIME_DIR: dir, XDG_DATA_HOME: dir };
  for (const k of ['SSH_AUTH_SOCK', 'SSH_AGENT_PID', 'TSAGENT_VAULT', 'TSAGENT_AUDIT_LOG'])
    delete env[k];
  return env;
}

export type AgentName = 'tsagent' | 'ssh-agent';

export const REPO = path.resolve(__dirname, '..', '..');
export const TSAGENT_MAIN = path.join(REPO, 'dist', 'src', 'cli', 'main.js');
export const SSH_AGENT = '/usr/bin/ssh-agent';

export interface AgentProcess {
  name: AgentName;
  sock: string;
  child: ChildProcess;
  pid: number;
  /** ms from spawn() until the socket first answered REQUEST_IDENTITIES. */
  readyMs: number;
  stop(): Promise<void>;
}

/**
 * Start an agent in the foreground on `sock` (`-D -a sock`) and poll the socket
 * until it answers. `nodeArgs` lets a caller run tsagent under --cpu-prof.
 */
export async function startAgent(
  name: AgentName,
  sock: string,
  env: NodeJS.ProcessEnv = process.env,
  nodeArgs: string[] = [],
  tsagentMain = TSAGENT_MAIN,
): Promise<AgentProcess> {
  const [cmd, args] =
    name === 'tsagent'
      ? [process.execPath, [...nodeArgs, tsagentMain, '-D', '-a', sock]]
      : [SSH_AGENT, ['-D', '-a', sock]];
  const t0 = performance.now();
  const child = spawn(cmd, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  let exited = false;
  const exitP = new Promise<void>((r) => child.once('exit', () => ((exited = true), r())));
  for (;;) {
    if (exited) throw new Error(`${name} exited before answering: ${stderr}`);
    if (fs.existsSync(sock) && (await probe(sock))) break;
    if (performance.now() - t0 > 15_000) {
      child.kill('SIGKILL');
      throw new Error(`${name} did not answer on ${sock} within 15 s: ${stderr}`);
    }
    await sleep(1);
  }
  const readyMs = performance.now() - t0;
  return {
    name,
    sock,
    child,
    pid: child.pid!,
    readyMs,
    stop: async () => {
      if (!exited) child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exitP;
      clearTimeout(t);
    },
  };
}

let clkTck: number | undefined;
/** USER_HZ: /proc/PID/stat's unit for utime and stime. */
export function clockTicks(): number {
  if (clkTck === undefined) {
    try {
      clkTck =
        Number(require('node:child_process').execFileSync('getconf', ['CLK_TCK']).toString()) ||
        100;
    } catch {
      clkTck = 100;
    }
  }
  return clkTck;
}

/** CPU time (user + system, all threads) of a process in ms, from /proc/PID/stat. */
export function procCpuMs(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields after "(comm)": state is f[0], so utime (field 14) is f[11], stime f[12].
  return ((Number(f[11]) + Number(f[12])) * 1000) / clockTicks();
}

/** Busy CPU time of the whole machine (all cores) in ms, from /proc/stat. */
export function machineBusyMs(): number {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n', 1)[0];
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is inside user).
  const busy = f[0] + f[1] + f[2] + f[5] + f[6] + f[7];
  return (busy * 1000) / clockTicks();
}

/**
 * VmRSS, VmHWM (peak RSS) and RssAnon (private memory: VmRSS less the mapped
 * files such as the node binary, shared by every node process) in MB.
 */
export function procRss(pid: number): { rssMb: number; hwmMb: number; anonMb: number } {
  const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s)?.[1] ?? NaN);
  return { rssMb: kb('VmRSS') / 1024, hwmMb: kb('VmHWM') / 1024, anonMb: kb('RssAnon') / 1024 };
}

export function median(xs: number[]): number {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

/** The q-quantile of an ascending sorted array (nearest rank). */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}
