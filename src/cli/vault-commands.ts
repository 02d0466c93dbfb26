// The handlers of `tsagent vault …` (the commands are set up in vault.ts).
// Logic lives in src/vault; these ask passphrases and print results.
// Data (public keys, listings) goes to stdout; status and errors to stderr.
import fs = require('node:fs');
import os = require('node:os');
import { errorMessage } from '../ssh/error';
import { escapeText } from '../ssh/escape';
import { DEFAULT_KDF, KdfParams, kdfParamsProblem } from '../vault/kdf';
import { FORMAT_VERSION, VaultError, VaultIdentity } from '../vault/format';
import { ImportedKey, KeyFileError, parseKeyFile } from '../vault/keyfile';
import {
  authorizedKeysLine,
  checkGenerateBits,
  generateKey,
  GenerateType,
  KeyFormatError,
  keyBits,
  keyLabel,
  toPrivateKeyObject,
} from '../vault/sshkey';
import { fingerprint } from '../ssh/fingerprint';
import { resolveVaultPath } from '../vault/paths';
import { VaultFile } from '../vault/store';
import type { UnlockedVault } from '../vault/unlocked';
import { CliError, UsageError } from './errors';
import { parseLifetime as parseAgentLifetime } from './options';
import { PassphraseReader, withProgress } from './passphrase';

export interface GlobalOptions {
  vault?: string;
  passphraseFd?: number;
}

export interface Context {
  file: VaultFile;
  pass: PassphraseReader;
  out: (line: string) => void;
  note: (line: string) => void;
}

