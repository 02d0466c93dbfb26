// /proc accounting (CPU time of a process and of the machine, memory) and the
// statistics the benchmark reports. Nothing here depends on how tsagent works.

import * as fs from 'node:fs';

let clkTck: number | undefined;
/** USER_HZ: /proc/PID/stat's unit for utime and stime. */
export function clockTicks(): number {
  if (clkTck === undefined) {
    try {
      clkTck =
        Number(require('node:child_process').execFileSync('getconf', ['CLK_TCK']).toString()) ||
        100;
    } catch {
      clkTck = 100;
    }
  }
  return clkTck;
}

/** /proc/PID/stat's fields after "(comm)": state is f[0], utime (field 14) f[11], cutime f[13]. */
function statFields(pid: number | string): string[] {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** The live children of a process: /proc/PID/task/TID/children of each of its threads. */
function childPids(pid: number): string[] {
  const out: string[] = [];
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      out.push(...fs.readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(' '));
    } catch {
      // Thread gone meanwhile.
    }
  }
  return out.filter((c) => c !== '' && c !== '\n');
}

/**
 * CPU time (user + system) in ms of a process with its helpers: its own (all
 * threads), its reaped children's (cutime, cstime: a security key's
 * ssh-sk-helper per signature) and its live children's (a PKCS#11 provider's
 * ssh-pkcs11-helper), from /proc.
 */
export function procCpuMs(pid: number): number {
  const ticks = (f: string[]) => Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
  let total = ticks(statFields(pid));
  for (const child of childPids(pid)) {
    try {
      total += ticks(statFields(child.trim()));
    } catch {
      // Reaped meanwhile: now in the parent's cutime.
    }
  }
  return (total * 1000) / clockTicks();
}

/** Busy CPU time of the whole machine (all cores) in ms, from /proc/stat. */
export function machineBusyMs(): number {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n', 1)[0];
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is inside user).
  const busy = f[0] + f[1] + f[2] + f[5] + f[6] + f[7];
  return (busy * 1000) / clockTicks();
}

/**
 * VmRSS, VmHWM (peak RSS) and RssAnon (private memory: VmRSS less the mapped
 * files such as the node binary, shared by every node process) in MB.
 */
export function procRss(pid: number): { rssMb: number; hwmMb: number; anonMb: number } {
  const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s)?.[1] ?? NaN);
  return { rssMb: kb('VmRSS') / 1024, hwmMb: kb('VmHWM') / 1024, anonMb: kb('RssAnon') / 1024 };
}

export function median(xs: number[]): number {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

/** The q-quantile of an ascending sorted array (nearest rank). */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}
