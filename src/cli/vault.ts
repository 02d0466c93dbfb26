// `tsagent vault …`: manage the encrypted key vault. Logic lives in src/vault;
// this file only parses arguments, asks passphrases and prints results.
// Data (public keys, listings) goes to stdout; status and errors to stderr.
import { parseLifetime as parseAgentLifetime } from './options';
import * as fs from 'node:fs';
import * as os from 'node:os';
import type { Command as CommandType } from 'commander';
import { DEFAULT_KDF, KdfParams, kdfParamsProblem } from '../vault/kdf';
import { FORMAT_VERSION, VaultError, VaultIdentity } from '../vault/format';
import { ImportedKey, KeyFileError, parseKeyFile } from '../vault/keyfile';
import {
  authorizedKeysLine,
  checkGenerateBits,
  fingerprint,
  generateKey,
  GenerateType,
  KeyFormatError,
  keyBits,
  keyLabel,
  toPrivateKeyObject,
} from '../vault/sshkey';
import { resolveVaultPath } from '../vault/paths';
import { VaultFile } from '../vault/store';
import type { UnlockedVault } from '../vault/unlocked';
import { PassphraseReader, withProgress } from './passphrase';

/** Bad arguments: exit code 2. */
class UsageError extends Error {}

/** Anything else the user must fix (mismatched passphrases …): exit code 1. */
class CliError extends Error {}

interface GlobalOptions {
  vault?: string;
  passphraseFd?: number;
}

interface Context {
  file: VaultFile;
  pass: PassphraseReader;
  out: (line: string) => void;
  note: (line: string) => void;
}

function makeContext(opts: GlobalOptions): Context {
  return {
    file: new VaultFile(resolveVaultPath(opts.vault)),
    pass: new PassphraseReader({ fd: opts.passphraseFd }),
    out: (line) => process.stdout.write(line + '\n'),
    note: (line) => process.stderr.write(line + '\n'),
  };
}

function parseInteger(flag: string, min = 0) {
  return (value: string): number => {
    if (!/^\d+$/.test(value) || Number(value) < min)
      throw new UsageError(`${flag} needs an integer >= ${min}, not "${value}"`);
    return Number(value);
  };
}

/** SECONDS, an ssh-style time (90m, 1h30m, 2d) or "none". */
export function parseLifetime(value: string): number | null {
  if (value === 'none') return null;
  const seconds = parseAgentLifetime(value);
  if (!seconds)
    throw new UsageError(
      `--lifetime needs seconds (e.g. 3600), a time like 1h30m, or "none"; not "${value}"`,
    );
  return seconds;
}

function formatLifetime(seconds: number): string {
  return `${seconds}s`;
}

function kdfFrom(
  opts: { kdfMemory?: number; kdfTime?: number; kdfParallelism?: number },
  base: KdfParams,
): KdfParams {
  const kdf = {
    memoryKiB: opts.kdfMemory ?? base.memoryKiB,
    time: opts.kdfTime ?? base.time,
    parallelism: opts.kdfParallelism ?? base.parallelism,
  };
  const problem = kdfParamsProblem(kdf);
  if (problem) throw new UsageError(`${problem} (--kdf-memory is in KiB)`);
  return kdf;
}

const describeKdf = (k: KdfParams) =>
  `argon2id, ${k.memoryKiB} KiB, t=${k.time}, p=${k.parallelism}`;

async function askNewPassphrase(ctx: Context, what: string): Promise<Buffer> {
  const first = await ctx.pass.ask(`Enter new passphrase for the vault: `);
  const second = await ctx.pass.ask('Enter the same passphrase again: ');
  try {
    if (!first.equals(second)) throw new CliError(`the passphrases do not match; ${what}`);
    if (first.length === 0)
      throw new CliError(`an empty passphrase would leave the keys unprotected; ${what}`);
    return first;
  } finally {
    second.fill(0);
  }
}

async function unlock(
  ctx: Context,
  prompt = 'Enter passphrase for the vault: ',
): Promise<UnlockedVault> {
  ctx.file.checkIntegrity(); // damage and permission problems surface before any prompt
  const passphrase = await ctx.pass.ask(prompt);
  try {
    return await withProgress('deriving key', ctx.file.unlock(passphrase));
  } finally {
    passphrase.fill(0);
  }
}

function describeIdentity(id: VaultIdentity): string {
  const defaults = [
    id.confirm ? '[confirm]' : '',
    id.confirmForwarded ? '[confirm-forwarded]' : '',
    id.lifetime ? `[lifetime ${formatLifetime(id.lifetime)}]` : '',
    id.allow?.length ? `[allow ${id.allow.join(',')}]` : '',
  ]
    .filter(Boolean)
    .join(' ');
  return `${keyBits(id)} ${fingerprint(id.publicBlob)} ${id.comment || '(no comment)'} (${keyLabel(id.keyType)})${defaults ? ' ' + defaults : ''}`;
}

// ---- subcommands ----------------------------------------------------------

