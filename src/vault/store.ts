// The vault on disk: where it lives, who may read it, and how it is replaced.
// Writes are atomic and durable (temp file in the same directory, fsync,
// rename over, fsync the directory), so a crash at any point leaves either the
// old or the new vault; the previous version is kept as <vault>.bak.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  newVaultKey,
  openVault,
  parseVault,
  sealVault,
  unlockVault,
  VaultError,
  VaultIdentity,
} from './format';
import { KdfParams, VaultKey, wipeVaultKey } from './kdf';
import { fingerprint } from '../ssh/fingerprint';
import { KeyMaterial } from './sshkey';

/** Far above any real vault (a few KiB per key); a bigger file is not one. */
const MAX_VAULT_BYTES = 64 * 1024 * 1024;

/** The fs calls the store makes, injectable so tests can simulate a full disk or a failing fsync. */
export interface VaultFs {
  openSync: typeof fs.openSync;
  writeSync: (fd: number, buf: Buffer, off: number, len: number) => number;
  fsyncSync: typeof fs.fsyncSync;
  closeSync: typeof fs.closeSync;
  fstatSync: (fd: number) => fs.Stats;
  statSync: (p: string) => fs.Stats;
  readSync: (fd: number, buf: Buffer, off: number, len: number, pos: number | null) => number;
  renameSync: typeof fs.renameSync;
  linkSync: typeof fs.linkSync;
  unlinkSync: typeof fs.unlinkSync;
  readdirSync: (p: string) => string[];
  mkdirSync: (p: string, opts: { recursive?: boolean; mode?: number }) => unknown;
}

const realFs: VaultFs = {
  openSync: fs.openSync,
  writeSync: (fd, buf, off, len) => fs.writeSync(fd, buf, off, len),
  fsyncSync: fs.fsyncSync,
  closeSync: fs.closeSync,
  fstatSync: (fd) => fs.fstatSync(fd),
  statSync: (p) => fs.statSync(p),
  readSync: (fd, buf, off, len, pos) => fs.readSync(fd, buf, off, len, pos),
  renameSync: fs.renameSync,
  linkSync: fs.linkSync,
  unlinkSync: fs.unlinkSync,
  readdirSync: (p) => fs.readdirSync(p),
  mkdirSync: (p, opts) => fs.mkdirSync(p, opts),
};

/** `$XDG_DATA_HOME/tsagent/vault`, else `~/.local/share/tsagent/vault`. */
export function defaultVaultPath(
  env: NodeJS.ProcessEnv = process.env,
  home = os.homedir(),
): string {
  // The XDG spec says to ignore a relative XDG_DATA_HOME.
  const xdg = env.XDG_DATA_HOME;
  const base = xdg && path.isAbsolute(xdg) ? xdg : path.join(home, '.local', 'share');
  return path.join(base, 'tsagent', 'vault');
}

/** An explicit --vault path, else TSAGENT_VAULT, else the default. */
export function resolveVaultPath(explicit?: string, env: NodeJS.ProcessEnv = process.env): string {
  const chosen = explicit || env.TSAGENT_VAULT || defaultVaultPath(env);
  return path.resolve(chosen);
}

function errnoCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException)?.code;
}

/** A human reason for an fs error, with the errno name for searching. */
function describeFsError(err: unknown): string {
  const code = errnoCode(err);
  const known: Record<string, string> = {
    ENOSPC: 'no space left on device',
    EDQUOT: 'disk quota exceeded',
    EROFS: 'read-only file system',
    EACCES: 'permission denied',
    EPERM: 'operation not permitted',
    EIO: 'input/output error',
    ENOENT: 'no such file or directory',
  };
  if (code && known[code]) return `${known[code]} (${code})`;
  return (err as Error)?.message ?? String(err);
}

