// The ML-DSA-44 half of ssh-mldsa44-ed25519 signatures, made in a worker thread:
// in JavaScript it takes milliseconds, which on the event loop would hold up
// every other client (Node's own signatures go to libuv's thread pool instead).
// One worker, started on the first such signature; this file is also its code.

import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { signMlDsa } from '../ssh/mldsa';

const ROLE = 'tsagent-mldsa-signer';

interface Job {
  id: number;
  secretKey: Uint8Array;
  message: Uint8Array;
}
type Reply = { id: number; signature: Uint8Array } | { id: number; error: string };

if (!isMainThread && workerData?.role === ROLE) {
  parentPort?.on('message', (job: Job) => {
    let reply: Reply;
    try {
      reply = { id: job.id, signature: signMlDsa(job.secretKey, job.message) };
    } catch (e) {
      reply = { id: job.id, error: e instanceof Error ? e.message : String(e) };
    } finally {
      job.secretKey.fill(0); // this thread's copy
    }
    parentPort?.postMessage(reply);
  });
}

let worker: Worker | undefined;
let nextId = 1;
const pending = new Map<number, { resolve: (s: Buffer) => void; reject: (e: Error) => void }>();

function failAll(err: Error): void {
  for (const p of pending.values()) p.reject(err);
  pending.clear();
  worker = undefined;
}

function start(): Worker {
  const w = new Worker(__filename, { workerData: { role: ROLE } });
  w.on('message', (r: Reply) => {
    const p = pending.get(r.id);
    if (!p) return;
    pending.delete(r.id);
    if (pending.size === 0) w.unref();
    if ('error' in r) p.reject(new Error(r.error));
    else p.resolve(Buffer.from(r.signature));
  });
  w.on('error', (e) => failAll(e));
  w.on('exit', (code) => failAll(new Error(`ML-DSA signer exited with code ${code}`)));
  w.unref();
  return w;
}

/** The ML-DSA-44 signature of `message` (FIPS 204, with the composite label as context), off the event loop. */
export function signMlDsaInWorker(secretKey: Uint8Array, message: Buffer): Promise<Buffer> {
  worker ??= start();
  const w = worker;
  const id = nextId++;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject });
    w.ref();
    // The secret key is copied to the worker (structured clone), which wipes its copy.
    w.postMessage({ id, secretKey, message } satisfies Job);
  });
}
