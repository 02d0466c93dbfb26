// `npm run bench [-- --quick]`: tsagent against OpenSSH's ssh-agent, side by
// side and interleaved (A B A B … for every case, in every round), on the
// same machine. Prints a markdown table of medians and tsagent/ssh-agent
// ratios and writes it to bench/results.md, with the memory figures of
// bench/memory.ts (idle, loaded, high-water RSS beside Node's floor) after.
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
import { AgentName, AgentProcess, TSAGENT_MAIN, REPO, benchEnv, startAgent } from './agent-process';
import type { LoadJob, LoadResult } from './loadgen';
import { MemoryRun, measureMemoryRuns, memorySection } from './memory';
import {
  AGENTS,
  LoadCase,
  Options,
  PerAgent,
  Samples,
  loadCases,
  newSamples,
  parseOptions,
} from './options';
import { procRss } from './proc-stats';
import { agentBName, fmt, opensslSpeed, report } from './report';
import { SshAddKeys, isSshAddKind } from './ssh-add-keys';
import {
  KEY_KINDS,
  KeyKind,
  OptionalKeyKind,
  SignKey,
  TestKey,
  addKeys,
  generateTestKey,
  isOptionalKind,
  listedBlobs,
  manyEd25519,
  removeAllKeys,
  signRequest,
  tryAddKeys,
  LIST_REQUEST,
} from './test-keys';

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

/** The keys of a run: made once, loaded into each round's agents. */
interface BenchKeys {
  /** The base kinds, loaded at the start of a round. */
  base: TestKey[];
  /** ed25519 keys that make up the 500 of the list case. */
  extra: TestKey[];
  /** Optional kinds added over the protocol (ssh-dss, ML-DSA), before their cases. */
  optional: TestKey[];
  /** Optional kinds that OpenSSH's ssh-add loads (security keys, PKCS#11). */
  sshAdd: SshAddKeys;
}

/**
 * Offer the optional keys to every agent; a key an agent does not list
 * afterwards is recorded as refused by it, with what it (or ssh-add) said.
 */
async function addOptionalKeys(agents: PerAgent<AgentProcess>, k: BenchKeys, s: Samples) {
  for (const name of AGENTS) {
    const sock = agents[name].sock;
    const why = new Map([...(await tryAddKeys(sock, k.optional)), ...k.sshAdd.add(sock)]);
    const listed = await listedBlobs(sock);
    for (const key of [...k.optional, ...k.sshAdd.keys]) {
      if (listed.some((b) => b.equals(key.publicBlob))) continue;
      (s.refused[key.kind] ??= {})[name] = why.get(key.kind) ?? 'added, but not listed';
    }
  }
}

