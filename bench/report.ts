// The benchmark's report: openssl's single-core ceiling, and the markdown
// table of medians and ratios written to bench/results.md.

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import type { LoadResult } from './loadgen';
import { LoadCase, Options, Samples } from './options';
import { median } from './proc-stats';
import { KEY_KINDS, KeyKind } from './test-keys';

// ---------------------------------------------------------------- openssl speed

const OPENSSL_NAMES: Record<KeyKind, string> = {
  ed25519: 'ed25519',
  'ecdsa-p256': 'ecdsap256',
  'ecdsa-p384': 'ecdsap384',
  'rsa-2048': 'rsa2048',
  'rsa-4096': 'rsa4096',
};

export function opensslSpeed(kinds: KeyKind[]): Partial<Record<KeyKind, number>> {
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
  const med = (rs: LoadResult[], f: (r: LoadResult) => number) => median(rs.map(f));
  const usPerOp = (r: LoadResult) => (r.agentCpuPct * 10_000) / r.opsPerSec;
  L.push(
    o.baselineMain ? `# tsagent vs baseline ${o.baselineMain}` : '# tsagent vs OpenSSH ssh-agent',
  );
  L.push('');
  L.push(machine(loadAtStart));
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
