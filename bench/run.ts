// `npm run bench [-- --quick]`: tsagent against OpenSSH's ssh-agent, side by
// side and interleaved (A B A B … for every case, in every round), on the
// same machine. Prints a markdown table of medians and tsagent/ssh-agent
// ratios and writes it to bench/results.md.
//
// Options: --quick (under 60 s; writes bench/results-quick.md), --rounds N, --duration MS (per case and agent),
// --warmup MS, --only REGEX (case names), --no-openssl, --out FILE, --json FILE,
// --cpu-prof DIR (run tsagent under node --cpu-prof; profiles land in DIR),
// --ts-main FILE (the tsagent main.js to measure), --baseline-main FILE (A/B two
// tsagent builds: the second takes ssh-agent's place, labelled "baseline").

import { ChildProcess, execFileSync, fork, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MSG } from '../src/agent/protocol';
import {
  AgentName,
  AgentProcess,
  KEY_KINDS,
  KeyKind,
  LIST_REQUEST,
  REPO,
  TSAGENT_MAIN,
  TestKey,
  addKeys,
  benchEnv,
  generateTestKey,
  manyEd25519,
  median,
  procRss,
  signRequest,
  startAgent,
} from './common';
import type { LoadJob, LoadResult } from './loadgen';

// ---------------------------------------------------------------- options

interface Options {
  quick: boolean;
  rounds: number;
  durationMs: number;
  warmupMs: number;
  only?: RegExp;
  openssl: boolean;
  out: string;
  json?: string;
  cpuProf?: string;
  tsMain?: string;
  baselineMain?: string;
  startupSamples: number;
  evalSamples: number;
}

function parseOptions(argv: string[]): Options {
  const quick = argv.includes('--quick');
  const o: Options = {
    quick,
    durationMs: quick ? 200 : 1500,
    warmupMs: quick ? 60 : 300,
    rounds: quick ? 3 : 5,
    openssl: true,
    // A quick run is a smoke test: it does not replace the committed full results.
    out: path.join(REPO, 'bench', quick ? 'results-quick.md' : 'results.md'),
    startupSamples: quick ? 1 : 4,
    evalSamples: quick ? 2 : 8,
  };
  for (let i = 0; i < argv.length; i++) {
    const v = () => argv[++i];
    switch (argv[i]) {
      case '--quick':
        break;
      case '--rounds':
        o.rounds = Number(v());
        break;
      case '--duration':
        o.durationMs = Number(v());
        break;
      case '--warmup':
        o.warmupMs = Number(v());
        break;
      case '--only':
        o.only = new RegExp(v());
        break;
      case '--no-openssl':
        o.openssl = false;
        break;
      case '--out':
        o.out = path.resolve(v());
        break;
      case '--json':
        o.json = path.resolve(v());
        break;
      case '--cpu-prof':
        o.cpuProf = path.resolve(v());
        break;
      case '--ts-main':
        o.tsMain = path.resolve(v());
        break;
      case '--baseline-main':
        o.baselineMain = path.resolve(v());
        break;
      default:
        throw new Error(`unknown option ${argv[i]}`);
    }
  }
  return o;
}

// ---------------------------------------------------------------- cases

interface LoadCase {
  name: string;
  kind: 'sign' | 'list';
  key?: KeyKind;
  concurrency: number;
  /** list cases: identities loaded. */
  identities?: number;
}

function loadCases(o: Options): LoadCase[] {
  const cases: LoadCase[] = [];
  for (const key of KEY_KINDS) {
    // --quick keeps concurrency 64 for ed25519 only.
    const cs = o.quick && key !== 'ed25519' ? [1, 8] : [1, 8, 64];
    for (const c of cs)
      cases.push({ name: `sign ${key} C=${c}`, kind: 'sign', key, concurrency: c });
  }
  cases.push({ name: 'list 5 keys C=1', kind: 'list', concurrency: 1, identities: 5 });
  cases.push({ name: 'list 500 keys C=1', kind: 'list', concurrency: 1, identities: 500 });
  return o.only ? cases.filter((c) => o.only!.test(c.name)) : cases;
}

// ---------------------------------------------------------------- load generator process

class LoadGen {
  private readonly child: ChildProcess;
  private queue: ((m: { result?: LoadResult; error?: string }) => void)[] = [];

  constructor() {
    this.child = fork(path.join(__dirname, 'loadgen.js'), [], { stdio: 'inherit' });
    this.child.on('message', (m: { result?: LoadResult; error?: string }) =>
      this.queue.shift()?.(m),
    );
  }

