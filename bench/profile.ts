// Profile tsagent under one load case: start it with `node --cpu-prof`, add the
// bench keys, drive it with the load generator, stop it, and summarise the
// profile (self time per function, and inclusive time of a few entry points).
//
//   node dist/bench/profile.js [--key ed25519|ecdsa-p256|ecdsa-p384|rsa-2048|rsa-4096|list5|list500]
//                              [--c 1] [--seconds 5] [--dir /tmp/tsagent-prof] [--top 25]
//   node dist/bench/profile.js --summarise FILE.cpuprofile [--top 25]
//   node dist/bench/profile.js --startup [--dir …]   (profile `-D -a` until the socket answers)

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MSG } from '../src/agent/protocol';
import { benchEnv, startAgent } from './agent-process';
import {
  LIST_REQUEST,
  ProtocolKeyKind,
  addKeys,
  generateTestKey,
  manyEd25519,
  signRequest,
} from './test-keys';
import { runLoad } from './loadgen';

interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: CpuProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

function shortUrl(url: string): string {
  if (!url) return '';
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) return url.slice(nm + 'node_modules/'.length);
  const d = url.indexOf('/dist/');
  if (d >= 0) return url.slice(d + 1);
  return url.replace(/^file:\/\//, '');
}

/** Text summary: self time per function, inclusive time per function, by file. */
export function summarise(file: string, top = 25): string {
  const p = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const selfUs = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++)
    selfUs.set(p.samples[i], (selfUs.get(p.samples[i]) ?? 0) + (p.timeDeltas[i] ?? 0));
  const total = [...selfUs.values()].reduce((a, b) => a + b, 0);
  const key = (n: CpuProfileNode) =>
    `${n.callFrame.functionName || '(anonymous)'} ${shortUrl(n.callFrame.url)}${n.callFrame.url ? ':' + (n.callFrame.lineNumber + 1) : ''}`;
  const self = new Map<string, number>();
  const incl = new Map<string, number>();
  const byFile = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const n = byId.get(id)!;
    self.set(key(n), (self.get(key(n)) ?? 0) + us);
    const f = shortUrl(n.callFrame.url) || n.callFrame.functionName;
    byFile.set(f, (byFile.get(f) ?? 0) + us);
    // Inclusive: charge every distinct frame on the stack once.
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const k = key(byId.get(cur)!);
      if (seen.has(k)) continue;
      seen.add(k);
      incl.set(k, (incl.get(k) ?? 0) + us);
    }
  }
  const pct = (us: number) => ((us / total) * 100).toFixed(1).padStart(5) + ' %';
  const ms = (us: number) => (us / 1000).toFixed(0).padStart(7) + ' ms';
  const list = (m: Map<string, number>, n: number) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, us]) => `${ms(us)} ${pct(us)}  ${k}`)
      .join('\n');
  return [
    `profile ${file}: ${(total / 1000).toFixed(0)} ms sampled`,
    `\n-- self time, top ${top}`,
    list(self, top),
    `\n-- self time by file`,
    list(byFile, 15),
    `\n-- inclusive time, top ${top}`,
    list(incl, top),
  ].join('\n');
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const arg = (name: string, dflt: string) => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : dflt;
  };
  const top = Number(arg('--top', '25'));
  if (argv.includes('--summarise')) {
    process.stdout.write(summarise(arg('--summarise', ''), top) + '\n');
    return;
  }
  const what = arg('--key', 'ed25519');
  const c = Number(arg('--c', '1'));
  const seconds = Number(arg('--seconds', '5'));
  const dir = path.resolve(arg('--dir', fs.mkdtempSync(path.join(os.tmpdir(), 'tsagent-prof-'))));
  fs.mkdirSync(dir, { recursive: true });
  const run = fs.mkdtempSync(path.join(os.tmpdir(), 'tsagent-prof-run-'));
  fs.chmodSync(run, 0o700);
  const env = benchEnv(run);
  const before = new Set(fs.readdirSync(dir));
  const agent = await startAgent('tsagent', path.join(run, 'agent.sock'), env, [
    '--cpu-prof',
    '--cpu-prof-dir',
    dir,
  ]);
  try {
    process.stderr.write(`tsagent ready in ${agent.readyMs.toFixed(1)} ms\n`);
    if (!argv.includes('--startup')) {
      const kind = (what.startsWith('list') ? 'ed25519' : what) as ProtocolKeyKind;
      const key = await generateTestKey(kind);
      await addKeys(agent.sock, [key]);
      if (what === 'list5') await addKeys(agent.sock, manyEd25519(4), 'more');
      if (what === 'list500') await addKeys(agent.sock, manyEd25519(499), 'more');
      const list = what.startsWith('list');
      const res = await runLoad({
        sock: agent.sock,
        concurrency: c,
        durationMs: seconds * 1000,
        warmupMs: 300,
        request: (list ? LIST_REQUEST : signRequest(key)).toString('base64'),
        expect: list ? MSG.IDENTITIES_ANSWER : MSG.SIGN_RESPONSE,
        agentPid: agent.pid,
      });
      process.stderr.write(`${what} C=${c}: ${JSON.stringify(res)}\n`);
    }
  } finally {
    await agent.stop();
    fs.rmSync(run, { recursive: true, force: true });
  }
  const made = fs.readdirSync(dir).filter((f) => !before.has(f) && f.endsWith('.cpuprofile'));
  for (const f of made) {
    process.stdout.write(summarise(path.join(dir, f), top) + '\n');
    process.stderr.write(`profile: ${path.join(dir, f)}\n`);
  }
}

if (require.main === module)
  main().catch((e: Error) => {
    process.stderr.write(`profile: ${e.stack ?? e.message}\n`);
    process.exit(1);
  });
