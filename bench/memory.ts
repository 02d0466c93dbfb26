// The agent's memory beside Node's floor: the RSS of an idle `node` (what
// `node -e 0` costs, kept alive long enough to be read); of tsagent (-D -a)
// one second after start-up, and idle, 20 s after start-up without a request (V8's
// memory reducer gives back start-up's heap about 8 s after the last GC, as it
// does for an agent that idles all day); then after 200 keys and two seconds
// of signing at 64 connections (loaded: the RSS right after the load;
// high-water: VmHWM, the most it ever had). Each figure is read from
// /proc/PID/status (VmRSS, VmHWM, RssAnon).
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
  /** tsagent 1 s after it first answered (REQUEST_IDENTITIES), no keys. */
  startedMb: number;
  /** The same agent after `idleMs` more without a request. */
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
  /** Pause before reading the floor and the started figure. */
  settleMs?: number;
  /** Then before reading the idle one. */
  idleMs?: number;
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
    const started = procRss(agent.pid);
    await sleep(o.idleMs ?? 19_000);
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
      startedMb: started.rssMb,
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

/** The report's section: markdown, with the goals of issue 15. */
export function memorySection(runs: MemoryRun[]): string {
  const m = medianRun(runs);
  const vsFloor = (x: number) => `+${mb(x - m.floorMb)}`;
  const met = (ok: boolean) => (ok ? 'met' : '**missed**');
  const L = [
    '## Memory (issue 15)',
    '',
    `\`node dist/bench/memory.js\`: medians of ${runs.length} runs. Idle is 20 s after start-up ` +
      "without a request (V8's memory reducer has run); loaded is right after 200 keys and 2 s " +
      'of ed25519 signing at 64 connections; high-water is VmHWM.',
    '',
    "| memory (MB) | RSS | RssAnon | vs Node's floor | goal | met? |",
    '|---|--:|--:|--:|--:|---|',
    `| Node's floor: an idle \`node -e\` | ${mb(m.floorMb)} | ${mb(m.floorAnonMb)} | | | |`,
    `| tsagent 1 s after start-up | ${mb(m.startedMb)} | | ${vsFloor(m.startedMb)} | | |`,
    `| tsagent idle | ${mb(m.idleMb)} | ${mb(m.idleAnonMb)} | ${vsFloor(m.idleMb)} | ≤ floor + 8 | ${met(m.idleMb - m.floorMb <= 8)} |`,
    `| tsagent loaded (${Math.round(m.opsPerSec)} sign/s) | ${mb(m.loadedMb)} | ${mb(m.loadedAnonMb)} | ${vsFloor(m.loadedMb)} | ≤ idle + 16 (${mb(m.idleMb + 16)}) | ${met(m.loadedMb - m.idleMb <= 16)} |`,
    `| tsagent high-water (VmHWM) | ${mb(m.highWaterMb)} | | ${vsFloor(m.highWaterMb)} | | |`,
  ];
  return L.join('\n') + '\n';
}

/** `runs` measurements, one after another, with progress on stderr. */
export async function measureMemoryRuns(runs: number, o: MemoryOptions = {}): Promise<MemoryRun[]> {
  const results: MemoryRun[] = [];
  for (let i = 0; i < runs; i++) {
    const r = await measureMemory(o);
    results.push(r);
    process.stderr.write(
      `  memory ${i + 1}/${runs}: floor ${mb(r.floorMb)} started ${mb(r.startedMb)} idle ${mb(r.idleMb)} ` +
        `loaded ${mb(r.loadedMb)} high-water ${mb(r.highWaterMb)} MB, ${Math.round(r.opsPerSec)} sign/s\n`,
    );
  }
  return results;
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
  const results = await measureMemoryRuns(runs, { main });
  process.stdout.write(json ? JSON.stringify(results) + '\n' : memorySection(results));
}

if (require.main === module)
  standalone(process.argv.slice(2)).catch((e: Error) => {
    process.stderr.write(`memory: ${e.stack ?? e.message}\n`);
    process.exit(1);
  });