export function makeContext(opts: GlobalOptions): Context {
  return {
    file: new VaultFile(resolveVaultPath(opts.vault)),
    pass: new PassphraseReader({ fd: opts.passphraseFd }),
    out: (line) => process.stdout.write(line + '\n'),
    note: (line) => process.stderr.write(line + '\n'),
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

/**
 * A new passphrase: typed twice on a terminal or through SSH_ASKPASS; one line
 * from --passphrase-fd, which is handed over, not typed (as gpg --passphrase-fd).
 */
async function askNewPassphrase(ctx: Context, what: string): Promise<Buffer> {
  const first = await ctx.pass.ask(`Enter new passphrase for the vault: `);
  try {
    if (ctx.pass.source !== 'fd') {
      const second = await ctx.pass.ask('Enter the same passphrase again: ');
      const same = first.equals(second);
      second.fill(0);
      if (!same) throw new CliError(`the passphrases do not match; ${what}`);
    }
    if (first.length === 0)
      throw new CliError(`an empty passphrase would leave the keys unprotected; ${what}`);
    return first;
  } catch (e) {
    first.fill(0);
    throw e;
  }
}

export async function unlock(
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

export function describeIdentity(id: VaultIdentity): string {
  const defaults = [
    id.confirm ? '[confirm]' : '',
    id.confirmForwarded ? '[confirm-forwarded]' : '',
    id.localOnly ? '[local-only]' : '',
    id.lifetime ? `[lifetime ${formatLifetime(id.lifetime)}]` : '',
    id.confirmWindow !== undefined ? `[confirm-window ${formatLifetime(id.confirmWindow)}]` : '',
    id.allow?.length ? `[allow ${id.allow.join(',')}]` : '',
    id.skProvider ? `[sk-provider ${escapeText(id.skProvider)}]` : '',
  ]
    .filter(Boolean)
    .join(' ');
  return `${keyBits(id)} ${fingerprint(id.publicBlob)} ${id.comment ? escapeText(id.comment) : '(no comment)'} (${keyLabel(id.keyType)})${defaults ? ' ' + defaults : ''}`;
}

export async function cmdInit(
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

export async function cmdImport(
  ctx: Context,
  files: string[],
  opts: { confirm?: boolean; lifetime?: string; skProvider?: string },
) {
  const lifetime = opts.lifetime === undefined ? undefined : parseLifetime(opts.lifetime);
  // As ssh-add: --sk-provider, else $SSH_SK_PROVIDER, else OpenSSH's built-in middleware.
  const skProvider = opts.skProvider || process.env.SSH_SK_PROVIDER || 'internal';
  // Read and classify every file first, so a bad path fails before any prompt.
  const pending: { file: string; data: Buffer; key?: ImportedKey }[] = [];
  for (const file of files) {
    let data: Buffer;
    try {
      data = fs.readFileSync(file);
    } catch (err) {
      throw new KeyFileError('NOT_A_KEY', `cannot read ${file}: ${errorMessage(err)}`);
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
    const { added, skipped } = vault.add(keys, { confirm: opts.confirm, lifetime, skProvider });
    for (const s of skipped)
      ctx.note(
        `Already in the vault: ${escapeText(s.key.comment)} (${fingerprint(s.key.publicBlob)}) as "${escapeText(s.existing.comment)}"`,
      );
    for (const id of added)
      ctx.note(`Identity added: ${escapeText(id.comment)} (${fingerprint(id.publicBlob)})`);
  } finally {
    vault.lock();
  }
}

function withFile(err: unknown, file: string, suffix = ''): unknown {
  if (err instanceof KeyFileError)
    return new KeyFileError(err.code, `${file}: ${err.message}${suffix}`);
  return err;
}

export async function cmdGenerate(
  ctx: Context,
  opts: { type: string; bits?: number; comment?: string; confirm?: boolean; lifetime?: string },
) {
  if (!['ed25519', 'ecdsa', 'rsa', 'mldsa44-ed25519'].includes(opts.type))
    throw new UsageError(
      `unknown key type "${opts.type}": use -t ed25519, ecdsa, rsa or mldsa44-ed25519`,
    );
  const type = opts.type as GenerateType;
  try {
    checkGenerateBits(type, opts.bits);
  } catch (err) {
    throw new UsageError(errorMessage(err));
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

export async function cmdList(ctx: Context) {
  const vault = await unlock(ctx);
  try {
    if (vault.identities.length === 0) ctx.out(`The vault ${ctx.file.path} has no identities.`);
    for (const id of vault.identities) ctx.out(describeIdentity(id));
  } finally {
    vault.lock();
  }
}

export async function cmdExportPub(ctx: Context, name: string) {
  const vault = await unlock(ctx);
  try {
    ctx.out(authorizedKeysLine(vault.find(name)));
  } finally {
    vault.lock();
  }
}

export async function cmdRemove(ctx: Context, name: string) {
  const vault = await unlock(ctx);
  try {
    const gone = vault.remove(name);
    ctx.note(`Identity removed: ${escapeText(gone.comment)} (${fingerprint(gone.publicBlob)})`);
  } finally {
    vault.lock();
  }
}

export async function cmdRename(ctx: Context, oldName: string, newName: string) {
  const vault = await unlock(ctx);
  try {
    const renamed = vault.rename(oldName, newName);
    ctx.note(`Renamed ${fingerprint(renamed.publicBlob)} to "${escapeText(renamed.comment)}"`);
  } finally {
    vault.lock();
  }
}

export async function cmdPasswd(
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
      `Passphrase changed for ${ctx.file.path} (${describeKdf(kdf)}); the old passphrase no longer opens its backup ${ctx.file.backupPath} either.`,
    );
  } finally {
    vault.lock();
  }
}

export async function cmdVerify(ctx: Context) {
  const vault = await unlock(ctx);
  try {
    for (const id of vault.identities) {
      try {
        toPrivateKeyObject(id);
      } catch (err) {
        if (err instanceof KeyFormatError)
          throw new VaultError(
            'DAMAGED',
            `key ${escapeText(id.comment)} (${fingerprint(id.publicBlob)}) in ${ctx.file.path} is unusable: ${err.message}`,
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