async function cmdInit(
  ctx: Context,
  opts: { kdfMemory?: number; kdfTime?: number; kdfParallelism?: number },
) {
  const kdf = kdfFrom(opts, DEFAULT_KDF);
  if (ctx.file.exists())
    throw new VaultError(
      'EXISTS',
      `a vault already exists at ${ctx.file.path}; not overwriting it`,
    );
  if (fs.existsSync(ctx.file.dir)) ctx.file.checkDirectory();
  const passphrase = await askNewPassphrase(ctx, 'the vault was not created');
  try {
    await withProgress('deriving key', ctx.file.create(passphrase, kdf));
  } finally {
    passphrase.fill(0);
  }
  ctx.note(`Created vault ${ctx.file.path} (${describeKdf(kdf)}).`);
}

async function cmdImport(
  ctx: Context,
  files: string[],
  opts: { confirm?: boolean; lifetime?: string },
) {
  const lifetime = opts.lifetime === undefined ? undefined : parseLifetime(opts.lifetime);
  // Read and classify every file first, so a bad path fails before any prompt.
  const pending: { file: string; data: Buffer; key?: ImportedKey }[] = [];
  for (const file of files) {
    let data: Buffer;
    try {
      data = fs.readFileSync(file);
    } catch (err) {
      throw new KeyFileError('NOT_A_KEY', `cannot read ${file}: ${(err as Error).message}`);
    }
    try {
      pending.push({ file, data, key: parseKeyFile(data, { defaultComment: file }) });
    } catch (err) {
      if (err instanceof KeyFileError && err.code === 'NEEDS_PASSPHRASE')
        pending.push({ file, data });
      else throw withFile(err, file);
    }
  }
  const vault = await unlock(ctx);
  try {
    const keys: ImportedKey[] = [];
    for (const p of pending) {
      if (p.key) {
        keys.push(p.key);
        continue;
      }
      const passphrase = await ctx.pass.ask(`Enter passphrase for ${p.file}: `);
      try {
        keys.push(parseKeyFile(p.data, { defaultComment: p.file, passphrase }));
      } catch (err) {
        throw withFile(err, p.file, '; nothing was imported');
      } finally {
        passphrase.fill(0);
      }
    }
    const { added, skipped } = vault.add(keys, { confirm: opts.confirm, lifetime });
    for (const s of skipped)
      ctx.note(
        `Already in the vault: ${s.key.comment} (${fingerprint(s.key.publicBlob)}) as "${s.existing.comment}"`,
      );
    for (const id of added)
      ctx.note(`Identity added: ${id.comment} (${fingerprint(id.publicBlob)})`);
  } finally {
    vault.lock();
  }
}

function withFile(err: unknown, file: string, suffix = ''): unknown {
  if (err instanceof KeyFileError)
    return new KeyFileError(err.code, `${file}: ${err.message}${suffix}`);
  return err;
}

