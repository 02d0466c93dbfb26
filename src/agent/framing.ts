// The agent protocol's framing on one connection: uint32 length prefixes, the
// size limit, one message handled at a time (replies in order), a deadline for
// a message once begun (no slow-loris) and backpressure (a client that does not
// read its replies is not read either). What a message means is the handler's.

import type * as net from 'node:net';
import { MAX_MESSAGE } from './protocol';
import { errorMessage } from '../ssh/error';

/** What to do with one message: write these bytes (then run `after`), or close. */
export type FrameReply = { bytes: Buffer; after?: () => void } | 'close';

export interface FramingOptions {
  /** A message, once begun, must arrive whole within this time (ms); 0/undefined = no limit. */
  messageTimeoutMs?: number;
  /**
   * A new connection must send its first whole message within this time (ms):
   * silent connections cannot hold every slot for the idle timeout.
   */
  firstMessageTimeoutMs?: number;
  /** Largest message body accepted; a longer announced length closes the connection. */
  maxMessage?: number;
  /** Why the framer closed the connection (for the log). */
  onClose?: (reason: string) => void;
}

/**
 * Serve framed messages on `socket`: each complete body goes to `handle`, one
 * at a time; its reply is written before the next body is handled.
 */
export function serveFrames(
  socket: net.Socket,
  handle: (body: Buffer) => Promise<FrameReply>,
  opts: FramingOptions = {},
): void {
  const max = opts.maxMessage ?? MAX_MESSAGE;
  const close = (reason?: string) => {
    if (socket.destroyed) return;
    if (reason) opts.onClose?.(reason);
    socket.destroy();
  };
  let pending: Buffer = Buffer.alloc(0);
  let busy = false;
  let first: NodeJS.Timeout | undefined;
  if (opts.firstMessageTimeoutMs)
    first = setTimeout(
      () =>
        close(
          pending.length > 0
            ? 'first message not completed in time, closing'
            : `no complete message in ${opts.firstMessageTimeoutMs} ms, closing`,
        ),
      opts.firstMessageTimeoutMs,
    );
  // Armed while a message is partly received; cleared when nothing is pending.
  let partial: NodeJS.Timeout | undefined;
  const watchPartial = () => {
    const waiting = pending.length > 0 && !busy && !socket.destroyed;
    if (!waiting) {
      clearTimeout(partial);
      partial = undefined;
    } else if (!partial && opts.messageTimeoutMs) {
      partial = setTimeout(
        () => close('message not completed in time, closing'),
        opts.messageTimeoutMs,
      );
    }
  };

  const writeReply = async (bytes: Buffer): Promise<void> => {
    if (socket.destroyed || socket.write(bytes)) return;
    // The client is not reading its replies: stop reading its requests until it does.
    socket.pause();
    await new Promise<void>((r) => {
      socket.once('drain', r);
      socket.once('close', r);
    });
    if (!socket.destroyed) socket.resume();
  };

  const pump = async () => {
    if (busy) return;
    busy = true;
    try {
      while (!socket.destroyed && pending.length >= 4) {
        const len = pending.readUInt32BE(0);
        if (len > max) return close(`message of ${len} bytes is over the limit, closing`);
        if (pending.length < 4 + len) break;
        clearTimeout(first);
        const body = pending.subarray(4, 4 + len);
        pending = pending.subarray(4 + len);
        const reply = await handle(body);
        if (reply === 'close') return close();
        await writeReply(reply.bytes);
        // Work the reply does not wait for (audit log, vault last-use write).
        reply.after?.();
      }
    } catch (e) {
      // The handler answers every error itself; this is a bug, not a client's doing.
      close(`internal error: ${errorMessage(e)}`);
    } finally {
      busy = false;
      if (!socket.destroyed && socket.isPaused()) socket.resume();
      watchPartial();
    }
  };

  socket.on('data', (chunk: Buffer) => {
    if (pending.length === 0) pending = chunk;
    else {
      const joined = Buffer.concat([pending, chunk]);
      // The copies are all that is needed now: wipe the chunks the bytes came
      // from (a passphrase or private key may be split across them). What is
      // being handled is before `pending`, untouched.
      pending.fill(0);
      chunk.fill(0);
      pending = joined;
    }
    // A client that pipelines requests faster than we answer them is read no
    // further than one maximal message ahead: memory per connection stays bounded.
    if (busy && pending.length > max + 8) socket.pause();
    void pump();
    watchPartial();
  });
  socket.on('close', () => {
    clearTimeout(partial);
    clearTimeout(first);
  });
}
