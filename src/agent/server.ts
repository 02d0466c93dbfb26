// The agent's socket server: who may connect, what it knows of each connection,
// and one switch from request type to the served agent (an AgentService, the
// Keyring). Framing is framing.ts's. Nothing a client sends can throw past a
// connection; malformed input is answered with FAILURE or a close.

import net = require('node:net');
import { changeRequested } from './changes';
import { DeviceKeys } from './device-keys';
import { connectionsForFiles, openFileLimit } from './file-limit';
import { FrameReply, serveFrames } from './framing';
import type { SignResult } from './keyring';
import { processCommand } from './peer';
import { MSG, Request, Response, decodeRequest, encodeResponse } from './protocol';
import type { AgentServerOptions, ConnectionContext, Logger, SignEvent } from './server-options';
import type { AgentService } from './service';
import { recordSessionBind } from './session-bind';
import { errorMessage } from '../ssh/error';
import { escapeText } from '../ssh/escape';
import { WireWriter } from '../ssh/wire';

export type {
  AgentServerOptions,
  ConnectionContext,
  Logger,
  RefusedChangeEvent,
  SignEvent,
} from './server-options';

/** A handled request: its reply, with work to run once the reply is written; or close. */
type Handled = Response | { reply: Response; after: () => void } | 'close';

export const SUPPORTED_EXTENSIONS = ['query', 'session-bind@openssh.com'];

/** Without a complete first message in this time, a new connection is closed (ms). */
export const FIRST_MESSAGE_TIMEOUT_MS = 5000;

export class AgentServer {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private nextId = 1;
  private readonly log: Logger;
  private readonly devices: DeviceKeys;
  /** Connections served at once: the configured limit, within the open-file limit. */
  readonly maxConnections: number;
  /** The peer check's failure was logged (once: every connection would repeat it). */
  private peerFailureLogged = false;

  constructor(
    readonly keyring: AgentService<ConnectionContext, SignResult>,
    private readonly opts: AgentServerOptions = {},
  ) {
    this.log = opts.log ?? (() => {});
    this.devices = opts.devices ?? new DeviceKeys();
    // As many as the open-file limit allows (1024 if it cannot be read), or fewer if configured.
    const byFiles = connectionsForFiles(opts.openFileLimit ?? openFileLimit());
    const wanted = opts.maxConnections ?? (Number.isFinite(byFiles) ? byFiles : 1024);
    this.maxConnections = Math.min(wanted, byFiles);
    this.server = net.createServer((s) => this.accept(s));
    this.server.on('error', (e) => this.log(`server error: ${e.message}`));
  }

