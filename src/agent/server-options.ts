// What the agent server is told and tells: the facts of one connection, the
// events it reports (sign requests, refused changes) and its options.

import type * as net from 'node:net';
import type { DeviceKeys } from './device-keys';
import type { SignResult } from './keyring';
import type { Identity, Response } from './protocol';
import type { BoundConnection } from './session-bind';

/** What the server knows about the client of one connection. */
export interface ConnectionContext extends BoundConnection {
  id: number;
  /** From SO_PEERCRED; `command` is /proc/PID/cmdline as read at accept (what the process said of itself then). */
  peer?: { pid: number; uid: number; gid: number; command?: string };
}

/** One sign request and what became of it (for the audit log). */
export interface SignEvent {
  ctx: ConnectionContext;
  keyBlob: Buffer;
  result: SignResult;
}

/** A change refused because it came from a forwarded connection (for the audit log). */
export interface RefusedChangeEvent {
  ctx: ConnectionContext;
  /** The message name: ADD_IDENTITY, REMOVE_ALL_IDENTITIES, LOCK, `EXTENSION name`… */
  request: string;
  /** The key an add or remove named. */
  keyBlob?: Buffer;
}

export type Logger = (msg: string) => void;

export interface AgentServerOptions {
  log?: Logger;
  /** Connections served at once (default and cap: what the open-file limit allows); more are closed at accept. */
  maxConnections?: number;
  /** The open-file limit to size the connection limit by (default: RLIMIT_NOFILE, read at start). */
  openFileLimit?: number;
  /** Close a connection that sends nothing for this long (ms); 0 = never. */
  idleTimeoutMs?: number;
  /** A message, once begun, must arrive whole within this time (ms): no slow-loris. */
  messageTimeoutMs?: number;
  /** A new connection's first message must arrive whole within this time (ms; default 5 s, 0 = never). */
  firstMessageTimeoutMs?: number;
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
  /** A request that needs keys found the agent locked: may unlock it first (issue 14). */
  whenLocked?: (ctx: ConnectionContext) => Promise<void>;
  /** Called when a connection has closed. */
  onClose?: (ctx: ConnectionContext) => void;
  /** Called for every message, before it is handled (the daemon tells a busy agent by it). */
  onMessage?: () => void;
  /**
   * Serve changes (add, remove, lock, unlock, smartcard, own extensions) from
   * forwarded connections too, as OpenSSH's agent does. Default: refused.
   */
  allowForwardedChanges?: boolean;
  /**
   * Is there a vault whose passphrase opens the agent (for the owner lock)?
   * Without one, an owner lock drops the keys and leaves the agent open.
   * Default: the served agent decides (the Keyring: when it has an unlocker).
   */
  vaultPresent?: () => boolean;
  /** Called for every change refused from a forwarded connection, before the reply. */
  onRefusedChange?: (event: RefusedChangeEvent) => void;
  /**
   * Looks up the peer of a new connection (SO_PEERCRED). When set, a connection
   * whose peer it cannot tell (it throws or returns undefined) is refused.
   */
  peerOf?: (socket: net.Socket) => { pid: number; uid: number; gid: number } | undefined;
  /** A process's command line (default: /proc/PID/cmdline). */
  commandOf?: (pid: number) => string;
  /** Security keys and PKCS#11 tokens: their providers and policy (default: OpenSSH's). */
  devices?: DeviceKeys;
}
