// The load generator: C connections to an agent's Unix socket, each sending one
// request, waiting for its reply, sending the next, for a fixed time. It runs in
// its own process (forked by bench/run.ts, jobs over IPC) so its CPU is not the
// agent's, and reports its own CPU time next to the agent's (from /proc).
//
// Stand-alone: node dist/bench/loadgen.js SOCK [CONCURRENCY] [SECONDS] [list]
// signs with the agent's first identity (or lists identities with `list`).

import * as net from 'node:net';
import { MSG, SIGN_FLAG, decodeResponse, encodeRequest } from '../src/agent/protocol';
import { AgentClient } from '../src/agent/client';
import { machineBusyMs, procCpuMs, quantile } from './proc-stats';
import { LIST_REQUEST, SIGN_DATA } from './test-keys';

export interface LoadJob {
  sock: string;
  concurrency: number;
  /** Measured time, after the warm-up. */
  durationMs: number;
  /** Requests sent but not counted, to let both agents reach a steady state. */
  warmupMs: number;
  /** The framed request (length prefix included), sent again and again. */
  request: string; // base64
  /** The reply type counted as success (SIGN_RESPONSE or IDENTITIES_ANSWER). */
  expect: number;
  /** The agent's pid, for its CPU time over the measured window. */
  agentPid?: number;
}

export interface LoadResult {
  ops: number;
  failures: number;
  /** Connections that failed or closed early. */
  connErrors: number;
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  wallMs: number;
  /** CPU of the generator over the measured window, % of one core. */
  genCpuPct: number;
  /** CPU of the agent (all threads, and its helper processes) over the measured window, % of one core. */
  agentCpuPct: number;
  /** CPU used by every other process on the machine meanwhile (noise), % of one core. */
  otherCpuPct: number;
}