/** "readable by group and others, writable by others" for the bits StrictModes forbids. */
function describeLooseMode(mode: number): string {
  const who = (g: number, o: number) =>
    [mode & g ? 'group' : '', mode & o ? 'others' : ''].filter(Boolean).join(' and ');
  const parts: string[] = [];
  if (mode & 0o044) parts.push(`readable by ${who(0o040, 0o004)}`);
  if (mode & 0o022) parts.push(`writable by ${who(0o020, 0o002)}`);
  return parts.join(', ');
}

const octal = (mode: number) => (mode & 0o7777).toString(8).padStart(4, '0');

/**
 * sshd StrictModes for the vault and its directory: owned by us, not readable
 * or writable by group/others (execute alone is allowed on the directory).
 */
export function checkPrivate(
  p: string,
  st: fs.Stats,
  kind: 'vault' | 'vault directory',
  uid: number,
): void {
  if (kind === 'vault' && !st.isFile())
    throw new VaultError('PERMISSIONS', `vault ${p} is not a regular file`);
  if (kind === 'vault directory' && !st.isDirectory())
    throw new VaultError('PERMISSIONS', `vault directory ${p} is not a directory`);
  if (st.uid !== uid) {
    const me = safeUserName() ?? String(uid);
    throw new VaultError(
      'PERMISSIONS',
      `${kind} ${p} is owned by uid ${st.uid}, not by you (uid ${uid}): run chown ${me} ${p}`,
    );
  }
  if (st.mode & 0o066) {
    const fix = kind === 'vault' ? `chmod 600 ${p}` : `chmod 700 ${p}`;
    throw new VaultError(
      'PERMISSIONS',
      `${kind} ${p} is ${describeLooseMode(st.mode)} (mode ${octal(st.mode)}): run ${fix}`,
    );
  }
}

function safeUserName(): string | undefined {
  try {
    return os.userInfo().username;
  } catch {
    return undefined;
  }
}

function currentUid(): number {
  return typeof process.getuid === 'function' ? process.getuid() : 0;
}

export interface VaultFileOptions {
  fs?: Partial<VaultFs>;
}

/** One vault file. Holds no secrets; unlock() returns an UnlockedVault that does. */
export class VaultFile {
  readonly path: string;
  readonly dir: string;
  readonly backupPath: string;
  private readonly fs: VaultFs;
  private readonly uid = currentUid();

  constructor(vaultPath: string, options: VaultFileOptions = {}) {
    this.path = path.resolve(vaultPath);
    this.dir = path.dirname(this.path);
    this.backupPath = this.path + '.bak';
    this.fs = { ...realFs, ...options.fs };
  }

  private tempPrefix(): string {
    return `.${path.basename(this.path)}.tmp-`;
  }

  exists(): boolean {
    try {
      this.fs.statSync(this.path);
      return true;
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return false;
      throw err;
    }
  }

  /** StrictModes check of the directory; a missing directory is NOT_FOUND. */
  checkDirectory(): void {
    let st: fs.Stats;
    try {
      st = this.fs.statSync(this.dir);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT')
        throw new VaultError(
          'NOT_FOUND',
          `vault directory ${this.dir} does not exist: run tsagent vault init (or pass --vault PATH)`,
        );
      throw new VaultError(
        'PERMISSIONS',
        `cannot use vault directory ${this.dir}: ${describeFsError(err)}`,
      );
    }
    checkPrivate(this.dir, st, 'vault directory', this.uid);
  }

