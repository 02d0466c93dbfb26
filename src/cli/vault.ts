// `tsagent vault …`: manage the encrypted key vault. This file sets up the
// commands and their options (commander) and maps errors to exit codes; the
// handlers are in vault-commands.ts.
import type { Command as CommandType } from 'commander';
import { errorMessage } from '../ssh/error';
import { DEFAULT_KDF } from '../vault/kdf';
import { UsageError } from './errors';
import {
  cmdExportPub,
  cmdGenerate,
  cmdImport,
  cmdInit,
  cmdList,
  cmdPasswd,
  cmdRemove,
  cmdRename,
  cmdVerify,
  Context,
  GlobalOptions,
  makeContext,
} from './vault-commands';
import { cmdSet } from './vault-set';

function parseInteger(flag: string, min = 0) {
  return (value: string): number => {
    if (!/^\d+$/.test(value) || Number(value) < min)
      throw new UsageError(`${flag} needs an integer >= ${min}, not "${value}"`);
    return Number(value);
  };
}

function buildProgram(
  run: (work: (ctx: Context) => Promise<void>, cmd: CommandType) => Promise<void>,
): CommandType {
  const { Command, Option } = require('commander') as typeof import('commander');
  const program = new Command('tsagent vault')
    .description('Manage the encrypted key vault')
    .option(
      '--vault <path>',
      'vault file (default: $TSAGENT_VAULT, else $XDG_DATA_HOME/tsagent/vault)',
    )
    .option(
      '--passphrase-fd <n>',
      'read passphrases from file descriptor N, one line per prompt (vault passphrase first)',
      parseInteger('--passphrase-fd'),
    )
    .showSuggestionAfterError()
    .configureOutput({
      outputError: (str, write) => write(`tsagent vault: ${str.replace(/^error: /, '')}`),
    })
    .exitOverride();
  const kdfOptions = (c: CommandType) =>
    c
      .option(
        '--kdf-memory <KiB>',
        `argon2id memory in KiB (default ${DEFAULT_KDF.memoryKiB})`,
        parseInteger('--kdf-memory', 1),
      )
      .option(
        '--kdf-time <n>',
        `argon2id passes (default ${DEFAULT_KDF.time})`,
        parseInteger('--kdf-time', 1),
      )
      .option(
        '--kdf-parallelism <n>',
        `argon2id lanes (default ${DEFAULT_KDF.parallelism})`,
        parseInteger('--kdf-parallelism', 1),
      );
  const defaultsOptions = (c: CommandType) =>
    c
      .option('--confirm', 'ask for confirmation before each use of the key')
      .option(
        '--lifetime <seconds>',
        'keep the key in the agent only this long after unlocking (e.g. 3600, 1h)',
      );

  kdfOptions(
    program
      .command('init')
      .description(
        'create a new, empty vault (asks the passphrase twice; once from --passphrase-fd)',
      ),
  ).action((opts, cmd) => run((ctx) => cmdInit(ctx, opts), cmd));
  defaultsOptions(
    program
      .command('import')
      .description(
        'import private key files: OpenSSH (security keys too), PEM (PKCS#1/PKCS#8/SEC1), PKCS#12, PuTTY .ppk v2',
      )
      .option(
        '--sk-provider <path>',
        'security keys: the middleware that signs with them (default $SSH_SK_PROVIDER, else internal)',
      )
      .argument('<file...>'),
  ).action((files, opts, cmd) => run((ctx) => cmdImport(ctx, files, opts), cmd));
  defaultsOptions(
    program
      .command('generate')
      .description('create a key inside the vault and print its public key')
      .addOption(
        new Option('-t, --type <type>', 'key type')
          .choices(['ed25519', 'ecdsa', 'rsa', 'mldsa44-ed25519'])
          .makeOptionMandatory(),
      )
      .option(
        '-b, --bits <bits>',
        'key size (ecdsa: 256/384/521, rsa: 1024..16384, default 3072)',
        parseInteger('-b', 1),
      )
      .option('-C, --comment <comment>', 'key comment (default user@host)'),
  ).action((opts, cmd) => run((ctx) => cmdGenerate(ctx, opts), cmd));
  program
    .command('list')
    .description('list the keys: bits, fingerprint, comment, type, defaults')
    .action((_opts, cmd) => run((ctx) => cmdList(ctx), cmd));
  program
    .command('export-pub')
    .description('print one key as an authorized_keys line')
    .argument('<name>', 'comment, fingerprint or unique fingerprint prefix')
    .action((name, _opts, cmd) => run((ctx) => cmdExportPub(ctx, name), cmd));
  program
    .command('remove')
    .description('delete a key from the vault')
    .argument('<name>')
    .action((name, _opts, cmd) => run((ctx) => cmdRemove(ctx, name), cmd));
  program
    .command('rename')
    .description("change a key's comment")
    .argument('<old>')
    .argument('<new>')
    .action((oldName, newName, _opts, cmd) => run((ctx) => cmdRename(ctx, oldName, newName), cmd));
  program
    .command('set')
    .description("change a key's defaults")
    .argument('<name>')
    .option('--confirm', 'ask for confirmation before each use')
    .option('--no-confirm', 'do not ask for confirmation')
    .option('--lifetime <seconds>', 'lifetime after unlocking (seconds, 1h30m, or "none")')
    .option(
      '--allow <hop>',
      'allow use only on this hop (ssh-add -h syntax: host, user@host, from>to); repeatable',
      (v: string, prev: string[] = []) => [...prev, v],
    )
    .option('--clear-allow', 'remove all destination constraints')
    .option('--confirm-forwarded', 'ask for confirmation when used through a forwarded agent')
    .option('--no-confirm-forwarded', 'do not ask for forwarded use (unless --confirm)')
    .option('--local-only', 'neither list nor use the key through a forwarded agent')
    .option('--no-local-only', 'serve the key through forwarded agents too')
    .option(
      '--confirm-window <life>',
      'after a "yes", uses of this key from the same session and for the same destination do not ask again for LIFE (seconds or 5m; 0 = ask every time)',
    )
    .option('--no-confirm-window', "use the agent's --confirm-window for this key again")
    .action((name, opts, cmd) => run((ctx) => cmdSet(ctx, name, opts), cmd));
  kdfOptions(
    program
      .command('passwd')
      .description('change the passphrase and/or the KDF cost (re-encrypts)'),
  ).action((opts, cmd) => run((ctx) => cmdPasswd(ctx, opts), cmd));
  program
    .command('verify')
    .description('check the vault: checksum, passphrase, authentication and every key')
    .action((_opts, cmd) => run((ctx) => cmdVerify(ctx), cmd));
  return program;
}

/** Run `vault <subcommand> …` (a leading "vault" is optional); resolves to the exit code. */
export async function runVault(argv: string[]): Promise<number> {
  const args = argv[0] === 'vault' ? argv.slice(1) : argv;
  const fail = (msg: string, code: number) => {
    process.stderr.write(`tsagent vault: ${msg}\n`);
    return code;
  };
  let exitCode = 0;
  const program = buildProgram(async (work, cmd) => {
    const ctx = makeContext(cmd.optsWithGlobals<GlobalOptions>());
    await work(ctx);
  });
  try {
    if (args.length === 0) {
      process.stderr.write(program.helpInformation());
      return 2;
    }
    await program.parseAsync(args, { from: 'user' });
  } catch (err) {
    const e = err as { code?: string; exitCode?: number; message?: string };
    if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version') return 0;
    // commander has already printed its own usage message
    if (typeof e.code === 'string' && e.code.startsWith('commander.')) return 2;
    // Our errors carry a message that names the file/key/flag and the fix.
    exitCode = fail(errorMessage(err), err instanceof UsageError ? 2 : 1);
  }
  return exitCode;
}
