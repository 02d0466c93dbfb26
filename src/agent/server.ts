// The agent's socket server: who may connect, what it knows of each connection,
// and one switch from request type to the served agent (an AgentService, the
// Keyring). Framing is framing.ts's. Nothing a client sends can throw past a
// connection; malformed input is answered with FAILURE or a close.

import * as crypto from 'node:crypto';
import * as net from 'node:net';
import { SessionBind } from './destination';
import { FrameReply, serveFrames } from './framing';
import type { SignResult } from './keyring';
import { Identity, MSG, Request, Response, decodeRequest, encodeResponse } from './protocol';
import type { AgentService } from './service';
import { errorMessage } from '../ssh/error';
import { verifySignature } from '../ssh/signature';
import { WireReader, WireWriter } from '../ssh/wire';

/** What the server knows about the client of one connection. */
export interface ConnectionContext {
  id: number;
  binds: SessionBind[];
  bindAttempted: boolean;
  /** A session-bind on this connection failed: it counts as forwarded from then on. */
  bindFailed?: boolean;
  peer?: { pid: number; uid: number; gid: number };
}

/** One sign request and what became of it (for the audit log). */
export interface SignEvent {
  ctx: ConnectionContext;
  keyBlob: Buffer;
  result: SignResult;
}

export type Logger = (msg: string) => void;

export interface AgentServerOptions {
  log?: Logger;
  /** Connections served at once; more are closed at accept. */
  maxConnections?: number;
  /** Close a connection that sends nothing for this long (ms); 0 = never. */
  idleTimeoutMs?: number;
  /** A message, once begun, must arrive whole within this time (ms): no slow-loris. */
  messageTimeoutMs?: number;
  /** Receives the secret of an owner lock (see lockForOwner) so the owner can unlock. */
  onOwnerLock?: (secret: Buffer) => void;
  /** Uids allowed to connect besides root (default: only this process's own uid). */
  allowedUids?: number[];
  /** tsagent's own extension requests (status, vault unlock), by name. */
  extensions?: Record<string, (contents: Buffer, ctx: ConnectionContext) => Promise<Response>>;
  /**
   * Called for every sign request, allowed or refused, before the reply goes
   * out: no signature leaves without its audit record.
   */
  onSign?: (event: SignEvent) => void;
  /** Called after the reply to a sign request is written (the vault's last-use write). */
  afterSign?: (event: SignEvent) => void;
  /** Orders a REQUEST_IDENTITIES answer (the learned key per host first, issue 13). */
  orderIdentities?: (ctx: ConnectionContext, ids: Identity[]) => Identity[];
  /**
   * A request that needs keys found the agent locked: may unlock it first
   * (unlock on demand, issue 14); the request is answered once it resolves.
   */
  whenLocked?: (ctx: ConnectionContext) => Promise<void>;
  /** Called when a connection has closed. */
  onClose?: (ctx: ConnectionContext) => void;
  /** Looks up the peer of a new connection (SO_PEERCRED), if the platform allows. */
  peerOf?: (socket: net.Socket) => ConnectionContext['peer'];
}

/** A handled request: its reply, with work to run once the reply is written; or close. */
type Handled = Response | { reply: Response; after: () => void } | 'close';

/** OpenSSH keeps at most this many session binds per connection (AGENT_MAX_SESSION_IDS). */
const MAX_BINDS = 16;
export const SUPPORTED_EXTENSIONS = ['query', 'session-bind@openssh.com'];

export class AgentServer {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private nextId = 1;
  private readonly log: Logger;

  constructor(
    readonly keyring: AgentService<ConnectionContext, SignResult>,
    private readonly opts: AgentServerOptions = {},
  ) {
    this.log = opts.log ?? (() => {});
    this.server = net.createServer((s) => this.accept(s));
    this.server.on('error', (e) => this.log(`server error: ${e.message}`));
  }

