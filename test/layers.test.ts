// The tree's shape, kept by the build: which folder of src may import which
// (ssh ← agent, vault ← daemon ← cli; vault never imports agent), no import
// cycle anywhere (type-only imports count: a cycle of types is still a knot to
// untie), and no source file over 400 lines in src or bench.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';

const REPO = path.resolve(__dirname, '..', '..');
const SRC = path.join(REPO, 'src');

/** What each folder of src may import, besides itself. */
const MAY_IMPORT: Record<string, string[]> = {
  ssh: [],
  agent: ['ssh'],
  vault: ['ssh'],
  daemon: ['ssh', 'agent', 'vault'],
  cli: ['ssh', 'agent', 'vault', 'daemon'],
};

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...tsFiles(p));
    else if (e.name.endsWith('.ts')) out.push(p);
  }
  return out;
}

/** Relative module specifiers of a file: static imports, re-exports, import() and require(). */
export function relativeImports(source: string): string[] {
  const specs: string[] = [];
  const patterns = [
    /\b(?:import|export)\s[^'";]*?\bfrom\s*['"]([^'"]+)['"]/g,
    /\bimport\s*['"]([^'"]+)['"]/g,
    /\b(?:import|require)\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
  ];
  for (const re of patterns) for (const m of source.matchAll(re)) specs.push(m[1]);
  return specs.filter((s) => s.startsWith('.'));
}

function resolveImport(from: string, spec: string): string | null {
  const base = path.resolve(path.dirname(from), spec);
  for (const p of [base + '.ts', path.join(base, 'index.ts')]) if (fs.existsSync(p)) return p;
  return null;
}

const layerOf = (file: string): string => path.relative(SRC, file).split(path.sep)[0];

function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const f of tsFiles(SRC)) {
    const deps: string[] = [];
    for (const spec of relativeImports(fs.readFileSync(f, 'utf8'))) {
      const to = resolveImport(f, spec);
      assert.ok(to, `${path.relative(REPO, f)} imports ${spec}, which does not resolve`);
      deps.push(to);
    }
    graph.set(f, deps);
  }
  return graph;
}

/** Every strongly connected component of more than one file, or a file importing itself (Tarjan). */
function cycles(graph: Map<string, string[]>): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || (graph.get(v) ?? []).includes(v)) out.push(scc);
    }
  };
  for (const v of graph.keys()) if (!idx.has(v)) visit(v);
  return out;
}

test('every folder of src is a known layer', () => {
  for (const f of tsFiles(SRC))
    assert.ok(
      layerOf(f) in MAY_IMPORT,
      `${path.relative(REPO, f)} is outside the layers ${Object.keys(MAY_IMPORT).join(', ')}`,
    );
});

test('imports follow the layers: ssh ← agent, vault ← daemon ← cli; vault never imports agent', () => {
  const violations: string[] = [];
  for (const [from, deps] of importGraph()) {
    const a = layerOf(from);
    for (const to of deps) {
      const b = layerOf(to);
      if (b !== a && !MAY_IMPORT[a]?.includes(b))
        violations.push(`${path.relative(REPO, from)} → ${path.relative(REPO, to)}`);
    }
  }
  assert.deepEqual(violations, []);
});

test('no import cycles in src', () => {
  const found = cycles(importGraph()).map((c) => c.map((f) => path.relative(REPO, f)).sort());
  assert.deepEqual(found, []);
});

test('the cycle finder finds a cycle and the layer check sees a violation (self-test)', () => {
  const g = new Map([
    ['a', ['b']],
    ['b', ['c']],
    ['c', ['a']],
    ['d', ['a']],
  ]);
  assert.deepEqual(
    cycles(g).map((c) => c.sort()),
    [['a', 'b', 'c']],
  );
  assert.deepEqual(
    relativeImports(
      "import type { A } from './a';\nexport { b } from '../b';\nimport './c';\nconst d = require('./d');\nimport * as fs from 'node:fs';",
    ).sort(),
    ['../b', './a', './c', './d'],
  );
});

test('no source file in src or bench is over 400 lines', () => {
  const long: string[] = [];
  for (const dir of ['src', 'bench'])
    for (const f of tsFiles(path.join(REPO, dir))) {
      const lines = fs.readFileSync(f, 'utf8').split('\n').length - 1;
      if (lines > 400) long.push(`${path.relative(REPO, f)} (${lines} lines)`);
    }
  assert.deepEqual(long, []);
});

test("src takes Node's modules with `import x = require()`, never `import * as`", () => {
  // With esModuleInterop, `import * as fs` compiles to __importStar, which copies
  // every export of the module as a getter (a closure each): about 0.5 MB of the
  // idle agent's heap for fs, crypto, path, os, net and the rest (bench/memory.ts).
  const star: string[] = [];
  for (const f of tsFiles(SRC))
    for (const m of fs.readFileSync(f, 'utf8').matchAll(/^import \* as \w+ from '(node:[^']+)'/gm))
      star.push(`${path.relative(REPO, f)}: ${m[1]}`);
  assert.deepEqual(star, []);
});
