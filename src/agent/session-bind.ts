// session-bind@openssh.com: what an ssh client on a connection says about the
// host it talks to, verified and recorded with OpenSSH's rules
// (ssh-agent.c process_ext_session_bind).

import type { SessionBind } from './destination';
import { errorMessage } from '../ssh/error';
import { verifySignature } from '../ssh/signature';
import { WireReader } from '../ssh/wire';

/** OpenSSH keeps at most this many session binds per connection (AGENT_MAX_SESSION_IDS). */
export const MAX_BINDS = 16;
/** OpenSSH refuses longer session ids (AGENT_MAX_SID_LEN). */
export const MAX_SESSION_ID = 128;

/** The bind state of one connection, as the server keeps it. */
export interface BoundConnection {
  binds: SessionBind[];
  /** A bind was tried on this connection (even if it failed): it came through ssh. */
  bindAttempted: boolean;
  /** A session-bind on this connection failed: it counts as forwarded from then on. */
  bindFailed?: boolean;
  /** Binds tried so far, counted before any is verified. */
  bindAttempts: number;
}

/** Verify and record one bind. Returns why it was refused, or null. */
export function recordSessionBind(contents: Buffer, conn: BoundConnection): string | null {
  conn.bindAttempted = true;
  // Counted before the signature is checked: a connection cannot make the agent
  // verify signatures without end.
  if (++conn.bindAttempts > MAX_BINDS) return 'too many session binds';
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
  if (bind.sessionId.length > MAX_SESSION_ID)
    return `session ID of ${bind.sessionId.length} bytes is too long`;
  if (!verifySignature(bind.hostKey, bind.sessionId, signature)) return 'bad host key signature';
  for (const b of conn.binds) {
    if (!b.forwarded) return 'connection already bound for authentication';
    if (b.sessionId.equals(bind.sessionId)) {
      if (b.forwarded === bind.forwarded && b.hostKey.equals(bind.hostKey)) return null;
      return 'session ID recorded against a different key';
    }
  }
  if (conn.binds.length >= MAX_BINDS) return 'too many session binds';
  conn.binds.push(bind);
  return null;
}
