// Agent forwarding with nothing but npm packages: "goober" and "boomer" are SSH
// servers built with the ssh2 package on loopback ports; the test ("sparrow")
// connects to goober with ssh2's client, using the agent under test and
// forwarding it; goober, asked to `hop boomer`, connects onward to boomer with
// an ssh2 client that authenticates through the agent channel it opens back to
// sparrow. A real SSH handshake at each hop; the key exists only in the agent.
// (ssh2 sends no session-bind@openssh.com, so destination constraints and hop
// chains are tested with OpenSSH in forward-openssh.test.ts.)

import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type {
  AuthContext,
  ClientChannel,
  Connection,
  GetStreamCallback,
  ParsedKey,
  ServerChannel,
} from 'ssh2';
import { AGENTS, AgentSpec, RunningAgent, frame, rawRequest, startAgent } from './fixtures/agent';
import { mkTemp, missingTools, rmTemp } from './fixtures/run';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const ssh2 = require('ssh2') as typeof import('ssh2');

// This file needs nothing outside npm: OpenSSH's agent joins in only if installed.
const agents: AgentSpec[] = AGENTS.filter(
  (a) => a.kind === 'tsagent' || missingTools([a.command]).length === 0,
);

// ---------------------------------------------------------------------------
// Keys made with node:crypto, added to the agent with SSH2_AGENTC_ADD_IDENTITY.

const str = (b: Buffer | string) => frame(typeof b === 'string' ? Buffer.from(b) : b);
const mpint = (b: Buffer) => {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  const v = b.subarray(i);
  return str(v[0] & 0x80 ? Buffer.concat([Buffer.of(0), v]) : v);
};
const b64u = (s: string | undefined) => Buffer.from(s ?? '', 'base64url');

interface UserKey {
  name: string;
  comment: string;
  /** The public key blob (what authorized_keys and the agent's list hold). */
  blob: Buffer;
  /** The SSH2_AGENTC_ADD_IDENTITY message body. */
  addBody: Buffer;
  /** "type base64" for ssh2's parseKey. */
  line: string;
}

function userKey(kind: 'ed25519' | 'ecdsa' | 'rsa', comment: string): UserKey {
  const ADD_IDENTITY = Buffer.of(17);
  let blob: Buffer;
  let priv: Buffer;
  let type: string;
  if (kind === 'ed25519') {
    const jwk = crypto.generateKeyPairSync('ed25519').privateKey.export({ format: 'jwk' });
    type = 'ssh-ed25519';
    const pub = b64u(jwk.x);
    blob = Buffer.concat([str(type), str(pub)]);
    priv = Buffer.concat([str(type), str(pub), str(Buffer.concat([b64u(jwk.d), pub]))]);
  } else if (kind === 'ecdsa') {
    const jwk = crypto
      .generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
      .privateKey.export({ format: 'jwk' });
    type = 'ecdsa-sha2-nistp256';
    const q = Buffer.concat([Buffer.of(4), b64u(jwk.x), b64u(jwk.y)]);
    blob = Buffer.concat([str(type), str('nistp256'), str(q)]);
    priv = Buffer.concat([str(type), str('nistp256'), str(q), mpint(b64u(jwk.d))]);
  } else {
    const jwk = crypto
      .generateKeyPairSync('rsa', { modulusLength: 2048 })
      .privateKey.export({ format: 'jwk' });
    type = 'ssh-rsa';
    const [n, e, d, p, q, qi] = [jwk.n, jwk.e, jwk.d, jwk.p, jwk.q, jwk.qi].map(b64u);
    blob = Buffer.concat([str(type), mpint(e), mpint(n)]);
    priv = Buffer.concat([str(type), mpint(n), mpint(e), mpint(d), mpint(qi), mpint(p), mpint(q)]);
  }
  return {
    name: kind,
    comment,
    blob,
    addBody: Buffer.concat([ADD_IDENTITY, priv, str(comment)]),
    line: `${type} ${blob.toString('base64')}`,
  };
}

const fingerprint = (blob: Buffer) =>
  'SHA256:' + crypto.createHash('sha256').update(blob).digest('base64').replace(/=+$/, '');

async function agentRequest(sock: string, body: Buffer): Promise<number> {
  const r = await rawRequest(sock, frame(body));
  if (r === 'closed') throw new Error('agent closed the connection');
  return r[0];
}
const SUCCESS = 6;
const addKey = async (sock: string, k: UserKey) =>
  assert.equal(await agentRequest(sock, k.addBody), SUCCESS);