  /** Read the sealed bytes of `p` (default: the vault) after the permission checks. */
  readBytes(p: string = this.path): Buffer {
    this.checkDirectory();
    let fd: number;
    try {
      fd = this.fs.openSync(p, fs.constants.O_RDONLY);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT')
        throw new VaultError(
          'NOT_FOUND',
          `no vault at ${p}: run tsagent vault init to create one (or pass --vault PATH)`,
        );
      throw new VaultError('PERMISSIONS', `cannot open vault ${p}: ${describeFsError(err)}`);
    }
    try {
      // fstat the opened file, not the path, so the check and the read see the same file.
      const st = this.fs.fstatSync(fd);
      checkPrivate(p, st, 'vault', this.uid);
      if (st.size > MAX_VAULT_BYTES)
        throw new VaultError(
          'DAMAGED',
          `${p} is ${st.size} bytes, more than any vault (${MAX_VAULT_BYTES}): not a tsagent vault`,
        );
      const buf = Buffer.alloc(st.size);
      let off = 0;
      while (off < buf.length) {
        const n = this.fs.readSync(fd, buf, off, buf.length - off, off);
        if (n === 0) break;
        off += n;
      }
      return buf.subarray(0, off);
    } catch (err) {
      if (err instanceof VaultError) throw err;
      throw new VaultError('PERMISSIONS', `cannot read vault ${p}: ${describeFsError(err)}`);
    } finally {
      this.fs.closeSync(fd);
    }
  }

  /** Add the vault path to a format error, and point at the backup when the file is damaged. */
  private explain(err: unknown, p: string): unknown {
    if (!(err instanceof VaultError)) return err;
    if (err.code === 'WRONG_PASSPHRASE')
      return new VaultError(err.code, `wrong passphrase for vault ${p}`);
    if (err.code === 'DAMAGED' || err.code === 'UNSUPPORTED') {
      const hint =
        p === this.path && this.fileExists(this.backupPath)
          ? `; the previous version may still be good: check it with tsagent vault verify --vault ${this.backupPath}` +
            `, then restore it with cp -p ${this.backupPath} ${this.path}`
          : '';
      return new VaultError(err.code, `${p}: ${err.message}${hint}`);
    }
    return err;
  }

  private fileExists(p: string): boolean {
    try {
      this.fs.statSync(p);
      return true;
    } catch {
      return false;
    }
  }

  /** Structure and checksum only: no passphrase needed. */
  checkIntegrity(p: string = this.path): void {
    const bytes = this.readBytes(p);
    try {
      parseVault(bytes);
    } catch (err) {
      throw this.explain(err, p);
    }
  }

  /** Derive the key from the passphrase and decrypt. Writes nothing. */
  async unlock(passphrase: Buffer, p: string = this.path): Promise<UnlockedVault> {
    const bytes = this.readBytes(p);
    try {
      const { identities, key } = await unlockVault(bytes, passphrase);
      return new UnlockedVault(this, identities, key, bytes);
    } catch (err) {
      throw this.explain(err, p);
    }
  }

  /** Re-read with a key already derived (an unlocked agent noticing a change on disk). */
  openWithKey(key: VaultKey, p: string = this.path): UnlockedVault {
    const bytes = this.readBytes(p);
    try {
      return new UnlockedVault(this, openVault(parseVault(bytes), key), key, bytes);
    } catch (err) {
      throw this.explain(err, p);
    }
  }

  /** Create an empty vault (and its 0700 directory); refuses to overwrite an existing one. */
  async create(passphrase: Buffer, kdf?: KdfParams): Promise<UnlockedVault> {
    if (this.exists())
      throw new VaultError('EXISTS', `a vault already exists at ${this.path}; not overwriting it`);
    this.makeDirectory();
    const key = await newVaultKey(passphrase, kdf);
    const bytes = sealVault([], key);
    this.write(bytes, null);
    return new UnlockedVault(this, [], key, bytes);
  }

  private makeDirectory(): void {
    try {
      this.fs.mkdirSync(path.dirname(this.dir), { recursive: true });
      this.fs.mkdirSync(this.dir, { mode: 0o700 });
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST')
        throw new VaultError(
          'WRITE_FAILED',
          `cannot create vault directory ${this.dir}: ${describeFsError(err)}`,
        );
    }
    this.checkDirectory();
  }