  run(job: LoadJob): Promise<LoadResult> {
    return new Promise((resolve, reject) => {
      this.queue.push((m) => (m.result ? resolve(m.result) : reject(new Error(m.error))));
      this.child.send(job);
    });
  }

  close(): void {
    this.child.kill();
  }
}

// ---------------------------------------------------------------- measurements

type PerAgent<T> = Record<AgentName, T>;
const AGENTS: AgentName[] = ['tsagent', 'ssh-agent'];

interface Samples {
  load: Record<string, PerAgent<LoadResult[]>>;
  readyMs: PerAgent<number[]>;
  idleRssMb: PerAgent<number[]>;
  idleAnonMb: PerAgent<number[]>;
  peakRssMb: PerAgent<number[]>;
  evalMs: number[];
  nodeMs: number[];
}

function newSamples(cases: LoadCase[]): Samples {
  const load: Samples['load'] = {};
  for (const c of cases) load[c.name] = { tsagent: [], 'ssh-agent': [] };
  return {
    load,
    readyMs: { tsagent: [], 'ssh-agent': [] },
    idleRssMb: { tsagent: [], 'ssh-agent': [] },
    idleAnonMb: { tsagent: [], 'ssh-agent': [] },
    peakRssMb: { tsagent: [], 'ssh-agent': [] },
    evalMs: [],
    nodeMs: [],
  };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function privateTmpDir(prefix: string): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  fs.chmodSync(d, 0o700);
  return d;
}

function agentEnv(dir: string): NodeJS.ProcessEnv {
  return benchEnv(dir);
}

function start(name: AgentName, sock: string, env: NodeJS.ProcessEnv, o: Options) {
  const nodeArgs = o.cpuProf ? ['--cpu-prof', '--cpu-prof-dir', o.cpuProf] : [];
  if (name === 'ssh-agent' && o.baselineMain)
    return startAgent('tsagent', sock, env, [], o.baselineMain);
  return startAgent(name, sock, env, nodeArgs, o.tsMain);
}

/** What the report calls agent B. */
let B = 'ssh-agent';

