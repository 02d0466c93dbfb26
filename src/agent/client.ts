// A minimal agent client on one connection. Used by the tsagent subcommands
// (unlock, lock, status), by tests and by the benchmark. By default one request
// at a time; the pipelined mode (the load generator's, and tests of ordering)
// sends requests before earlier replies are in and gets the replies in order.

import net = require('node:net');
import { MAX_MESSAGE, OutgoingRequest, Response, decodeResponse, encodeRequest } from './protocol';

export interface ClientOptions {
  /** Give up connecting after this long (ms). */
  timeoutMs?: number;
  /** Allow requests while earlier ones are unanswered (replies come in order). */
  pipelined?: boolean;
}

type Waiter = { resolve: (b: Buffer) => void; reject: (e: Error) => void };

export class AgentClient {
  private buf: Buffer = Buffer.alloc(0);
  private readonly waiting: Waiter[] = [];
  private closedError: Error | null = null;

  private constructor(
    private readonly socket: net.Socket,
    readonly pipelined: boolean,
  ) {
    socket.on('data', (d: Buffer) => {
      this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d]);
      this.deliver();
    });
    const fail = (e: Error) => {
      this.closedError ??= e;
      for (const w of this.waiting.splice(0)) w.reject(e);
    };
    socket.on('error', fail);
    socket.on('close', () => fail(new Error('agent closed the connection')));
  }

  /** Connect; a number is the connect timeout (ms), as before the options. */
  static connect(path: string, opts: number | ClientOptions = {}): Promise<AgentClient> {
    const { timeoutMs = 5000, pipelined = false } =
      typeof opts === 'number' ? { timeoutMs: opts } : opts;
    return new Promise((resolve, reject) => {
      const s = net.connect(path);
      const timer = setTimeout(() => {
        s.destroy();
        reject(new Error(`timed out connecting to ${path}`));
      }, timeoutMs);
      s.once('connect', () => {
        clearTimeout(timer);
        resolve(new AgentClient(s, pipelined));
      });
      s.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
  }

  private deliver(): void {
    while (this.waiting.length > 0 && this.buf.length >= 4) {
      const len = this.buf.readUInt32BE(0);
      if (len > MAX_MESSAGE) {
        const e = new Error(`agent reply of ${len} bytes is too long`);
        this.closedError ??= e;
        for (const w of this.waiting.splice(0)) w.reject(e);
        this.socket.destroy();
        return;
      }
      if (this.buf.length < 4 + len) return;
      const body = this.buf.subarray(4, 4 + len);
      this.buf = this.buf.subarray(4 + len);
      this.waiting.shift()!.resolve(body);
    }
  }

  /** Send one request and wait for its reply (decoded). */
  async request(req: OutgoingRequest): Promise<Response> {
    return decodeResponse(await this.raw(encodeRequest(req)));
  }

  /** Send framed bytes and wait for one reply body. */
  raw(framed: Buffer): Promise<Buffer> {
    return this.rawBatch([framed])[0];
  }

  /**
   * Send several framed requests in a single write (pipelined mode only for
   * more than one); one promise per reply, in order.
   */
  rawBatch(frames: Buffer[]): Promise<Buffer>[] {
    if (this.closedError) return frames.map(() => Promise.reject(this.closedError));
    if (!this.pipelined && (this.waiting.length > 0 || frames.length > 1))
      return frames.map(() => Promise.reject(new Error('one request at a time')));
    const replies = frames.map(
      () => new Promise<Buffer>((resolve, reject) => this.waiting.push({ resolve, reject })),
    );
    this.socket.write(frames.length === 1 ? frames[0] : Buffer.concat(frames));
    this.deliver();
    return replies;
  }

  close(): void {
    this.socket.destroy();
  }
}