  /**
   * Replace the vault atomically with `bytes`. `expected` is what the caller
   * last read: the write is refused if the file changed meanwhile (another
   * tsagent process), and `null` means "create, never overwrite".
   */
  write(bytes: Buffer, expected: Buffer | null): void {
    this.checkDirectory();
    this.removeStaleTemps();
    const suffix = `${process.pid}-${crypto.randomBytes(6).toString('hex')}`;
    const tmp = path.join(this.dir, `${this.tempPrefix()}${suffix}`);
    const bakTmp = path.join(this.dir, `${this.tempPrefix()}bak-${suffix}`);
    let stage = `temporary file ${tmp}`;
    try {
      this.writeFileDurably(tmp, bytes);
      if (expected === null) {
        // link() fails with EEXIST instead of replacing: "init" can never clobber a vault.
        stage = `vault ${this.path}`;
        try {
          this.fs.linkSync(tmp, this.path);
        } catch (err) {
          if (errnoCode(err) === 'EEXIST')
            throw new VaultError(
              'EXISTS',
              `a vault already exists at ${this.path}; not overwriting it`,
            );
          throw err;
        }
        this.fs.unlinkSync(tmp);
      } else {
        const current = this.readBytes();
        if (!current.equals(expected))
          throw new VaultError(
            'CHANGED',
            `vault ${this.path} was changed by another process meanwhile; nothing was written: run the command again`,
          );
        stage = `backup ${this.backupPath}`;
        this.writeFileDurably(bakTmp, current);
        this.fs.renameSync(bakTmp, this.backupPath);
        stage = `vault ${this.path}`;
        this.fs.renameSync(tmp, this.path);
      }
    } catch (err) {
      for (const t of [tmp, bakTmp]) this.unlinkQuietly(t);
      if (err instanceof VaultError) throw err;
      throw new VaultError(
        'WRITE_FAILED',
        `cannot write the ${stage}: ${describeFsError(err)}; the vault ${this.path} was left unchanged`,
      );
    }
    try {
      this.syncDirectory();
    } catch (err) {
      throw new VaultError(
        'WRITE_FAILED',
        `the new vault ${this.path} is in place but its directory could not be flushed to disk: ${describeFsError(err)}`,
      );
    }
  }

  private writeFileDurably(p: string, bytes: Buffer): void {
    const fd = this.fs.openSync(
      p,
      fs.constants.O_WRONLY |
        fs.constants.O_CREAT |
        fs.constants.O_EXCL |
        (fs.constants.O_NOFOLLOW ?? 0),
      0o600,
    );
    try {
      let off = 0;
      while (off < bytes.length) off += this.fs.writeSync(fd, bytes, off, bytes.length - off);
      this.fs.fsyncSync(fd);
    } finally {
      this.fs.closeSync(fd);
    }
  }

  private syncDirectory(): void {
    let fd: number;
    try {
      fd = this.fs.openSync(this.dir, fs.constants.O_RDONLY);
    } catch {
      return; // some platforms cannot open directories; the rename is still atomic
    }
    try {
      this.fs.fsyncSync(fd);
    } catch (err) {
      // Filesystems without directory fsync say EINVAL/ENOTSUP; nothing more can be done there.
      if (!['EINVAL', 'ENOTSUP', 'EBADF'].includes(errnoCode(err) ?? '')) throw err;
    } finally {
      this.fs.closeSync(fd);
    }
  }

  private unlinkQuietly(p: string): void {
    try {
      this.fs.unlinkSync(p);
    } catch {
      // already gone
    }
  }

  /** Temp files left by a writer that was killed: remove those whose process is gone. */
  private removeStaleTemps(): void {
    let names: string[];
    try {
      names = this.fs.readdirSync(this.dir);
    } catch {
      return;
    }
    const prefix = this.tempPrefix();
    for (const name of names) {
      if (!name.startsWith(prefix)) continue;
      const m = /^(?:bak-)?(\d+)-[0-9a-f]+$/.exec(name.slice(prefix.length));
      if (!m) continue;
      const pid = Number(m[1]);
      if (pid === process.pid || processAlive(pid)) continue;
      this.unlinkQuietly(path.join(this.dir, name));
    }
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errnoCode(err) === 'EPERM';
  }
}

