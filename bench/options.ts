// The benchmark's options (listed in run.ts's header), its load cases and the
// samples it collects per agent.

import * as path from 'node:path';
import { AgentName, REPO } from './agent-process';
import type { LoadResult } from './loadgen';
import { KEY_KINDS, KeyKind, OPTIONAL_KEY_KINDS } from './test-keys';

// ---------------------------------------------------------------- options

export interface Options {
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

export function parseOptions(argv: string[]): Options {
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

export interface LoadCase {
  name: string;
  kind: 'sign' | 'list';
  key?: KeyKind;
  concurrency: number;
  /** list cases: identities loaded. */
  identities?: number;
  /** A floor under --duration for slow cases: security keys (a new helper process per signature), ML-DSA (pure JS). */
  minDurationMs?: number;
}

export function loadCases(o: Options): LoadCase[] {
  const cases: LoadCase[] = [];
  for (const key of KEY_KINDS) {
    // --quick keeps concurrency 64 for ed25519 only.
    const cs = o.quick && key !== 'ed25519' ? [1, 8] : [1, 8, 64];
    for (const c of cs)
      cases.push({ name: `sign ${key} C=${c}`, kind: 'sign', key, concurrency: c });
  }
  // Issue 12's types: sign latency at C=1 and throughput at C=8, quick or not.
  for (const key of OPTIONAL_KEY_KINDS)
    for (const c of [1, 8])
      cases.push({
        name: `sign ${key} C=${c}`,
        kind: 'sign',
        key,
        concurrency: c,
        ...(key.startsWith('sk-') || key.startsWith('mldsa') ? { minDurationMs: 1000 } : {}),
      });
  cases.push({ name: 'list 5 keys C=1', kind: 'list', concurrency: 1, identities: 5 });
  cases.push({ name: 'list 500 keys C=1', kind: 'list', concurrency: 1, identities: 500 });
  return o.only ? cases.filter((c) => o.only!.test(c.name)) : cases;
}

// ---------------------------------------------------------------- measurements

export type PerAgent<T> = Record<AgentName, T>;
export const AGENTS: AgentName[] = ['tsagent', 'ssh-agent'];

export interface Samples {
  load: Record<string, PerAgent<LoadResult[]>>;
  readyMs: PerAgent<number[]>;
  idleRssMb: PerAgent<number[]>;
  idleAnonMb: PerAgent<number[]>;
  peakRssMb: PerAgent<number[]>;
  evalMs: number[];
  nodeMs: number[];
  /** Per optional kind, the agents that refused its key, with what they answered. */
  refused: Partial<Record<KeyKind, Partial<PerAgent<string>>>>;
  /** Per optional kind whose key could not be made (a tool missing), why. */
  unavailable: Partial<Record<KeyKind, string>>;
}

export function newSamples(cases: LoadCase[]): Samples {
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
    refused: {},
    unavailable: {},
  };
}