  listen(path: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (e: Error) => reject(e);
      this.server.once('error', onError);
      this.server.listen(path, () => {
        this.server.off('error', onError);
        resolve();
      });
    });
  }

  get connections(): number {
    return this.sockets.size;
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private accept(socket: net.Socket): void {
    const max = this.opts.maxConnections ?? 1024;
    if (this.sockets.size >= max) {
      this.log(`refusing connection: ${max} connections open`);
      socket.destroy();
      return;
    }
    const ctx: ConnectionContext = { id: this.nextId++, binds: [], bindAttempted: false };
    try {
      ctx.peer = this.opts.peerOf?.(socket);
    } catch {
      // No peer credentials on this platform: the socket's 0600 mode is the only guard.
    }
    const allowed = this.opts.allowedUids ?? [process.getuid?.() ?? 0];
    if (ctx.peer && ctx.peer.uid !== 0 && !allowed.includes(ctx.peer.uid)) {
      this.log(`refusing connection from uid ${ctx.peer.uid} (pid ${ctx.peer.pid})`);
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    this.log(
      `connection ${ctx.id} opened${ctx.peer ? ` by pid ${ctx.peer.pid} uid ${ctx.peer.uid}` : ''}`,
    );
    if (this.opts.idleTimeoutMs) {
      socket.setTimeout(this.opts.idleTimeoutMs, () => {
        this.log(`connection ${ctx.id} idle, closing`);
        socket.destroy();
      });
    }
    serveFrames(socket, (body) => this.message(body, ctx, socket), {
      messageTimeoutMs: this.opts.messageTimeoutMs,
      onClose: (reason) => this.log(`connection ${ctx.id}: ${reason}`),
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      this.sockets.delete(socket);
      this.log(`connection ${ctx.id} closed`);
      this.opts.onClose?.(ctx);
    });
  }

  /**
   * One message, decoded, dispatched and answered. Every error ends here, as
   * FAILURE: nothing a client sends can throw past its connection.
   */
  private async message(
    body: Buffer,
    ctx: ConnectionContext,
    socket: net.Socket,
  ): Promise<FrameReply> {
    const req = decodeRequest(body);
    let outcome: Handled;
    try {
      outcome = await this.handle(req, ctx, socket);
    } catch (e) {
      this.log(`connection ${ctx.id}: internal error: ${errorMessage(e)}`);
      outcome = { type: 'failure' };
    } finally {
      // Wipe secrets (private keys, passphrases, a vault passphrase in an
      // extension) from the request bytes once handled.
      if (req.type !== 'sign' && req.type !== 'request-identities') body.fill(0);
    }
    if (outcome === 'close') return 'close';
    if ('reply' in outcome) return { bytes: encodeResponse(outcome.reply), after: outcome.after };
    return { bytes: encodeResponse(outcome) };
  }

  /** One switch from request to the served agent's method. Returns the reply, or 'close'. */
  private async handle(req: Request, ctx: ConnectionContext, socket: net.Socket): Promise<Handled> {
    const agent = this.keyring;
    const ok = (b: boolean): Response => ({ type: b ? 'success' : 'failure' });
    switch (req.type) {
      case 'request-identities':
        await this.unlockOnDemand(ctx);
        return { type: 'identities', identities: this.ordered(ctx, agent.list(ctx)) };
      case 'sign': {
        await this.unlockOnDemand(ctx);
        const res = await agent.sign(req.keyBlob, req.data, req.flags, ctx);
        const event: SignEvent = { ctx, keyBlob: req.keyBlob, result: res };
        try {
          this.opts.onSign?.(event);
        } catch (e) {
          this.log(`audit failed: ${errorMessage(e)}`);
        }
        // Work the reply does not need waits until it is out.
        const after = () => {
          try {
            this.opts.afterSign?.(event);
          } catch (e) {
            this.log(`after sign: ${errorMessage(e)}`);
          }
        };
        if (res.ok) return { reply: { type: 'signature', signature: res.signature }, after };
        this.log(
          `connection ${ctx.id}: sign refused: ${res.reason}${res.detail ? ` (${res.detail})` : ''}`,
        );
        return { reply: { type: 'failure' }, after };
      }
      case 'add': {
        const added = agent.add(req.key, req.comment, req.constraints, { ctx });
        if (!added.ok) this.log(`connection ${ctx.id}: add refused: ${added.reason}`);
        else this.log(`connection ${ctx.id}: added ${req.key.keyType} key`);
        return ok(added.ok);
      }
      case 'remove':
        return ok(agent.remove(req.keyBlob, ctx));
      case 'remove-all':
        return ok(agent.removeAll(ctx));
      case 'lock':
        return ok(await agent.lock(req.passphrase));
      case 'unlock': {
        const done = await agent.unlock(req.passphrase);
        if (!done) this.log(`connection ${ctx.id}: unlock failed`);
        return ok(done);
      }
      case 'smartcard':
        this.log(`connection ${ctx.id}: PKCS#11 is not supported`);
        return { type: 'failure' };
      case 'extension':
        return await this.extension(req.name, req.contents, ctx);
      case 'unknown':
        this.log(`connection ${ctx.id}: unknown message type ${req.code}`);
        return { type: 'failure' };
      case 'malformed':
        this.log(`connection ${ctx.id}: malformed message type ${req.code}: ${req.reason}`);
        if (req.code === MSG.LOCK || req.code === MSG.UNLOCK) return this.safetyLock(ctx, socket);
        return { type: 'failure' };
    }
  }

  /**
   * OpenSSH's agent exits on a malformed LOCK/UNLOCK. We reach the same safety
   * without dying: lock, drop the connection, keep serving everyone else.
   */
  private async unlockOnDemand(ctx: ConnectionContext): Promise<void> {
    if (!this.keyring.locked || !this.opts.whenLocked) return;
    try {
      await this.opts.whenLocked(ctx);
    } catch (e) {
      this.log(`unlock on demand: ${errorMessage(e)}`);
    }
  }

  /** A failing order hook must not cost the client its identities: the agent's order then. */
  private ordered(ctx: ConnectionContext, ids: Identity[]): Identity[] {
    try {
      return this.opts.orderIdentities?.(ctx, ids) ?? ids;
    } catch (e) {
      this.log(`ordering identities: ${errorMessage(e)}`);
      return ids;
    }
  }

  private async safetyLock(ctx: ConnectionContext, socket: net.Socket): Promise<'close'> {
    socket.pause();
    await this.lockForOwner(`malformed lock request on connection ${ctx.id}`);
    return 'close';
  }

  /**
   * Lock under a fresh random secret that only the owner can learn (through
   * opts.onOwnerLock, e.g. a file in the agent's private directory); the vault
   * passphrase, if any, unlocks too. Used for SIGUSR1 and malformed locks.
   */
  async lockForOwner(reason: string): Promise<boolean> {
    if (this.keyring.locked) {
      this.keyring.lockForVault(); // already locked: still drop decrypted vault keys
      return false;
    }
    // Hex text, so a person can also type it into `ssh-add -X`.
    const secret = Buffer.from(crypto.randomBytes(32).toString('hex'));
    try {
      this.opts.onOwnerLock?.(secret);
    } catch (e) {
      // Lock all the same: safety first, recovery through the vault passphrase.
      this.log(`could not store the recovery secret: ${errorMessage(e)}`);
    }
    // The lock takes effect at once (the passphrase hash follows): say so now.
    const locking = this.keyring.lock(secret);
    this.log(`agent locked: ${reason}`);
    await locking;
    return true;
  }

  private async extension(
    name: string,
    contents: Buffer,
    ctx: ConnectionContext,
  ): Promise<Response> {
    const own = this.opts.extensions ?? {};
    if (name === 'query') {
      const w = new WireWriter();
      for (const n of [...SUPPORTED_EXTENSIONS, ...Object.keys(own)]) w.string(n);
      return { type: 'extension-response', name: 'query', contents: w.toBuffer() };
    }
    if (name === 'session-bind@openssh.com') {
      const err = this.sessionBind(contents, ctx);
      if (err) ctx.bindFailed = true;
      if (err) this.log(`connection ${ctx.id}: session-bind refused: ${err}`);
      return { type: err ? 'failure' : 'success' };
    }
    const handler = Object.hasOwn(own, name) ? own[name] : undefined;
    if (handler) {
      // The agent's own extensions are for its owner's local tools, never for forwarded hops.
      if (ctx.bindAttempted) return { type: 'extension-failure' };
      try {
        return await handler(contents, ctx);
      } catch (e) {
        this.log(`connection ${ctx.id}: ${name} failed: ${errorMessage(e)}`);
        return { type: 'extension-failure' };
      }
    }
    const served = await this.keyring.extension?.(name, contents, ctx);
    if (served) return served;
    this.log(`connection ${ctx.id}: unsupported extension ${JSON.stringify(name)}`);
    return { type: 'failure' };
  }

  /** Verify and record a session bind, with OpenSSH's rules (ssh-agent.c process_ext_session_bind). */
  private sessionBind(contents: Buffer, ctx: ConnectionContext): string | null {
    ctx.bindAttempted = true;
    let bind: SessionBind;
    let signature: Buffer;
    try {
      const r = new WireReader(contents);
      const hostKey = Buffer.from(r.string());
      const sessionId = Buffer.from(r.string());
      signature = r.string();
      const forwarded = r.bool();
      r.end();
      bind = { hostKey, sessionId, forwarded };
    } catch (e) {
      return `malformed: ${errorMessage(e)}`;
    }
    if (!verifySignature(bind.hostKey, bind.sessionId, signature)) return 'bad host key signature';
    for (const b of ctx.binds) {
      if (!b.forwarded) return 'connection already bound for authentication';
      if (b.sessionId.equals(bind.sessionId)) {
        if (b.forwarded === bind.forwarded && b.hostKey.equals(bind.hostKey)) return null;
        return 'session ID recorded against a different key';
      }
    }
    if (ctx.binds.length >= MAX_BINDS) return 'too many session binds';
    ctx.binds.push(bind);
    return null;
  }
}
