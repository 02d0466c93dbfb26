// The right key first (issue 13), wired to connections: REQUEST_IDENTITIES on a
// connection whose last bind is a login to host key H is ordered by what H
// accepted before; a signature on it teaches H → K; a connection that listed
// keys for H and closed without a signature moves H's order on. What forwarded
// connections teach is capped apart (HostKeyOrder): a hostile hop makes up hosts.

import { isForwarded, SessionBind } from '../agent/destination';
import { HostKeyOrder } from '../agent/host-order';
import type { Identity } from '../agent/protocol';
import type { ConnectionContext } from '../agent/server';

/**
 * The host key of the login this connection is for, or null: the last bind,
 * unless it is a forwarding bind (then the connection is a forwarded agent
 * channel, whose requests come from the remote host, not a login to H).
 */
function loginHost(ctx: ConnectionContext): Buffer | null {
  const last: SessionBind | undefined = ctx.binds[ctx.binds.length - 1];
  return last && !last.forwarded ? last.hostKey : null;
}

export class LearnedOrder {
  /** Connections that listed keys for a host, and whether they signed since. */
  private readonly attempts = new Map<
    number,
    { hostKey: Buffer; signed: boolean; forwarded: boolean }
  >();

  constructor(
    readonly order: HostKeyOrder,
    /** Keys whose --allow rules (destination constraints) name this connection's host. */
    private readonly allowsHost: (id: Identity) => boolean = () => false,
  ) {}

  /** REQUEST_IDENTITIES: the visible identities, in the order to offer them. */
  list(ctx: ConnectionContext, ids: Identity[]): Identity[] {
    const host = loginHost(ctx);
    if (!host) return ids;
    const seen = this.attempts.get(ctx.id);
    if (!seen || !seen.hostKey.equals(host))
      this.attempts.set(ctx.id, { hostKey: host, signed: false, forwarded: isForwarded(ctx) });
    return this.order.order(host, ids, (i) => i.keyBlob, this.allowsHost);
  }

  /** A signature was made on this connection: the server accepted the key. */
  signed(ctx: ConnectionContext, keyBlob: Buffer): void {
    const host = loginHost(ctx);
    if (!host) return;
    const forwarded = isForwarded(ctx);
    this.order.signed(host, keyBlob, forwarded);
    this.attempts.set(ctx.id, { hostKey: host, signed: true, forwarded });
  }

  /** The connection closed: one that listed keys for H and never signed was refused. */
  closed(ctx: ConnectionContext): void {
    const a = this.attempts.get(ctx.id);
    this.attempts.delete(ctx.id);
    if (a && !a.signed) this.order.unsignedEnd(a.hostKey, a.forwarded);
  }
}
