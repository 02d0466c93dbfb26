// What the agent server serves: one method per request of the agent protocol,
// as Go's x/crypto/ssh/agent `Agent` and ssh-agent-lib's `Session`. The server
// is one switch from message type to these methods; the Keyring implements them.
// `C` is what the server knows of the connection a request came on.

import type { Constraints } from './constraints';
import type { Identity, Response } from './protocol';
import type { PrivateKey } from '../ssh/privatekey';

/** ADD_IDENTITY's outcome: refused with a reason the debug log shows. */
export type AddResult = { ok: true } | { ok: false; reason: string };

/** A sign request's outcome as the server needs it; implementations may say more. */
export type SignOutcome =
  { ok: true; signature: Buffer } | { ok: false; reason: string; detail?: string };

export interface AgentService<C, S extends SignOutcome = SignOutcome> {
  /** While locked, list is empty and every change but unlock fails (OpenSSH). */
  readonly locked: boolean;
  /** REQUEST_IDENTITIES: the identities this connection may see. */
  list(ctx: C): Identity[];
  /** SIGN_REQUEST. */
  sign(keyBlob: Buffer, data: Buffer, flags: number, ctx: C): Promise<S>;
  /** ADD_IDENTITY / ADD_ID_CONSTRAINED. */
  add(key: PrivateKey, comment: Buffer, constraints: Constraints, opts: { ctx: C }): AddResult;
  /** REMOVE_IDENTITY. */
  remove(keyBlob: Buffer, ctx: C): boolean;
  /** REMOVE_ALL_IDENTITIES. */
  removeAll(ctx: C): boolean;
  /** LOCK. */
  lock(passphrase: Buffer): Promise<boolean>;
  /** UNLOCK. */
  unlock(passphrase: Buffer): Promise<boolean>;
  /**
   * Lock for the owner (SIGUSR1, idle, a malformed LOCK): drop the keys that
   * live only in memory and, when a key store can open it again (`vaultOpens`),
   * lock so that only the store's passphrase does; otherwise stay open, empty.
   */
  ownerLock(vaultOpens: boolean): void;
  /**
   * EXTENSION requests the server does not answer itself (`query` and
   * `session-bind@openssh.com` are the server's): undefined = unsupported.
   */
  extension?(name: string, contents: Buffer, ctx: C): Promise<Response | undefined>;
}
