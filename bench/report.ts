// The benchmark's report: openssl's single-core ceiling, and the markdown
// table of medians and ratios written to bench/results.md.

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import type { LoadResult } from './loadgen';
import type { AgentName } from './agent-process';
import { AGENTS, LoadCase, Options, PerAgent, Samples } from './options';
import { median } from './proc-stats';
import { KEY_KINDS, KeyKind } from './test-keys';

// ---------------------------------------------------------------- openssl speed

// Per kind, `openssl speed`'s name for the algorithm and its summary line:
// "<what>  <s/sign>  <s/verify>  <sign/s>  <verify/s>". A PKCS#11 key's ceiling
// is the algorithm's (SoftHSM2 signs with OpenSSL); security keys and ML-DSA have none.
const OPENSSL: Partial<Record<KeyKind, [string, RegExp]>> = {
  ed25519: ['ed25519', /EdDSA \(Ed25519\)\s+\S+s\s+\S+s\s+([\d.]+)/],
  'ecdsa-p256': ['ecdsap256', /ecdsa \(nistp256\)\s+\S+s\s+\S+s\s+([\d.]+)/],
  'ecdsa-p384': ['ecdsap384', /ecdsa \(nistp384\)\s+\S+s\s+\S+s\s+([\d.]+)/],
  'rsa-2048': ['rsa2048', /^\s*rsa\s+2048 bits\s+\S+s\s+\S+s\s+([\d.]+)/m],
  'rsa-4096': ['rsa4096', /^\s*rsa\s+4096 bits\s+\S+s\s+\S+s\s+([\d.]+)/m],
  'dsa-1024': ['dsa1024', /^\s*dsa\s+1024 bits\s+\S+s\s+\S+s\s+([\d.]+)/m],
  'pkcs11-rsa-2048': ['rsa2048', /^\s*rsa\s+2048 bits\s+\S+s\s+\S+s\s+([\d.]+)/m],
  'pkcs11-ecdsa-p256': ['ecdsap256', /ecdsa \(nistp256\)\s+\S+s\s+\S+s\s+([\d.]+)/],
};

export function opensslSpeed(kinds: KeyKind[]): Partial<Record<KeyKind, number>> {
  const names = new Set(kinds.flatMap((k) => (OPENSSL[k] ? [OPENSSL[k]![0]] : [])));
  const r = spawnSync('openssl', ['speed', '-seconds', '1', ...names], { encoding: 'utf8' });
  const out = r.stdout ?? '';
  const res: Partial<Record<KeyKind, number>> = {};
  for (const k of kinds) {
    const m = OPENSSL[k] && OPENSSL[k]![1].exec(out);
    if (m) res[k] = Number(m[1]);
  }
  return res;
}

// ---------------------------------------------------------------- report

/** What the report calls agent B: OpenSSH's agent, or a baseline tsagent build. */
export const agentBName = (o: Options): string => (o.baselineMain ? 'baseline' : 'ssh-agent');