async function round(
  r: number,
  o: Options,
  cases: LoadCase[],
  k: BenchKeys,
  gen: LoadGen,
  s: Samples,
): Promise<void> {
  const B = agentBName(o);
  const dir = privateTmpDir('tsagent-bench-');
  const env = { ...agentEnv(dir), ...k.sshAdd.agentEnv };
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
    for (const name of AGENTS) await addKeys(agents[name].sock, k.base);
    await sleep(200);
    for (const name of AGENTS) {
      const m = procRss(agents[name].pid);
      s.idleRssMb[name].push(m.rssMb);
      s.idleAnonMb[name].push(m.anonMb);
    }

    let extraAdded = false;
    let optionalAdded = false;
    const signKeys: SignKey[] = [...k.base, ...k.optional, ...k.sshAdd.keys];
    for (const c of cases) {
      if (c.kind === 'sign' && isOptionalKind(c.key!) && !optionalAdded) {
        await addOptionalKeys(agents, k, s);
        optionalAdded = true;
      }
      if (c.kind === 'list' && optionalAdded) {
        // The list cases see the base keys (and the extra ones) only.
        for (const name of AGENTS) {
          await removeAllKeys(agents[name].sock);
          await addKeys(agents[name].sock, k.base);
        }
        optionalAdded = false;
      }
      if (c.kind === 'list' && c.identities! > k.base.length && !extraAdded) {
        for (const name of AGENTS) await addKeys(agents[name].sock, k.extra, 'extra');
        extraAdded = true;
      }
      const key = c.kind === 'sign' ? signKeys.find((x) => x.kind === c.key) : undefined;
      if (c.kind === 'sign' && !key) {
        process.stderr.write(
          `  round ${r} ${c.name.padEnd(22)} not run: ${s.unavailable[c.key!]}\n`,
        );
        continue;
      }
      const request = key ? signRequest(key) : LIST_REQUEST;
      const refused = c.key ? s.refused[c.key] : undefined;
      if (refused?.tsagent && refused['ssh-agent']) {
        process.stderr.write(`  round ${r} ${c.name.padEnd(22)} not supported by either agent\n`);
        continue;
      }
      for (const name of AGENTS) {
        if (refused?.[name]) continue;
        const res = await gen.run({
          sock: agents[name].sock,
          concurrency: c.concurrency,
          durationMs: Math.max(o.durationMs, c.minDurationMs ?? 0),
          warmupMs: o.warmupMs,
          request: request.toString('base64'),
          expect: c.kind === 'sign' ? MSG.SIGN_RESPONSE : MSG.IDENTITIES_ANSWER,
          agentPid: agents[name].pid,
        });
        s.load[c.name][name].push(res);
      }
      if (refused) {
        const [name] = AGENTS.filter((n) => !refused[n]);
        const other = name === 'tsagent' ? B : 'tsagent';
        const res = s.load[c.name][name].at(-1)!;
        process.stderr.write(
          `  round ${r} ${c.name.padEnd(22)} ${name === 'tsagent' ? 'tsagent' : B} ` +
            `${fmt(res.opsPerSec, 0).padStart(7)}/s  (not supported by ${other})\n`,
        );
        continue;
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

/** The optional kinds added over the protocol; a kind that cannot be made goes to s.unavailable. */
async function makeOptionalKeys(kinds: OptionalKeyKind[], s: Samples): Promise<TestKey[]> {
  const out: TestKey[] = [];
  for (const kind of kinds) {
    if (kind !== 'dsa-1024' && kind !== 'mldsa44-ed25519') continue;
    try {
      out.push(await generateTestKey(kind));
    } catch (e) {
      s.unavailable[kind] = (e as Error).message.split('\n')[0];
    }
  }
  return out;
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  const t0 = performance.now();
  const loadAtStart = os.loadavg();
  if (o.cpuProf) fs.mkdirSync(o.cpuProf, { recursive: true });
  const cases = loadCases(o);
  process.stderr.write(
    `tsagent bench: ${cases.length} cases × 2 agents × ${o.rounds} rounds, ${o.durationMs} ms each\n`,
  );

  const optionalKinds = [
    ...new Set(cases.flatMap((c) => (c.key && isOptionalKind(c.key) ? [c.key] : []))),
  ];
  // The ceiling: single-core signing in OpenSSL, before anything else runs.
  let speed: Partial<Record<KeyKind, number>> = {};
  if (o.openssl) {
    process.stderr.write('openssl speed (1 s per algorithm and operation)…\n');
    const kinds = [...KEY_KINDS, ...optionalKinds];
    speed = opensslSpeed(kinds);
    for (const k of kinds.filter((x) => speed[x] !== undefined))
      process.stderr.write(`  openssl ${k}: ${fmt(speed[k]!, 0)} sign/s\n`);
  }

  const s = newSamples(cases);
  const base = await Promise.all(KEY_KINDS.map(generateTestKey));
  const k: BenchKeys = {
    base,
    extra: manyEd25519(500 - base.length),
    optional: await makeOptionalKeys(optionalKinds, s),
    sshAdd: new SshAddKeys(optionalKinds.filter(isSshAddKind)),
  };
  for (const [kind, why] of k.sshAdd.unavailable) s.unavailable[kind] = why;
  for (const [kind, why] of Object.entries(s.unavailable))
    process.stderr.write(`  no ${kind} key: ${why}\n`);
  const gen = new LoadGen();
  const evalDir = privateTmpDir('tsagent-bench-eval-');
  const snapDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsagent-bench-build-'));
  if (!o.tsMain) o.tsMain = snapshotTsagent(snapDir);
  let bgPid: number | undefined;
  let memory: MemoryRun[] = [];
  try {
    bgPid = startBackgroundAgent(evalDir, o.tsMain);
    for (let r = 1; r <= o.rounds; r++) {
      process.stderr.write(
        `round ${r}/${o.rounds} (${fmt((performance.now() - t0) / 1000, 0)} s so far)\n`,
      );
      evalReuse(o, s, evalDir);
      await round(r, o, cases, k, gen, s);
    }
    process.stderr.write('memory: idle, loaded and high-water RSS beside node -e\n');
    memory = await measureMemoryRuns(o.quick ? 1 : 3, { main: o.tsMain });
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
    k.sshAdd.close();
  }
  const md =
    report(o, cases, s, speed, (performance.now() - t0) / 1000, loadAtStart) +
    '\n' +
    memorySection(memory);
  process.stdout.write('\n' + md);
  fs.writeFileSync(o.out, md);
  if (o.json) fs.writeFileSync(o.json, JSON.stringify({ options: o, speed, samples: s }, null, 1));
  process.stderr.write(`wrote ${o.out}\n`);
}

main().catch((e: Error) => {
  process.stderr.write(`bench: ${e.stack ?? e.message}\n`);
  process.exit(1);
});