  /** A socket path to bind, or a listening fd to serve (systemd socket activation). */
  listen(where: string | { fd: number }): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (e: Error) => reject(e);
      this.server.once('error', onError);
      this.server.listen(where, () => {
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
    const max = this.maxConnections;
    if (this.sockets.size >= max) {
      this.log(`refusing connection: ${max} connections open`);
      socket.destroy();
      return;
    }
    const ctx: ConnectionContext = {
      id: this.nextId++,
      binds: [],
      bindAttempted: false,
      bindAttempts: 0,
    };
    if (this.opts.peerOf) {
      const peer = this.peerOf(socket);
      if (!peer) {
        socket.destroy();
        return;
      }
      // Read now: the process may rewrite its command line before it asks anything.
      const command = (this.opts.commandOf ?? processCommand)(peer.pid);
      ctx.peer = { ...peer, command };
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
      firstMessageTimeoutMs: this.opts.firstMessageTimeoutMs ?? FIRST_MESSAGE_TIMEOUT_MS,
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
   * The peer of a new connection, or undefined to refuse it: a peer check that
   * cannot run fails closed (the reason is logged once).
   */
  private peerOf(socket: net.Socket): { pid: number; uid: number; gid: number } | undefined {
    let why = 'no peer credentials';
    try {
      const peer = this.opts.peerOf?.(socket);
      if (peer) return peer;
    } catch (e) {
      why = errorMessage(e);
    }
    if (!this.peerFailureLogged) {
      this.peerFailureLogged = true;
      this.log(`refusing connections whose peer cannot be checked (SO_PEERCRED): ${why}`);
    }
    return undefined;
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
    this.opts.onMessage?.();
    const req = decodeRequest(body);
    let outcome: Handled;
    try {
      outcome = await this.handle(req, ctx, socket);
    } catch (e) {
      this.log(`connection ${ctx.id}: internal error: ${escapeText(errorMessage(e))}`);
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
    const change = changeRequested(req, Object.keys(this.opts.extensions ?? {}));
    if (change && ctx.bindAttempted && !this.opts.allowForwardedChanges)
      return this.refuseForwarded(change, req, ctx);
    switch (req.type) {
      case 'request-identities':
        if (agent.locked) await this.opts.whenLocked?.(ctx);
        const ids = agent.list(ctx);
        return { type: 'identities', identities: this.opts.orderIdentities?.(ctx, ids) ?? ids };
      case 'sign': {
        if (agent.locked) await this.opts.whenLocked?.(ctx);
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
          `connection ${ctx.id}: sign refused: ${res.reason}${res.detail ? ` (${escapeText(res.detail)})` : ''}`,
        );
        return { reply: { type: 'failure' }, after };
      }
      case 'add': {
        const added = agent.add(req.key, req.comment, req.constraints, { ctx });
        if (!added.ok) this.log(`connection ${ctx.id}: add refused: ${escapeText(added.reason)}`);
        else this.log(`connection ${ctx.id}: added ${escapeText(req.key.keyType)} key`);
        return ok(added.ok);
      }
      case 'remove':
        return ok(agent.remove(req.keyBlob, ctx));
      case 'remove-all': {
        const done = agent.removeAll(ctx);
        // Unlike OpenSSH 9.2 (whose tokens stay loaded, so `ssh-add -s` then fails), -D unloads them.
        if (done) await this.devices.removeAllTokens();
        return ok(done);
      }
      case 'lock':
        return ok(await agent.lock(req.passphrase));
      case 'unlock': {
        const done = await agent.unlock(req.passphrase);
        if (!done) this.log(`connection ${ctx.id}: unlock failed`);
        return ok(done);
      }
      case 'add-sk':
      case 'add-smartcard':
      case 'remove-smartcard': {
        // Loaded with the first device request, as the helpers are (see device-keys.ts).
        const { serveDeviceRequest } =
          require('./device-requests') as typeof import('./device-requests');
        return ok(await serveDeviceRequest(req, agent, this.devices, ctx, this.log));
      }
      case 'extension':
        return await this.extension(req.name, req.contents, ctx);
      case 'unknown':
        this.log(`connection ${ctx.id}: unknown message type ${req.code}`);
        return { type: 'failure' };
      case 'malformed':
        this.log(
          `connection ${ctx.id}: malformed message type ${req.code}: ${escapeText(req.reason)}`,
        );
        if (req.code === MSG.LOCK || req.code === MSG.UNLOCK) return this.safetyLock(ctx, socket);
        return { type: 'failure' };
    }
  }

  /**
   * A change from a forwarded connection (a session-bind was tried on it: ssh
   * relayed it from another host). Refused, logged and audited.
   */
  private refuseForwarded(change: string, req: Request, ctx: ConnectionContext): Handled {
    const why =
      change === 'UNLOCK'
        ? ': a passphrase typed on a forwarded host has crossed that host (unlock on this machine)'
        : '';
    this.log(`connection ${ctx.id}: refused ${change} from a forwarded connection${why}`);
    // A copy: the request's bytes are wiped before the report runs.
    const named =
      req.type === 'add' ? req.key.publicBlob : req.type === 'remove' ? req.keyBlob : null;
    const keyBlob = named ? Buffer.from(named) : undefined;
    // Recorded before the reply, as a signature is: no refusal goes unrecorded.
    try {
      this.opts.onRefusedChange?.({ ctx, request: change, keyBlob });
    } catch (e) {
      this.log(`audit failed: ${errorMessage(e)}`);
    }
    // Nothing more on a connection that sent a malformed LOCK/UNLOCK.
    return req.type === 'malformed' ? 'close' : { type: 'failure' };
  }

  /**
   * OpenSSH's agent exits on a malformed LOCK/UNLOCK. We reach the same safety
   * without dying: lock as for the owner, drop the connection, keep serving everyone else.
   */
  private async safetyLock(ctx: ConnectionContext, socket: net.Socket): Promise<'close'> {
    socket.pause();
    await this.lockForOwner(`malformed lock request on connection ${ctx.id}`);
    return 'close';
  }

  /**
   * Lock on the owner's behalf (SIGUSR1, --lock-after, a malformed LOCK): the
   * keys that live only in memory are dropped, and only the vault's passphrase
   * opens the agent again. No secret is made that a process could read back.
   * True if the agent was unlocked before.
   */
  async lockForOwner(reason: string): Promise<boolean> {
    const wasLocked = this.keyring.locked;
    this.keyring.ownerLock(this.opts.vaultPresent?.() ?? true);
    this.log(
      this.keyring.locked
        ? `agent locked: ${reason}; keys dropped from memory, only the vault passphrase unlocks`
        : `keys dropped: ${reason}; no vault to unlock with, the agent stays open`,
    );
    return !wasLocked;
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
      const err = recordSessionBind(contents, ctx);
      if (err) ctx.bindFailed = true;
      if (err) this.log(`connection ${ctx.id}: session-bind refused: ${escapeText(err)}`);
      return { type: err ? 'failure' : 'success' };
    }
    const handler = Object.hasOwn(own, name) ? own[name] : undefined;
    if (handler) {
      // (From a forwarded connection, refused before: see refuseForwarded.)
      try {
        return await handler(contents, ctx);
      } catch (e) {
        this.log(`connection ${ctx.id}: ${name} failed: ${escapeText(errorMessage(e))}`);
        return { type: 'extension-failure' };
      }
    }
    const served = await this.keyring.extension?.(name, contents, ctx);
    if (served) return served;
    this.log(`connection ${ctx.id}: unsupported extension "${escapeText(name)}"`);
    return { type: 'failure' };
  }
}