const removeAll = async (sock: string) =>
  assert.equal(await agentRequest(sock, Buffer.of(19)), SUCCESS);

// ---------------------------------------------------------------------------
// The servers.

interface AuthEvent {
  server: 'goober' | 'boomer';
  user: string;
  method: string;
  key?: string; // fingerprint
  signed?: boolean;
  accepted: boolean;
}

interface TestServer {
  name: 'goober' | 'boomer';
  port: number;
  hostKey: ParsedKey;
  auths: AuthEvent[];
  close(): Promise<void>;
}

const PASSWORD = 'goober-password';

/**
 * The agent a goober session was given: each use opens an
 * auth-agent@openssh.com channel back to the client, as sshd does for every
 * connection to its forwarded socket. ssh2's server has no public call for
 * this channel type, so this uses its channel manager and protocol directly
 * (lib/server.js openChannel() does the same for x11 and forwarded-tcpip).
 */
class ForwardedAgent extends ssh2.OpenSSHAgent {
  constructor(private readonly conn: Connection) {
    super('(forwarded)');
  }

  override getStream(cb: GetStreamCallback): void {
    const c = this.conn as unknown as {
      _chanMgr: { add(w: unknown): number };
      _protocol: { openssh_authAgent(chan: number, window: number, packet: number): void };
    };
    const wrapper = Object.assign(
      (err: Error | undefined, stream: ServerChannel) => cb(err, stream),
      {
        type: 'auth-agent@openssh.com',
      },
    );
    const local = c._chanMgr.add(wrapper);
    if (local === -1) return cb(new Error('no free channels'));
    c._protocol.openssh_authAgent(local, 2 * 1024 * 1024, 32 * 1024);
  }
}

function listen(server: import('ssh2').Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port));
  });
}

/** Accept publickey auth for `authorized` keys (verifying the signature), and goober's password. */
function authenticate(
  name: 'goober' | 'boomer',
  authorized: () => UserKey[],
  auths: AuthEvent[],
  ctx: AuthContext,
): void {
  if (ctx.method === 'password' && name === 'goober') {
    const ok = ctx.password === PASSWORD;
    auths.push({ server: name, user: ctx.username, method: 'password', accepted: ok });
    return ok ? ctx.accept() : ctx.reject();
  }
  if (ctx.method !== 'publickey')
    return ctx.reject(name === 'goober' ? ['publickey', 'password'] : ['publickey']);
  const ev: AuthEvent = {
    server: name,
    user: ctx.username,
    method: 'publickey',
    key: fingerprint(ctx.key.data),
    signed: !!ctx.signature,
    accepted: false,
  };
  auths.push(ev);
  const k = authorized().find((x) => x.blob.equals(ctx.key.data));
  if (!k) return ctx.reject();
  if (ctx.signature) {
    const parsed = ssh2.utils.parseKey(k.line);
    if (parsed instanceof Error) throw parsed;
    if (!ctx.blob || parsed.verify(ctx.blob, ctx.signature, ctx.hashAlgo) !== true)
      return ctx.reject();
  }
  // Without a signature this is the "would you accept this key?" query.
  ev.accepted = !!ctx.signature;
  ctx.accept();
}

let boomerRef: TestServer | undefined;

async function startServer(
  name: 'goober' | 'boomer',
  authorized: () => UserKey[],
): Promise<TestServer> {
  const hostKey = ssh2.utils.generateKeyPairSync('ed25519');
  const parsedHost = ssh2.utils.parseKey(hostKey.private);
  if (parsedHost instanceof Error) throw parsedHost;
  const auths: AuthEvent[] = [];
  const conns = new Set<Connection>();
  const server = new ssh2.Server({ hostKeys: [hostKey.private] }, (conn) => {
    conns.add(conn);
    conn.on('close', () => conns.delete(conn));
    conn.on('error', () => {});
    let user = '';
    conn.on('authentication', (ctx) => {
      user = ctx.username;
      authenticate(name, authorized, auths, ctx);
    });
    conn.on('ready', () => {
      conn.on('session', (acceptSession) => {
        const session = acceptSession();
        let agent: ForwardedAgent | undefined;
        session.on('auth-agent', (accept) => {
          agent = new ForwardedAgent(conn);
          accept?.();
        });
        session.on('exec', (accept, _reject, info) => {
          const stream = accept();
          const finish = (code: number, out = '', err = '') => {
            if (out) stream.write(out);
            if (err) stream.stderr.write(err);
            stream.exit(code);
            stream.end();
          };
          if (name === 'boomer') return finish(0, `on boomer as ${user}\n`);
          // goober: `hop boomer` connects onward with whatever agent this session has.
          if (info.command !== 'hop boomer')
            return finish(127, '', `unknown command ${info.command}\n`);
          hop(boomerRef!, user, agent).then(
            (out) => finish(0, out),
            (e: Error) => finish(1, '', `goober: ${e.message}\n`),
          );
        });
      });
    });
  });
  const port = await listen(server);
  return {
    name,
    port,
    hostKey: parsedHost,
    auths,
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of conns) c.end();
        server.close(() => resolve());
      }),
  };
}