export function fmt(x: number, digits = 1): string {
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

function machine(loadAtStart: number[]): string {
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

/** Why an agent has no figures for a case: the key was never made, or the agent refused it. */
function missing(c: LoadCase, s: Samples, agent: AgentName, label: string): string | undefined {
  if (!c.key) return undefined;
  if (s.unavailable[c.key]) return 'not run (no key)';
  if (s.refused[c.key]?.[agent]) return `not supported by ${label}`;
  return undefined;
}

/** One row of the throughput table; an agent without figures has "not supported by …" instead. */
function loadRow(
  c: LoadCase,
  s: Samples,
  speed: Partial<Record<KeyKind, number>>,
  B: string,
): string {
  const rs = s.load[c.name];
  const why: PerAgent<string | undefined> = {
    tsagent: missing(c, s, 'tsagent', 'tsagent'),
    'ssh-agent': missing(c, s, 'ssh-agent', B),
  };
  const med = (a: AgentName, f: (r: LoadResult) => number) => median(rs[a].map(f));
  const one = (a: AgentName, text: () => string) => why[a] ?? text();
  const pair = (text: (a: AgentName) => string) =>
    AGENTS.map((a) => (why[a] ? '—' : text(a))).join(' / ');
  const both = !why.tsagent && !why['ssh-agent'];
  const ratio = (f: (r: LoadResult) => number) =>
    fmt(ratioMedian(rs.tsagent.map(f), rs['ssh-agent'].map(f)), 2);
  const ops = (r: LoadResult) => r.opsPerSec;
  const latency = (a: AgentName) =>
    `${fmt(
      med(a, (r) => r.p50Ms),
      3,
    )} / ${fmt(
      med(a, (r) => r.p99Ms),
      3,
    )}`;
  const fails = (a: AgentName) => `${rs[a].reduce((n, r) => n + r.failures + r.connErrors, 0)}`;
  const usPerOp = (r: LoadResult) => (r.agentCpuPct * 10_000) / r.opsPerSec;
  const cpu = (f: (r: LoadResult) => number) => pair((a) => fmt(med(a, f), 0));
  return (
    `| ${c.name} | ${one('tsagent', () => fmt(med('tsagent', ops), 0))} | ` +
    `${one('ssh-agent', () => fmt(med('ssh-agent', ops), 0))} | ` +
    `${both ? `**${ratio(ops)}**` : '—'} | ` +
    `${one('tsagent', () => latency('tsagent'))} | ${one('ssh-agent', () => latency('ssh-agent'))} | ` +
    `${both ? ratio((r) => r.p99Ms) : '—'} | ${pair(fails)} | ${cpu(usPerOp)} | ` +
    `${cpu((r) => r.agentCpuPct)} | ${cpu((r) => r.genCpuPct)} | ${cpu((r) => r.otherCpuPct)} | ` +
    `${c.key && speed[c.key] ? fmt(speed[c.key]!, 0) : ''} |`
  );
}

/** Under the table: per key kind without figures, what the agent (or ssh-add) said, or why no key. */
function missingNotes(cases: LoadCase[], s: Samples, B: string): string[] {
  const out: string[] = [];
  for (const kind of new Set(cases.flatMap((c) => (c.key ? [c.key] : [])))) {
    if (s.unavailable[kind]) out.push(`- ${kind}: not run, no key: ${s.unavailable[kind]}`);
    for (const a of AGENTS) {
      const said = s.refused[kind]?.[a];
      if (said) out.push(`- ${kind}: not supported by ${a === 'tsagent' ? a : B} (${said})`);
    }
  }
  return out.length ? ['', ...out] : [];
}

interface Target {
  what: string;
  measured: number;
  goal: number;
  higherIsBetter: boolean;
  unit: string;
}

export function report(
  o: Options,
  cases: LoadCase[],
  s: Samples,
  speed: Partial<Record<KeyKind, number>>,
  elapsedS: number,
  loadAtStart: number[],
): string {
  const B = agentBName(o);
  const L: string[] = [];
  L.push(
    o.baselineMain ? `# tsagent vs baseline ${o.baselineMain}` : '# tsagent vs OpenSSH ssh-agent',
  );
  L.push('');
  L.push(machine(loadAtStart));
  const floor = Math.max(0, ...cases.map((c) => c.minDurationMs ?? 0));
  const floored = [
    ...new Set(cases.filter((c) => (c.minDurationMs ?? 0) > o.durationMs).map((c) => c.key)),
  ];
  L.push(
    `- Run: \`npm run bench${o.quick ? ' -- --quick' : ''}\`, ${o.rounds} rounds, ` +
      `${o.durationMs} ms per case and agent` +
      (floored.length ? ` (${floored.join(', ')}: ${floor} ms)` : '') +
      ` after ${o.warmupMs} ms warm-up, ` +
      `A B A B interleaved; ${fmt(elapsedS, 0)} s in all`,
  );
  L.push('');
  L.push(
    'Figures are medians over rounds; a ratio is the median of the per-round ratios ' +
      `tsagent/${B} (throughput: higher is better; latency, time, memory: lower is better). ` +
      'CPU is % of one core over the measured window: the agent (all threads, and its helper processes ' +
      'such as ssh-sk-helper and ssh-pkcs11-helper, /proc/PID/stat) ' +
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
  for (const c of cases) L.push(loadRow(c, s, speed, B));
  L.push(...missingNotes(cases, s, B));
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
