// A minimal agent client: one connection, one request at a time. Used by the
// tsagent subcommands (unlock, lock, status) and by tests and the benchmark.

import * as net from 'node:net';
import { MAX_MESSAGE, OutgoingRequest, Response, decodeResponse, encodeRequest } from './protocol';

export class AgentClient {
  private buf: Buffer = Buffer.alloc(0);
  private waiting: { resolve: (b: Buffer) => void; reject: (e: Error) => void } | null = null;
  private closedError: Error | null = null;

  private constructor(private readonly socket: net.Socket) {
    socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.deliver();
    });
    const fail = (e: Error) => {
      this.closedError = e;
      this.waiting?.reject(e);
      this.waiting = null;
    };
    socket.on('error', fail);
    socket.on('close', () => fail(new Error('agent closed the connection')));
  }

  static connect(path: string, timeoutMs = 5000): Promise<AgentClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect(path);
      const timer = setTimeout(() => {
        s.destroy();
        reject(new Error(`timed out connecting to ${path}`));
      }, timeoutMs);
      s.once('connect', () => {
        clearTimeout(timer);
        resolve(new AgentClient(s));
      });
      s.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
  }

  private deliver(): void {
    if (!this.waiting || this.buf.length < 4) return;
    const len = this.buf.readUInt32BE(0);
    if (len > MAX_MESSAGE) {
      this.waiting.reject(new Error(`agent reply of ${len} bytes is too long`));
      this.waiting = null;
      this.socket.destroy();
      return;
    }
    if (this.buf.length < 4 + len) return;
    const body = this.buf.subarray(4, 4 + len);
    this.buf = this.buf.subarray(4 + len);
    const w = this.waiting;
    this.waiting = null;
    w.resolve(body);
  }

  /** Send one request and wait for its reply (decoded). */
  async request(req: OutgoingRequest): Promise<Response> {
    return decodeResponse(await this.raw(encodeRequest(req)));
  }

  /** Send framed bytes and wait for one reply body. */
  raw(framed: Buffer): Promise<Buffer> {
    if (this.closedError) return Promise.reject(this.closedError);
    if (this.waiting) return Promise.reject(new Error('one request at a time'));
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
      this.socket.write(framed);
      this.deliver();
    });
  }

  close(): void {
    this.socket.destroy();
  }
}