/** Connect to `to` as `user`, run a command, resolve with its stdout (rejects on any failure). */
function hop(
  to: TestServer,
  user: string,
  agent: string | import('ssh2').BaseAgent | undefined,
  opts: { agentForward?: boolean; password?: string; command?: string } = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    const client = new ssh2.Client();
    const timer = setTimeout(() => {
      client.end();
      reject(new Error(`no answer from ${to.name} within 20 s`));
    }, 20_000);
    const fail = (e: Error) => {
      clearTimeout(timer);
      client.end();
      reject(e);
    };
    client.on('error', fail);
    client.on('ready', () => {
      // With agentForward in the connect config, ssh2 requests forwarding on every exec.
      client.exec(opts.command ?? 'echo', (err: Error | undefined, stream: ClientChannel) => {
        if (err) return fail(err);
        let out = '';
        let errOut = '';
        let code: number | null = null;
        stream.on('data', (d: Buffer) => (out += d.toString()));
        stream.stderr.on('data', (d: Buffer) => (errOut += d.toString()));
        stream.on('exit', (c: number | null) => (code = c));
        stream.on('close', () => {
          clearTimeout(timer);
          client.end();
          if (code === 0) resolve(out);
          else reject(new Error(`exit ${code}: ${errOut.trim()}`));
        });
      });
    });
    client.connect({
      host: '127.0.0.1',
      port: to.port,
      username: user,
      agent,
      agentForward: !!opts.agentForward,
      password: opts.password,
      readyTimeout: 20_000,
      hostVerifier: (key: Buffer) => key.equals(to.hostKey.getPublicSSH()),
    });
  });
}

// ---------------------------------------------------------------------------

let goober: TestServer;
let boomer: TestServer;
const authorizedKeys: UserKey[] = [];
let keys: UserKey[];
let stranger: UserKey;

before(async () => {
  keys = [
    userKey('ed25519', 'sparrow-ed25519@tsagent-test'),
    userKey('ecdsa', 'sparrow-ecdsa@tsagent-test'),
    userKey('rsa', 'sparrow-rsa@tsagent-test'),
  ];
  stranger = userKey('ed25519', 'stranger@tsagent-test');
  authorizedKeys.push(...keys);
  [goober, boomer] = await Promise.all([
    startServer('goober', () => authorizedKeys),
    startServer('boomer', () => authorizedKeys),
  ]);
  boomerRef = boomer;
});

after(async () => {
  await goober?.close();
  await boomer?.close();
});

/** sparrow → goober (`hop boomer`) → boomer; the auth events both servers saw meanwhile. */
async function sparrowToBoomer(
  sock: string,
  opts: { agentForward?: boolean; password?: string } = { agentForward: true },
) {
  goober.auths.length = 0;
  boomer.auths.length = 0;
  let result: { ok: true; out: string } | { ok: false; error: string };
  try {
    result = {
      ok: true,
      out: await hop(goober, 'sparrow-user', sock, { ...opts, command: 'hop boomer' }),
    };
  } catch (e) {
    result = { ok: false, error: (e as Error).message };
  }
  return { result, goober: [...goober.auths], boomer: [...boomer.auths] };
}

const acceptedKeys = (evs: AuthEvent[]) =>
  evs.filter((e) => e.accepted).map((e) => `${e.method} ${e.key ?? ''}`.trim());