async function round(
  r: number,
  o: Options,
  cases: LoadCase[],
  keys: TestKey[],
  extraKeys: TestKey[],
  gen: LoadGen,
  s: Samples,
): Promise<void> {
  const dir = privateTmpDir('tsagent-bench-');
  const env = agentEnv(dir);
  const agents = {} as PerAgent<AgentProcess>;
  try {
    // Time until the socket answers, A B A B.
    for (let i = 0; i < o.startupSamples - 1; i++) {
      for (const name of AGENTS) {
        const a = await start(name, path.join(dir, `probe-${name}-${i}.sock`), env, o);
        s.readyMs[name].push(a.readyMs);
        await a.stop();
      }
    }
    for (const name of AGENTS) {
      agents[name] = await start(name, path.join(dir, `${name}.sock`), env, o);
      s.readyMs[name].push(agents[name].readyMs);
    }
    for (const name of AGENTS) await addKeys(agents[name].sock, keys);
    await sleep(200);
    for (const name of AGENTS) {
      const m = procRss(agents[name].pid);
      s.idleRssMb[name].push(m.rssMb);
      s.idleAnonMb[name].push(m.anonMb);
    }

    let extraAdded = false;
    for (const c of cases) {
      if (c.kind === 'list' && c.identities! > keys.length && !extraAdded) {
        for (const name of AGENTS) await addKeys(agents[name].sock, extraKeys, 'extra');
        extraAdded = true;
      }
      const request =
        c.kind === 'sign' ? signRequest(keys.find((k) => k.kind === c.key)!) : LIST_REQUEST;
      for (const name of AGENTS) {
        const res = await gen.run({
          sock: agents[name].sock,
          concurrency: c.concurrency,
          durationMs: o.durationMs,
          warmupMs: o.warmupMs,
          request: request.toString('base64'),
          expect: c.kind === 'sign' ? MSG.SIGN_RESPONSE : MSG.IDENTITIES_ANSWER,
          agentPid: agents[name].pid,
        });
        s.load[c.name][name].push(res);
      }
      const [a, b] = AGENTS.map((n) => s.load[c.name][n].at(-1)!);
      process.stderr.write(
        `  round ${r} ${c.name.padEnd(22)} tsagent ${fmt(a.opsPerSec, 0).padStart(7)}/s ` +
          `${B} ${fmt(b.opsPerSec, 0).padStart(7)}/s  ratio ${fmt(a.opsPerSec / b.opsPerSec, 2)}` +
          (a.failures + b.failures + a.connErrors + b.connErrors
            ? `  failures ${a.failures}+${a.connErrors}/${b.failures}+${b.connErrors}`
            : '') +
          '\n',
      );
    }
    for (const name of AGENTS) s.peakRssMb[name].push(procRss(agents[name].pid).hwmMb);
  } finally {
    for (const a of Object.values(agents)) await a.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * `eval "$(tsagent)"` with an agent already running: the whole command, against
 * a bare `node -e 0`, alternating. Returns the pid of the background agent.
 */
function evalReuse(o: Options, s: Samples, dir: string): void {
  const env = agentEnv(dir);
  for (let i = 0; i < o.evalSamples; i++) {
    for (const which of ['tsagent', 'node'] as const) {
      const args = which === 'tsagent' ? [o.tsMain!] : ['-e', '0'];
      const t0 = performance.now();
      const r = spawnSync(process.execPath, args, { env, encoding: 'utf8' });
      const ms = performance.now() - t0;
      if (r.status !== 0) throw new Error(`${which} exited ${r.status}: ${r.stderr}`);
      (which === 'tsagent' ? s.evalMs : s.nodeMs).push(ms);
    }
  }
}

/**
 * Copy the built agent (dist/src) aside so that a rebuild of the checkout while
 * the bench runs (other people work in it too) cannot change or break what is
 * measured half-way. Returns the copy's main.js.
 */
function snapshotTsagent(into: string): string {
  const src = path.dirname(path.dirname(TSAGENT_MAIN)); // dist/src
  fs.cpSync(src, path.join(into, 'dist', 'src'), { recursive: true });
  fs.symlinkSync(path.join(REPO, 'node_modules'), path.join(into, 'node_modules'));
  return path.join(into, 'dist', 'src', 'cli', 'main.js');
}

function startBackgroundAgent(dir: string, main: string): number {
  const out = execFileSync(process.execPath, [main, '-s'], {
    env: agentEnv(dir),
    encoding: 'utf8',
  });
  const pid = Number(/SSH_AGENT_PID=(\d+)/.exec(out)?.[1]);
  if (!pid) throw new Error(`no SSH_AGENT_PID in ${JSON.stringify(out)}`);
  return pid;
}

// ---------------------------------------------------------------- openssl speed

const OPENSSL_NAMES: Record<KeyKind, string> = {
  ed25519: 'ed25519',
  'ecdsa-p256': 'ecdsap256',
  'ecdsa-p384': 'ecdsap384',
  'rsa-2048': 'rsa2048',
  'rsa-4096': 'rsa4096',
};

function opensslSpeed(kinds: KeyKind[]): Partial<Record<KeyKind, number>> {
  const r = spawnSync(
    'openssl',
    ['speed', '-seconds', '1', ...kinds.map((k) => OPENSSL_NAMES[k])],
    { encoding: 'utf8' },
  );
  const out = r.stdout ?? '';
  const res: Partial<Record<KeyKind, number>> = {};
  const num = (re: RegExp) => {
    const m = re.exec(out);
    return m ? Number(m[1]) : undefined;
  };
  // The summary lines: "<what>  <s/sign>  <s/verify>  <sign/s>  <verify/s>".
  res.ed25519 = num(/EdDSA \(Ed25519\)\s+\S+s\s+\S+s\s+([\d.]+)/);
  res['ecdsa-p256'] = num(/ecdsa \(nistp256\)\s+\S+s\s+\S+s\s+([\d.]+)/);
  res['ecdsa-p384'] = num(/ecdsa \(nistp384\)\s+\S+s\s+\S+s\s+([\d.]+)/);
  res['rsa-2048'] = num(/^\s*rsa\s+2048 bits\s+\S+s\s+\S+s\s+([\d.]+)/m);
  res['rsa-4096'] = num(/^\s*rsa\s+4096 bits\s+\S+s\s+\S+s\s+([\d.]+)/m);
  return res;
}

// ---------------------------------------------------------------- report

function fmt(x: number, digits = 1): string {
  if (!Number.isFinite(x)) return 'n/a';
  return x.toLocaleString('en-US', {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

/** Median over rounds of the per-round ratio tsagent/ssh-agent. */
function ratioMedian(ts: number[], ssh: number[]): number {
  return median(ts.map((t, i) => t / ssh[i]));
}

let loadAtStart: number[] = [];

function machine(): string {
  const cpuinfo = fs.readFileSync('/proc/cpuinfo', 'utf8');
  const model = /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? 'unknown';
  const sshV = spawnSync('ssh', ['-V'], { encoding: 'utf8' }).stderr.trim();
  const mem = Math.round(os.totalmem() / 2 ** 30);
  return [
    `- Date: ${new Date().toISOString()}`,
    `- CPU: ${os.cpus().length} cores, ${model} (${os.arch()}), ${mem} GiB RAM`,
    `- OS: ${os.type()} ${os.release()}`,
    `- Node: ${process.version}; OpenSSH: ${sshV}`,
    `- Load average (1/5/15 min) at start: ${loadAtStart.map((x) => x.toFixed(2)).join(' ')}, ` +
      `at end: ${os
        .loadavg()
        .map((x) => x.toFixed(2))
        .join(' ')} (other work on the machine shows in the "CPU % other" column)`,
  ].join('\n');
}

interface Target {
  what: string;
  measured: number;
  goal: number;
  higherIsBetter: boolean;
  unit: string;
}

function report(
  o: Options,
  cases: LoadCase[],
  s: Samples,
  speed: Partial<Record<KeyKind, number>>,
  elapsedS: number,
): string {
  const L: string[] = [];
  const med = (rs: LoadResult[], f: (r: LoadResult) => number) => median(rs.map(f));
  const usPerOp = (r: LoadResult) => (r.agentCpuPct * 10_000) / r.opsPerSec;
  L.push(
    o.baselineMain ? `# tsagent vs baseline ${o.baselineMain}` : '# tsagent vs OpenSSH ssh-agent',
  );
  L.push('');
  L.push(machine());
  L.push(
    `- Run: \`npm run bench${o.quick ? ' -- --quick' : ''}\`, ${o.rounds} rounds, ` +
      `${o.durationMs} ms per case and agent after ${o.warmupMs} ms warm-up, ` +
      `A B A B interleaved; ${fmt(elapsedS, 0)} s in all`,
  );
  L.push('');
  L.push(
    'Figures are medians over rounds; a ratio is the median of the per-round ratios ' +
      `tsagent/${B} (throughput: higher is better; latency, time, memory: lower is better). ` +
      'CPU is % of one core over the measured window: the agent (all threads, /proc/PID/stat) ' +
      'and the load generator (a separate process, `process.cpuUsage()`); "other" is every ' +
      'other process on the machine meanwhile (/proc/stat), i.e. noise. CPU µs/op is the ' +
      "agent's CPU time per request: its efficiency, independent of scheduling.",
  );
  L.push('');
  L.push('## Request throughput and latency');
  L.push('');
  L.push(
    `| case | tsagent ops/s | ${B} ops/s | ratio ↑ | tsagent p50 / p99 ms | ${B} p50 / p99 ms | p99 ratio ↓ | ` +
      'failures ts / B | CPU µs/op ts / B | CPU % agent ts / B | CPU % loadgen ts / B | CPU % other ts / B | openssl 1-core sign/s |',
  );
  L.push('|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|');
  for (const c of cases) {
    const ts = s.load[c.name].tsagent;
    const ssh = s.load[c.name]['ssh-agent'];
    const fails = (rs: LoadResult[]) => rs.reduce((n, r) => n + r.failures + r.connErrors, 0);
    L.push(
      `| ${c.name} | ${fmt(
        med(ts, (r) => r.opsPerSec),
        0,
      )} | ${fmt(
        med(ssh, (r) => r.opsPerSec),
        0,
      )} | ` +
        `**${fmt(
          ratioMedian(
            ts.map((r) => r.opsPerSec),
            ssh.map((r) => r.opsPerSec),
          ),
          2,
        )}** | ` +
        `${fmt(
          med(ts, (r) => r.p50Ms),
          3,
        )} / ${fmt(
          med(ts, (r) => r.p99Ms),
          3,
        )} | ` +
        `${fmt(
          med(ssh, (r) => r.p50Ms),
          3,
        )} / ${fmt(
          med(ssh, (r) => r.p99Ms),
          3,
        )} | ` +
        `${fmt(
          ratioMedian(
            ts.map((r) => r.p99Ms),
            ssh.map((r) => r.p99Ms),
          ),
          2,
        )} | ` +
        `${fails(ts)} / ${fails(ssh)} | ` +
        `${fmt(med(ts, usPerOp), 0)} / ${fmt(med(ssh, usPerOp), 0)} | ` +
        `${fmt(
          med(ts, (r) => r.agentCpuPct),
          0,
        )} / ${fmt(
          med(ssh, (r) => r.agentCpuPct),
          0,
        )} | ` +
        `${fmt(
          med(ts, (r) => r.genCpuPct),
          0,
        )} / ${fmt(
          med(ssh, (r) => r.genCpuPct),
          0,
        )} | ` +
        `${fmt(
          med(ts, (r) => r.otherCpuPct),
          0,
        )} / ${fmt(
          med(ssh, (r) => r.otherCpuPct),
          0,
        )} | ` +
        `${c.key && speed[c.key] ? fmt(speed[c.key]!, 0) : ''} |`,
    );
  }
  L.push('');
  L.push('## Start-up, re-use, memory');
  L.push('');
  L.push(`| case | tsagent | ${B} | ratio ↓ |`);
  L.push('|---|--:|--:|--:|');
  const ready = s.readyMs;
  L.push(
    `| \`-D -a SOCK\` until the socket answers (ms) | ${fmt(median(ready.tsagent), 1)} | ` +
      `${fmt(median(ready['ssh-agent']), 1)} | ${fmt(ratioMedian(ready.tsagent, ready['ssh-agent']), 2)} |`,
  );
  L.push(
    `| \`eval "$(tsagent)"\`, agent running (ms) | ${fmt(median(s.evalMs), 1)} | ` +
      `n/a (\`node -e 0\`: ${fmt(median(s.nodeMs), 1)}) | ${fmt(ratioMedian(s.evalMs, s.nodeMs), 2)} × \`node -e 0\` |`,
  );
  L.push(
    `| idle RSS, 5 keys (MB) | ${fmt(median(s.idleRssMb.tsagent), 1)} | ` +
      `${fmt(median(s.idleRssMb['ssh-agent']), 1)} | ${fmt(ratioMedian(s.idleRssMb.tsagent, s.idleRssMb['ssh-agent']), 1)} |`,
  );
  L.push(
    `| idle RssAnon (private part of the idle RSS; the rest is mapped files, mostly the node binary) (MB) | ${fmt(median(s.idleAnonMb.tsagent), 1)} | ` +
      `${fmt(median(s.idleAnonMb['ssh-agent']), 1)} | ${fmt(ratioMedian(s.idleAnonMb.tsagent, s.idleAnonMb['ssh-agent']), 1)} |`,
  );
  L.push(
    `| peak RSS, after all cases (MB) | ${fmt(median(s.peakRssMb.tsagent), 1)} | ` +
      `${fmt(median(s.peakRssMb['ssh-agent']), 1)} | ${fmt(ratioMedian(s.peakRssMb.tsagent, s.peakRssMb['ssh-agent']), 1)} |`,
  );
  L.push('');

  // Targets of issue 5.
  const targets: Target[] = [];
  const opsRatio = (name: string) => {
    const l = s.load[name];
    return l
      ? ratioMedian(
          l.tsagent.map((r) => r.opsPerSec),
          l['ssh-agent'].map((r) => r.opsPerSec),
        )
      : NaN;
  };
  const p99Ratio = (name: string) => {
    const l = s.load[name];
    return l
      ? ratioMedian(
          l.tsagent.map((r) => r.p99Ms),
          l['ssh-agent'].map((r) => r.p99Ms),
        )
      : NaN;
  };
  const tput = (key: KeyKind, c: number, goal: number) =>
    targets.push({
      what: `sign ${key} C=${c} throughput`,
      measured: opsRatio(`sign ${key} C=${c}`),
      goal,
      higherIsBetter: true,
      unit: '×',
    });
  tput('ed25519', 1, 5);
  tput('ed25519', 8, 5);
  tput('ecdsa-p256', 1, 3);
  tput('ecdsa-p256', 8, 3);
  tput('rsa-2048', 1, 1.5);
  tput('rsa-2048', 8, 2);
  tput('rsa-4096', 8, 1.6);
  for (const k of KEY_KINDS)
    targets.push({
      what: `sign ${k} C=8 p99 latency`,
      measured: p99Ratio(`sign ${k} C=8`),
      goal: 1,
      higherIsBetter: false,
      unit: '×',
    });
  targets.push({
    what: 'list 500 keys throughput',
    measured: opsRatio('list 500 keys C=1'),
    goal: 1,
    higherIsBetter: true,
    unit: '×',
  });
  targets.push({
    what: '`eval "$(tsagent)"` re-use vs `node -e 0`',
    measured: ratioMedian(s.evalMs, s.nodeMs),
    goal: 1.3,
    higherIsBetter: false,
    unit: '×',
  });
  targets.push({
    what: 'idle RSS',
    measured: median(s.idleRssMb.tsagent),
    goal: 50,
    higherIsBetter: false,
    unit: ' MB',
  });
  let c64Failures = 0;
  let c64Cases = 0;
  for (const c of cases)
    if (c.concurrency === 64) {
      c64Cases++;
      for (const r of s.load[c.name].tsagent) c64Failures += r.failures + r.connErrors;
    }

  L.push('## Targets (issue 5)');
  L.push('');
  L.push('| target | goal | measured | met? |');
  L.push('|---|--:|--:|---|');
  for (const t of targets) {
    if (!Number.isFinite(t.measured)) {
      L.push(`| ${t.what} | ${t.higherIsBetter ? '≥' : '≤'} ${t.goal}${t.unit} | not run | |`);
      continue;
    }
    const met = t.higherIsBetter ? t.measured >= t.goal : t.measured <= t.goal;
    const by = t.higherIsBetter ? t.measured / t.goal : t.goal / t.measured;
    L.push(
      `| ${t.what} | ${t.higherIsBetter ? '≥' : '≤'} ${t.goal}${t.unit} | ${fmt(t.measured, 2)}${t.unit} | ` +
        `${met ? 'met' : `**missed** (${fmt((1 - by) * 100, 0)} % short)`} |`,
    );
  }
  L.push(
    `| no failures at C=64 (tsagent) | 0 | ${c64Cases ? c64Failures : 'not run'} | ${c64Cases ? (c64Failures === 0 ? 'met' : '**missed**') : ''} |`,
  );
  L.push('');
  return L.join('\n') + '\n';
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  if (o.baselineMain) B = 'baseline';
  const t0 = performance.now();
  loadAtStart = os.loadavg();
  if (o.cpuProf) fs.mkdirSync(o.cpuProf, { recursive: true });
  const cases = loadCases(o);
  process.stderr.write(
    `tsagent bench: ${cases.length} cases × 2 agents × ${o.rounds} rounds, ${o.durationMs} ms each\n`,
  );

  // The ceiling: single-core signing in OpenSSL, before anything else runs.
  let speed: Partial<Record<KeyKind, number>> = {};
  if (o.openssl) {
    process.stderr.write('openssl speed (1 s per algorithm and operation)…\n');
    speed = opensslSpeed(KEY_KINDS);
    for (const k of KEY_KINDS)
      process.stderr.write(`  openssl ${k}: ${fmt(speed[k] ?? NaN, 0)} sign/s\n`);
  }

  const keys = await Promise.all(KEY_KINDS.map(generateTestKey));
  const extraKeys = manyEd25519(500 - keys.length);
  const s = newSamples(cases);
  const gen = new LoadGen();
  const evalDir = privateTmpDir('tsagent-bench-eval-');
  const snapDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsagent-bench-build-'));
  if (!o.tsMain) o.tsMain = snapshotTsagent(snapDir);
  let bgPid: number | undefined;
  try {
    bgPid = startBackgroundAgent(evalDir, o.tsMain);
    for (let r = 1; r <= o.rounds; r++) {
      process.stderr.write(
        `round ${r}/${o.rounds} (${fmt((performance.now() - t0) / 1000, 0)} s so far)\n`,
      );
      evalReuse(o, s, evalDir);
      await round(r, o, cases, keys, extraKeys, gen, s);
    }
  } finally {
    gen.close();
    if (bgPid) {
      try {
        process.kill(bgPid, 'SIGTERM');
      } catch {
        // Already gone.
      }
    }
    await sleep(100);
    fs.rmSync(evalDir, { recursive: true, force: true });
    fs.rmSync(snapDir, { recursive: true, force: true });
  }
  const md = report(o, cases, s, speed, (performance.now() - t0) / 1000);
  process.stdout.write('\n' + md);
  fs.writeFileSync(o.out, md);
  if (o.json) fs.writeFileSync(o.json, JSON.stringify({ options: o, speed, samples: s }, null, 1));
  process.stderr.write(`wrote ${o.out}\n`);
}

main().catch((e: Error) => {
  process.stderr.write(`bench: ${e.stack ?? e.message}\n`);
  process.exit(1);
});