/** Resolve a NAME: exact fingerprint, exact comment, or a unique fingerprint prefix. */
export function findIdentity(
  identities: readonly VaultIdentity[],
  name: string,
  where = 'the vault',
): VaultIdentity {
  const fps = identities.map((id) => fingerprint(id.publicBlob));
  const ambiguous = (hits: number[]) =>
    new VaultError(
      'INVALID',
      `"${name}" matches ${hits.length} keys in ${where} (${hits.map((i) => fps[i]).join(', ')}): name one by its fingerprint`,
    );
  const byFp = fps.findIndex((fp) => fp === name);
  if (byFp >= 0) return identities[byFp];
  const byComment = identities.flatMap((id, i) => (id.comment === name ? [i] : []));
  if (byComment.length === 1) return identities[byComment[0]];
  if (byComment.length > 1) throw ambiguous(byComment);
  const bare = name.startsWith('SHA256:') ? name.slice(7) : name;
  if (bare.length >= 4) {
    const byPrefix = fps.flatMap((fp, i) => (fp.slice(7).startsWith(bare) ? [i] : []));
    if (byPrefix.length === 1) return identities[byPrefix[0]];
    if (byPrefix.length > 1) throw ambiguous(byPrefix);
  }
  throw new VaultError(
    'NOT_FOUND',
    `no key named "${name}" in ${where}: give its comment or fingerprint as "tsagent vault list" shows them`,
  );
}

export interface IdentityDefaults {
  confirm?: boolean;
  confirmForwarded?: boolean;
  /** Destination constraints to add; null clears them all. */
  allow?: string[] | null;
  /** Clear the constraints first, then add `allow` (replace the list). */
  clearAllow?: boolean;
  /** Seconds; null clears it. */
  lifetime?: number | null;
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

function checkComment(comment: string): void {
  if (!comment.trim() || /[\r\n]/.test(comment))
    throw new VaultError(
      'INVALID',
      `invalid key name ${JSON.stringify(comment)}: use a non-empty single line`,
    );
}

/**
 * A decrypted vault and the key that opened it. Every mutation writes the
 * vault at once (atomically) and only then updates this object, so a failed
 * write leaves both the file and this object as they were.
 */
export class UnlockedVault {
  constructor(
    readonly file: VaultFile,
    private current: VaultIdentity[],
    private vaultKey: VaultKey,
    private sealedBytes: Buffer,
  ) {}

  get identities(): readonly VaultIdentity[] {
    return this.current;
  }

  /** Does the file still hold exactly what this object last read or wrote? */
  isCurrent(): boolean {
    try {
      return fs.readFileSync(this.file.path).equals(this.sealedBytes);
    } catch {
      return false;
    }
  }

  get key(): VaultKey {
    return this.vaultKey;
  }

  get kdf(): KdfParams {
    return { ...this.vaultKey.kdf };
  }

  find(name: string): VaultIdentity {
    return findIdentity(this.current, name, `vault ${this.file.path}`);
  }

  /** Seal `next` with the current key and replace the file. */
  commit(next: VaultIdentity[]): void {
    const bytes = sealVault(next, this.vaultKey);
    this.file.write(bytes, this.sealedBytes);
    this.sealedBytes = bytes;
    this.current = next;
  }

  /** Pick up changes another process wrote (same passphrase), without asking for it again. */
  reload(): void {
    const fresh = this.file.openWithKey(this.vaultKey);
    this.current = [...fresh.identities];
    this.sealedBytes = fresh.sealedBytes;
  }