export function runLoad(job: LoadJob): Promise<LoadResult> {
  const request = Buffer.from(job.request, 'base64');
  return new Promise((resolve, reject) => {
    const sockets: net.Socket[] = [];
    let connected = 0;
    let finished = 0;
    let measuring = false;
    let measureStart = 0;
    let endAt = Infinity;
    let ops = 0;
    let failures = 0;
    let connErrors = 0;
    let lat = new Float64Array(1 << 16);
    let nLat = 0;
    let cpu0 = process.cpuUsage();
    let agent0 = 0;
    let busy0 = 0;

    const record = (ms: number) => {
      if (nLat === lat.length) {
        const bigger = new Float64Array(lat.length * 2);
        bigger.set(lat);
        lat = bigger;
      }
      lat[nLat++] = ms;
    };

    const finish = () => {
      const wallMs = job.durationMs;
      closeWindow();
      const cpu = cpuEnd!;
      const busyPct = ((busyEnd - busy0) / wallMs) * 100;
      const genCpuPct = ((cpu.user + cpu.system) / 1000 / wallMs) * 100;
      const agentCpuPct = job.agentPid ? ((agentEnd - agent0) / wallMs) * 100 : NaN;
      const sorted = lat.subarray(0, nLat).sort();
      resolve({
        ops,
        failures,
        connErrors,
        opsPerSec: wallMs > 0 ? (ops / wallMs) * 1000 : 0,
        p50Ms: quantile(sorted, 0.5),
        p99Ms: quantile(sorted, 0.99),
        maxMs: nLat ? sorted[nLat - 1] : NaN,
        wallMs,
        genCpuPct,
        agentCpuPct,
        otherCpuPct: Math.max(0, busyPct - genCpuPct - (agentCpuPct || 0)),
      });
    };

    let cpuEnd: NodeJS.CpuUsage | undefined;
    let busyEnd = 0;
    let agentEnd = 0;
    const closeWindow = () => {
      if (cpuEnd) return;
      cpuEnd = process.cpuUsage(cpu0);
      busyEnd = machineBusyMs();
      try {
        if (job.agentPid) agentEnd = procCpuMs(job.agentPid);
      } catch {
        agentEnd = NaN;
      }
    };
    const startMeasuring = () => {
      measuring = true;
      measureStart = performance.now();
      endAt = measureStart + job.durationMs;
      cpu0 = process.cpuUsage();
      busy0 = machineBusyMs();
      if (job.agentPid) agent0 = procCpuMs(job.agentPid);
      // CPU is read when the window closes, not after the last straggler is in.
      setTimeout(closeWindow, job.durationMs);
    };

    const driveConnection = (s: net.Socket) => {
      let pending: Buffer | null = null;
      let sentAt = 0;
      let done = false;
      const stop = () => {
        if (done) return;
        done = true;
        s.destroy();
        if (++finished === job.concurrency) finish();
      };
      const send = () => {
        sentAt = performance.now();
        s.write(request);
      };
      s.on('data', (chunk: Buffer) => {
        pending = pending ? Buffer.concat([pending, chunk]) : chunk;
        while (pending && pending.length >= 4) {
          const len = pending.readUInt32BE(0);
          if (pending.length < 4 + len) return;
          const type = len > 0 ? pending[4] : -1;
          pending = pending.length === 4 + len ? null : pending.subarray(4 + len);
          const now = performance.now();
          // Closed loop: count the replies that arrive inside the measured window.
          if (measuring && now <= endAt) {
            if (type === job.expect) {
              ops++;
              record(now - sentAt);
            } else failures++;
          }
          if (now < endAt) send();
          else {
            closeWindow();
            stop();
          }
        }
      });
      s.on('error', () => {});
      s.on('close', () => {
        if (!done) {
          connErrors++;
          stop();
        }
      });
      send();
    };

    for (let i = 0; i < job.concurrency; i++) {
      const s = net.connect(job.sock);
      sockets.push(s);
      s.once('error', (e) => {
        if (connected < job.concurrency) reject(new Error(`connect ${job.sock}: ${e.message}`));
      });
      s.once('connect', () => {
        if (++connected < job.concurrency) return;
        // Every connection is up: warm up, then measure.
        for (const c of sockets) driveConnection(c);
        setTimeout(startMeasuring, job.warmupMs);
      });
    }
  });
}

async function standalone(argv: string[]): Promise<void> {
  const [sock, c = '8', secs = '3', mode = 'sign'] = argv;
  let request: Buffer = LIST_REQUEST;
  let expect: number = MSG.IDENTITIES_ANSWER;
  if (mode !== 'list') {
    const client = await AgentClient.connect(sock);
    const r = decodeResponse(await client.raw(LIST_REQUEST));
    client.close();
    if (r.type !== 'identities' || r.identities.length === 0) throw new Error('no identities');
    const keyBlob = r.identities[0].keyBlob;
    const isRsa = keyBlob.subarray(4, 11).toString() === 'ssh-rsa';
    request = encodeRequest({
      type: 'sign',
      keyBlob,
      data: SIGN_DATA,
      flags: isRsa ? SIGN_FLAG.RSA_SHA2_256 : 0,
    });
    expect = MSG.SIGN_RESPONSE;
  }
  const res = await runLoad({
    sock,
    concurrency: Number(c),
    durationMs: Number(secs) * 1000,
    warmupMs: 200,
    request: request.toString('base64'),
    expect,
  });
  process.stdout.write(JSON.stringify(res, null, 2) + '\n');
}

if (require.main === module) {
  if (process.send) {
    // Forked by bench/run.ts: one job per message, one result per job.
    process.on('message', (job: LoadJob) => {
      runLoad(job).then(
        (result) => process.send!({ result }),
        (e: Error) => process.send!({ error: e.message }),
      );
    });
  } else {
    standalone(process.argv.slice(2)).catch((e: Error) => {
      process.stderr.write(`loadgen: ${e.message}\n`);
      process.exit(1);
    });
  }
}