async function cmdGenerate(
  ctx: Context,
  opts: { type: string; bits?: number; comment?: string; confirm?: boolean; lifetime?: string },
) {
  if (!['ed25519', 'ecdsa', 'rsa'].includes(opts.type))
    throw new UsageError(`unknown key type "${opts.type}": use -t ed25519, ecdsa or rsa`);
  const type = opts.type as GenerateType;
  try {
    checkGenerateBits(type, opts.bits);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const lifetime = opts.lifetime === undefined ? undefined : parseLifetime(opts.lifetime);
  const comment = opts.comment ?? `${os.userInfo().username}@${os.hostname()}`;
  const vault = await unlock(ctx);
  try {
    const key = await withProgress('generating key', generateKey(type, opts.bits, comment));
    const { added } = vault.add([key], { confirm: opts.confirm, lifetime });
    ctx.note(
      `Generated ${keyLabel(key.keyType)} key ${fingerprint(added[0].publicBlob)} in ${ctx.file.path}`,
    );
    ctx.out(authorizedKeysLine(key));
  } finally {
    vault.lock();
  }
}

async function cmdList(ctx: Context) {
  const vault = await unlock(ctx);
  try {
    if (vault.identities.length === 0) ctx.out(`The vault ${ctx.file.path} has no identities.`);
    for (const id of vault.identities) ctx.out(describeIdentity(id));
  } finally {
    vault.lock();
  }
}

async function cmdExportPub(ctx: Context, name: string) {
  const vault = await unlock(ctx);
  try {
    ctx.out(authorizedKeysLine(vault.find(name)));
  } finally {
    vault.lock();
  }
}

async function cmdRemove(ctx: Context, name: string) {
  const vault = await unlock(ctx);
  try {
    const gone = vault.remove(name);
    ctx.note(`Identity removed: ${gone.comment} (${fingerprint(gone.publicBlob)})`);
  } finally {
    vault.lock();
  }
}

async function cmdRename(ctx: Context, oldName: string, newName: string) {
  const vault = await unlock(ctx);
  try {
    const renamed = vault.rename(oldName, newName);
    ctx.note(`Renamed ${fingerprint(renamed.publicBlob)} to "${renamed.comment}"`);
  } finally {
    vault.lock();
  }
}

async function cmdSet(
  ctx: Context,
  name: string,
  opts: {
    confirm?: boolean;
    lifetime?: string;
    allow?: string[];
    clearAllow?: boolean;
    confirmForwarded?: boolean;
  },
) {
  if (
    opts.confirm === undefined &&
    opts.lifetime === undefined &&
    opts.allow === undefined &&
    !opts.clearAllow &&
    opts.confirmForwarded === undefined
  )
    throw new UsageError(
      'nothing to set: give --confirm, --no-confirm, --lifetime SECONDS|none, --allow HOP, --clear-allow or --[no-]confirm-forwarded',
    );
  const lifetime = opts.lifetime === undefined ? undefined : parseLifetime(opts.lifetime);
  if (opts.allow) checkAllow(ctx, opts.allow);
  const vault = await unlock(ctx);
  try {
    // --clear-allow with --allow replaces the list; alone, it empties it.
    const allow = opts.clearAllow && !opts.allow?.length ? null : opts.allow;
    ctx.note(
      describeIdentity(
        vault.update(name, {
          confirm: opts.confirm,
          lifetime,
          allow,
          clearAllow: opts.clearAllow,
          confirmForwarded: opts.confirmForwarded,
        }),
      ),
    );
  } finally {
    vault.lock();
  }
}

/** Check --allow specs; warn about hosts the agent will not find in known_hosts. */
function checkAllow(ctx: Context, specs: string[]): void {
  const { destinationsFromSpecs } =
    require('../agent/destination') as typeof import('../agent/destination');
  const { readKnownHosts, keysForHost } =
    require('../agent/known-hosts') as typeof import('../agent/known-hosts');
  const known = readKnownHosts();
  try {
    const unknown = new Set<string>();
    const lookup = (h: string) =>
      keysForHost(known, h).map((k) => ({ key: k.keyBlob, isCA: k.isCA }));
    for (const d of destinationsFromSpecs(specs, lookup))
      for (const hop of [d.from, d.to])
        if (hop.hostname && hop.keys.length === 0) unknown.add(hop.hostname);
    for (const h of unknown)
      ctx.note(
        `warning: ${h} is not in your known_hosts: the key cannot be used there until you have connected to it once`,
      );
  } catch (e) {
    throw new UsageError(`--allow: ${(e as Error).message}`);
  }
}

async function cmdPasswd(
  ctx: Context,
  opts: { kdfMemory?: number; kdfTime?: number; kdfParallelism?: number },
) {
  kdfFrom(opts, DEFAULT_KDF); // reject bad flags before prompting
  const vault = await unlock(ctx, 'Enter current passphrase for the vault: ');
  try {
    const kdf = kdfFrom(opts, vault.kdf);
    const passphrase = await askNewPassphrase(ctx, 'the passphrase was not changed');
    try {
      await withProgress('deriving key', vault.changePassphrase(passphrase, kdf));
    } finally {
      passphrase.fill(0);
    }
    ctx.note(
      `Passphrase changed for ${ctx.file.path} (${describeKdf(kdf)}); the previous version is in ${ctx.file.backupPath}.`,
    );
  } finally {
    vault.lock();
  }
}

async function cmdVerify(ctx: Context) {
  const vault = await unlock(ctx);
  try {
    for (const id of vault.identities) {
      try {
        toPrivateKeyObject(id);
      } catch (err) {
        if (err instanceof KeyFormatError)
          throw new VaultError(
            'DAMAGED',
            `key ${id.comment} (${fingerprint(id.publicBlob)}) in ${ctx.file.path} is unusable: ${err.message}`,
          );
        throw err;
      }
    }
    ctx.out(
      `${ctx.file.path}: OK, ${vault.identities.length} ${vault.identities.length === 1 ? 'key' : 'keys'} (format v${FORMAT_VERSION}, ${describeKdf(vault.kdf)})`,
    );
  } finally {
    vault.lock();
  }
}

// ---- argument parsing -----------------------------------------------------

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
    program.command('init').description('create a new, empty vault (asks the passphrase twice)'),
  ).action((opts, cmd) => run((ctx) => cmdInit(ctx, opts), cmd));
  defaultsOptions(
    program
      .command('import')
      .description(
        'import private key files: OpenSSH, PEM (PKCS#1/PKCS#8/SEC1), PKCS#12, PuTTY .ppk v2',
      )
      .argument('<file...>'),
  ).action((files, opts, cmd) => run((ctx) => cmdImport(ctx, files, opts), cmd));
  defaultsOptions(
    program
      .command('generate')
      .description('create a key inside the vault and print its public key')
      .addOption(
        new Option('-t, --type <type>', 'key type')
          .choices(['ed25519', 'ecdsa', 'rsa'])
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
    exitCode = fail((err as Error)?.message ?? String(err), err instanceof UsageError ? 2 : 1);
  }
  return exitCode;
}