  /** Add keys; those already present (same public key) are skipped and reported. */
  add(
    keys: readonly KeyMaterial[],
    defaults: IdentityDefaults = {},
  ): { added: VaultIdentity[]; skipped: { key: KeyMaterial; existing: VaultIdentity }[] } {
    const next = [...this.current];
    const added: VaultIdentity[] = [];
    const skipped: { key: KeyMaterial; existing: VaultIdentity }[] = [];
    for (const k of keys) {
      const existing = next.find((id) => id.publicBlob.equals(k.publicBlob));
      if (existing) {
        skipped.push({ key: k, existing });
        continue;
      }
      const id: VaultIdentity = {
        keyType: k.keyType,
        privateFields: Buffer.from(k.privateFields),
        publicBlob: Buffer.from(k.publicBlob),
        comment: k.comment,
        created: nowSeconds(),
      };
      applyDefaults(id, defaults);
      next.push(id);
      added.push(id);
    }
    if (added.length) this.commit(next);
    return { added, skipped };
  }

  remove(name: string): VaultIdentity {
    const victim = this.find(name);
    this.commit(this.current.filter((id) => id !== victim));
    return victim;
  }

  rename(name: string, newComment: string): VaultIdentity {
    checkComment(newComment);
    const target = this.find(name);
    const clash = this.current.find((id) => id !== target && id.comment === newComment);
    if (clash)
      throw new VaultError(
        'INVALID',
        `another key (${fingerprint(clash.publicBlob)}) is already named "${newComment}": choose another name`,
      );
    const renamed = { ...target, comment: newComment };
    this.commit(this.current.map((id) => (id === target ? renamed : id)));
    return renamed;
  }

  /** Change per-key defaults (confirm, lifetime). */
  update(name: string, changes: IdentityDefaults): VaultIdentity {
    const target = this.find(name);
    const changed = { ...target };
    applyDefaults(changed, changes);
    this.commit(this.current.map((id) => (id === target ? changed : id)));
    return changed;
  }

  /** Record that the agent used a key (for `list`). */
  touch(publicBlob: Buffer, when = nowSeconds()): void {
    this.commit(
      this.current.map((id) => (id.publicBlob.equals(publicBlob) ? { ...id, lastUsed: when } : id)),
    );
  }

  /** Re-encrypt under a new passphrase and/or KDF parameters, with a fresh salt. */
  async changePassphrase(newPassphrase: Buffer, kdf: KdfParams = this.vaultKey.kdf): Promise<void> {
    const key = await newVaultKey(newPassphrase, kdf);
    const bytes = sealVault(this.current, key);
    try {
      this.file.write(bytes, this.sealedBytes);
    } catch (err) {
      wipeVaultKey(key);
      throw err;
    }
    wipeVaultKey(this.vaultKey);
    this.vaultKey = key;
    this.sealedBytes = bytes;
  }

  /** Drop the decrypted material (overwriting the buffers Node lets us reach). */
  lock(): void {
    for (const id of this.current) id.privateFields.fill(0);
    this.current = [];
    wipeVaultKey(this.vaultKey);
  }
}

function applyDefaults(id: VaultIdentity, d: IdentityDefaults): void {
  if (d.confirm !== undefined) {
    if (d.confirm) id.confirm = true;
    else delete id.confirm;
  }
  if (d.confirmForwarded !== undefined) {
    if (d.confirmForwarded) id.confirmForwarded = true;
    else delete id.confirmForwarded;
  }
  if (d.allow === null || d.clearAllow) delete id.allow;
  if (d.allow?.length) id.allow = [...new Set([...(id.allow ?? []), ...d.allow])];
  if (d.lifetime === null) delete id.lifetime;
  else if (d.lifetime !== undefined) {
    if (!Number.isInteger(d.lifetime) || d.lifetime <= 0)
      throw new VaultError(
        'INVALID',
        `lifetime must be a positive number of seconds, not ${d.lifetime}`,
      );
    id.lifetime = d.lifetime;
  }
}
