// The agent's memory beside Node's floor: the RSS of an idle `node` (what
// `node -e 0` costs, kept alive long enough to be read), of tsagent idle after
// start-up, and after 200 keys and two seconds of signing at 64 connections
// (loaded: the RSS right after the load; high-water: VmHWM, the peak). Each
// figure is read from /proc/PID/status (VmRSS, VmHWM, RssAnon).
//
// Stand-alone: node dist/bench/memory.js [--runs N] [--ts-main FILE] [--json]
// prints the medians of N runs (default 5); `npm run bench` runs it too.

import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MSG } from '../src/agent/protocol';
import { TSAGENT_MAIN, benchEnv, startAgent } from './agent-process';
import { median, procRss } from './proc-stats';
import { addKeys, manyEd25519, signRequest } from './test-keys';
import { runLoad } from './loadgen';

export interface MemoryRun {
  /** Idle `node`: VmRSS and RssAnon (MB). */
  floorMb: number;
  floorAnonMb: number;
  /** tsagent after start-up and one REQUEST_IDENTITIES, no keys. */
  idleMb: number;
  idleAnonMb: number;
  /** Right after the load (200 keys, signing at 64 connections). */
  loadedMb: number;
  loadedAnonMb: number;
  /** VmHWM at the end: the most the agent ever had resident. */
  highWaterMb: number;
  /** Signatures per second during the load (to see that memory was not bought with speed). */
  opsPerSec: number;
}

export interface MemoryOptions {
  main?: string;
  keys?: number;
  concurrency?: number;
  durationMs?: number;
  /** Pause before reading an idle figure, so that start-up's garbage can go. */
  settleMs?: number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The RSS of a `node` that does nothing, read after `settleMs`. */
async function nodeFloor(settleMs: number): Promise<{ rssMb: number; anonMb: number }> {
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1 << 30)'], {
    stdio: 'ignore',
  });
  try {
    await sleep(settleMs);
    return procRss(child.pid!);
  } finally {
    child.kill('SIGKILL');
  }
}

/** One measurement: floor, idle, loaded, high-water. */
export async function measureMemory(o: MemoryOptions = {}): Promise<MemoryRun> {
  const settleMs = o.settleMs ?? 1000;
  const floor = await nodeFloor(settleMs);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsagent-bench-mem-'));
  fs.chmodSync(dir, 0o700);
  const agent = await startAgent(
    'tsagent',
    path.join(dir, 'agent.sock'),
    benchEnv(dir),
    [],
    o.main ?? TSAGENT_MAIN,
  );
  try {
    await sleep(settleMs);
    const idle = procRss(agent.pid);
    const keys = manyEd25519(o.keys ?? 200);
    await addKeys(agent.sock, keys, 'mem');
    const load = await runLoad({
      sock: agent.sock,
      concurrency: o.concurrency ?? 64,
      durationMs: o.durationMs ?? 2000,
      warmupMs: 100,
      request: signRequest(keys[keys.length >> 1]).toString('base64'),
      expect: MSG.SIGN_RESPONSE,
    });
    if (load.failures + load.connErrors > 0)
      throw new Error(`memory load: ${load.failures} failures, ${load.connErrors} closed`);
    const loaded = procRss(agent.pid);
    return {
      floorMb: floor.rssMb,
      floorAnonMb: floor.anonMb,
      idleMb: idle.rssMb,
      idleAnonMb: idle.anonMb,
      loadedMb: loaded.rssMb,
      loadedAnonMb: loaded.anonMb,
      highWaterMb: loaded.hwmMb,
      opsPerSec: load.opsPerSec,
    };
  } finally {
    await agent.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Medians of the runs, field by field. */
export function medianRun(runs: MemoryRun[]): MemoryRun {
  const out = {} as MemoryRun;
  for (const k of Object.keys(runs[0]) as (keyof MemoryRun)[])
    out[k] = median(runs.map((r) => r[k]));
  return out;
}

const mb = (x: number) => x.toFixed(1);

/** The report's rows: markdown, with the goals of issue 15. */
export function memoryTable(runs: MemoryRun[]): string {
  const m = medianRun(runs);
  const L = [
    `| memory (median of ${runs.length} runs, MB) | RSS | RssAnon | vs Node's floor | goal | met? |`,
    '|---|--:|--:|--:|--:|---|',
    `| Node's floor: idle \`node -e\` | ${mb(m.floorMb)} | ${mb(m.floorAnonMb)} | | | |`,
    `| tsagent idle | ${mb(m.idleMb)} | ${mb(m.idleAnonMb)} | +${mb(m.idleMb - m.floorMb)} | ≤ floor + 8 | ${m.idleMb - m.floorMb <= 8 ? 'met' : '**missed**'} |`,
    `| tsagent loaded: 200 keys, 2 s signing at C=64 (${Math.round(m.opsPerSec)} sign/s) | ${mb(m.loadedMb)} | ${mb(m.loadedAnonMb)} | +${mb(m.loadedMb - m.floorMb)} | ≤ idle + 16 (${mb(m.idleMb + 16)}) | ${m.loadedMb - m.idleMb <= 16 ? 'met' : '**missed**'} |`,
    `| tsagent high-water (VmHWM) | ${mb(m.highWaterMb)} | | +${mb(m.highWaterMb - m.floorMb)} | | |`,
  ];
  return L.join('\n') + '\n';
}

async function standalone(argv: string[]): Promise<void> {
  let runs = 5;
  let main: string | undefined;
  let json = false;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--runs') runs = Number(argv[++i]);
    else if (argv[i] === '--ts-main') main = path.resolve(argv[++i]);
    else if (argv[i] === '--json') json = true;
    else throw new Error(`unknown option ${argv[i]}`);
  }
  const results: MemoryRun[] = [];
  for (let i = 0; i < runs; i++) {
    const r = await measureMemory({ main });
    results.push(r);
    process.stderr.write(
      `  run ${i + 1}: floor ${mb(r.floorMb)} idle ${mb(r.idleMb)} loaded ${mb(r.loadedMb)} ` +
        `high-water ${mb(r.highWaterMb)} MB, ${Math.round(r.opsPerSec)} sign/s\n`,
    );
  }
  process.stdout.write(json ? JSON.stringify(results) + '\n' : memoryTable(results));
}

if (require.main === module)
  standalone(process.argv.slice(2)).catch((e: Error) => {
    process.stderr.write(`memory: ${e.stack ?? e.message}\n`);
    process.exit(1);
  });
