// `npm run fuzz [-- --count N --seconds S --concurrency C --seed X --socket PATH --pid PID]`
//
// Starts a tsagent (-d, its debug log kept to count internal errors), or uses
// the running one given by --socket/--pid,
// fuzzes it (fuzzer.ts) and prints the figures. Exit status 1 on any problem.
//
// `node --test dist/test/` runs every .js file under dist/test, this one too:
// as a test runner child it does nothing (test/harden-fuzz.test.ts is the test).

import { buildCorpus } from './corpus';
import { fuzzAgent, formatReport, formatSeeds } from './fuzzer';
import { startTsagent } from './agent';

interface Args {
  count: number;
  seconds: number;
  concurrency: number;
  seed: number;
  socket?: string;
  pid?: number;
  verbose: boolean;
}

function parse(argv: string[]): Args {
  const a: Args = {
    count: 200_000,
    seconds: 60,
    concurrency: 16,
    seed: Math.floor(Math.random() * 2 ** 31),
    verbose: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const num = () => {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v) || v < 0) throw new Error(`${flag} needs a number`);
      return v;
    };
    if (flag === '--count') a.count = num();
    else if (flag === '--seconds') a.seconds = num();
    else if (flag === '--concurrency') a.concurrency = Math.max(1, num());
    else if (flag === '--seed') a.seed = num();
    else if (flag === '--socket') a.socket = argv[++i];
    else if (flag === '--pid') a.pid = num();
    else if (flag === '-v' || flag === '--verbose') a.verbose = true;
    else
      throw new Error(
        `usage: fuzz [--count N] [--seconds S] [--concurrency C] [--seed X] [--socket PATH --pid PID] [-v]`,
      );
  }
  if (!!a.socket !== (a.pid !== undefined)) throw new Error('--socket and --pid go together');
  return a;
}

async function main(): Promise<number> {
  const args = parse(process.argv.slice(2));
  const t0 = Date.now();
  const corpus = buildCorpus();
  process.stdout.write(
    `corpus: ${corpus.seeds.length} seeds, ${corpus.baseline.length} baseline keys, ${corpus.fuzzKeys.length} fuzz keys (built in ${Date.now() - t0} ms)\n`,
  );
  const agent = args.socket ? undefined : await startTsagent({ debug: true });
  const sock = args.socket ?? agent!.sock;
  const pid = args.pid ?? agent!.pid;
  try {
    const report = await fuzzAgent({
      sock,
      pid,
      ownerLocks: agent ? () => agent.output().stderr.split('keys dropped').length - 1 : undefined,
      count: args.count,
      seconds: args.seconds,
      concurrency: args.concurrency,
      seed: args.seed,
      corpus,
      log: (m) => process.stderr.write(`fuzz: ${m}\n`),
    });
    process.stdout.write(formatReport(report) + '\n');
    if (args.verbose) process.stdout.write(`by corpus seed:\n${formatSeeds(report)}\n`);
    let problems = report.problems.length;
    if (agent) {
      const log = agent.output().stderr;
      const internal = log.split('\n').filter((l) => /internal error/.test(l));
      process.stdout.write(`agent log: ${internal.length} internal errors\n`);
      for (const l of [...new Set(internal.map((l) => l.replace(/^tsagent\[\d+\]: /, '')))].slice(
        0,
        10,
      ))
        process.stdout.write(`  ${l}\n`);
      problems += internal.length;
    }
    return problems > 0 ? 1 : 0;
  } finally {
    await agent?.stop();
  }
}

if (require.main === module && !process.env.NODE_TEST_CONTEXT) {
  main().then(
    (code) => process.exit(code),
    (e) => {
      process.stderr.write(`fuzz: ${(e as Error).stack ?? e}\n`);
      process.exit(2);
    },
  );
}