for (const agent of agents) {
  describe(`ssh2 hops: sparrow → goober → boomer with ${agent.name}`, () => {
    let a: RunningAgent;
    let dir: string;
    let auditFile: string;
    before(async () => {
      dir = mkTemp();
      auditFile = path.join(dir, 'audit.log');
      a = await startAgent(agent, {
        args: agent.kind === 'tsagent' ? ['--audit-log', auditFile] : [],
        env: { HOME: dir, XDG_DATA_HOME: dir },
      });
    });
    after(async () => {
      await a?.stop();
      rmTemp(dir);
    });

    for (const [i, kind] of ['ed25519', 'ecdsa', 'rsa'].entries()) {
      it(`${kind}: both hops authenticate with the key only in sparrow's agent`, async () => {
        const k = keys[i];
        await removeAll(a.sock);
        await addKey(a.sock, k);
        const r = await sparrowToBoomer(a.sock);
        assert.deepEqual(r.result, { ok: true, out: 'on boomer as sparrow-user\n' });
        assert.deepEqual(acceptedKeys(r.goober), [`publickey ${fingerprint(k.blob)}`]);
        assert.deepEqual(acceptedKeys(r.boomer), [`publickey ${fingerprint(k.blob)}`]);
        assert.ok(r.boomer.every((e) => e.user === 'sparrow-user'));
      });
    }

    it(
      'the agent signed for both hops (audit log)',
      { skip: agent.kind !== 'tsagent' },
      async () => {
        await removeAll(a.sock);
        await addKey(a.sock, keys[0]);
        const before = readLines(auditFile).length;
        const r = await sparrowToBoomer(a.sock);
        assert.equal(r.result.ok, true);
        const recs = readLines(auditFile).slice(before) as {
          key: string;
          comment: string;
          decision: string;
          hops: string[];
          forwarded: boolean;
        }[];
        // Without session-bind (ssh2 sends none) the agent cannot know a request
        // was forwarded: both look like local logins.
        assert.deepEqual(
          recs.map((x) => [x.key, x.comment, x.decision, x.hops, x.forwarded]),
          [
            [fingerprint(keys[0].blob), keys[0].comment, 'allowed', [], false],
            [fingerprint(keys[0].blob), keys[0].comment, 'allowed', [], false],
          ],
        );
      },
    );

    it('an agent without the key: goober lets sparrow in by password, boomer refuses', async () => {
      await removeAll(a.sock);
      const r = await sparrowToBoomer(a.sock, { agentForward: true, password: PASSWORD });
      assert.equal(r.result.ok, false);
      assert.match(
        (r.result as { error: string }).error,
        /goober: All configured authentication methods failed/,
      );
      assert.deepEqual(acceptedKeys(r.goober), ['password']);
      assert.deepEqual(acceptedKeys(r.boomer), []);
    });

    it('an agent with another key: boomer sees it offered and refuses it', async () => {
      await removeAll(a.sock);
      await addKey(a.sock, stranger);
      const r = await sparrowToBoomer(a.sock, { agentForward: true, password: PASSWORD });
      assert.equal(r.result.ok, false);
      assert.deepEqual(acceptedKeys(r.boomer), []);
      assert.ok(
        r.boomer.some((e) => e.key === fingerprint(stranger.blob) && !e.accepted),
        JSON.stringify(r.boomer),
      );
    });

    it('the key in the agent but not forwarded: goober accepts, boomer refuses', async () => {
      await removeAll(a.sock);
      await addKey(a.sock, keys[0]);
      const r = await sparrowToBoomer(a.sock, { agentForward: false });
      assert.equal(r.result.ok, false);
      assert.match((r.result as { error: string }).error, /goober: /);
      assert.deepEqual(acceptedKeys(r.goober), [`publickey ${fingerprint(keys[0].blob)}`]);
      assert.deepEqual(acceptedKeys(r.boomer), []);
    });

    it('removing the key on sparrow breaks the chain', async () => {
      await removeAll(a.sock);
      await addKey(a.sock, keys[0]);
      assert.equal((await sparrowToBoomer(a.sock)).result.ok, true);
      await removeAll(a.sock);
      const r = await sparrowToBoomer(a.sock, { agentForward: true, password: PASSWORD });
      assert.equal(r.result.ok, false);
      assert.deepEqual(acceptedKeys(r.boomer), []);
    });
  });
}

function readLines(file: string): unknown[] {
  try {
    return fs
      .readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => l)
      .map((l) => JSON.parse(l) as unknown);
  } catch {
    return [];
  }
}
