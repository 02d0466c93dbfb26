// The vault on disk: one file, who may read it, and how it is replaced.
// Writes are atomic and durable (temp file in the same directory, fsync,
// rename over, fsync the directory), so a crash at any point leaves either the
// old or the new vault; the previous version is kept as <vault>.bak (the new
// one after a passphrase change or a removed key: see BackupContent).
import crypto = require('node:crypto');
import fs = require('node:fs');
import path = require('node:path');
import {
  newVaultKey,
  openVaultContents,
  parseVault,
  sealVault,
  unlockVault,
  VaultError,
  VaultContents,
} from './format';
import {
  checkPrivate,
  currentUid,
  describeFsError,
  errnoCode,
  processAlive,
  realFs,
  VaultFs,
} from './filesystem';
import { KdfParams, VaultKey } from './kdf';
import { BackupContent, SealedVaultFile, UnlockedVault } from './unlocked';

/** Far above any real vault (a few KiB per key); a bigger file is not one. */
const MAX_VAULT_BYTES = 64 * 1024 * 1024;

export interface VaultFileOptions {
  fs?: Partial<VaultFs>;
}

/** One vault file. Holds no secrets; unlock() returns an UnlockedVault that does. */
export class VaultFile implements SealedVaultFile {
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
      const { identities, sections, key } = await unlockVault(bytes, passphrase);
      return new UnlockedVault(this, identities, key, bytes, sections);
    } catch (err) {
      throw this.explain(err, p);
    }
  }

  /** Re-read with a key already derived (an unlocked agent noticing a change on disk). */
  openWithKey(key: VaultKey, p: string = this.path): UnlockedVault {
    const bytes = this.readBytes(p);
    const { identities, sections } = this.decrypt(bytes, key, p);
    return new UnlockedVault(this, identities, key, bytes, sections);
  }

  /** Decrypt sealed bytes of this file with a key already derived. */
  decrypt(bytes: Buffer, key: VaultKey, p: string = this.path): VaultContents {
    try {
      return openVaultContents(parseVault(bytes), key);
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
   * tsagent process), and `null` means "create, never overwrite". `backup`
   * says what <vault>.bak holds afterwards (see BackupContent).
   */
  write(bytes: Buffer, expected: Buffer | null, backup: BackupContent = 'previous'): void {
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
        if (backup === 'previous') {
          stage = `backup ${this.backupPath}`;
          this.writeFileDurably(bakTmp, current);
          this.fs.renameSync(bakTmp, this.backupPath);
        }
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
    // The vault first, then its copy: the backup is never newer than the vault.
    if (expected !== null && backup === 'new') this.replaceBackup(bytes, bakTmp);
    try {
      this.syncDirectory();
    } catch (err) {
      throw new VaultError(
        'WRITE_FAILED',
        `the new vault ${this.path} is in place but its directory could not be flushed to disk: ${describeFsError(err)}`,
      );
    }
  }

  /** Make the backup a copy of the new vault; if that fails, remove it rather than keep the old one. */
  private replaceBackup(bytes: Buffer, bakTmp: string): void {
    try {
      this.writeFileDurably(bakTmp, bytes);
      this.fs.renameSync(bakTmp, this.backupPath);
    } catch (err) {
      this.unlinkQuietly(bakTmp);
      try {
        this.fs.unlinkSync(this.backupPath);
      } catch (e2) {
        if (errnoCode(e2) !== 'ENOENT')
          throw new VaultError(
            'WRITE_FAILED',
            `the new vault ${this.path} is in place, but its backup ${this.backupPath} still holds the previous version ` +
              `and could be neither replaced (${describeFsError(err)}) nor removed (${describeFsError(e2)}): remove it`,
          );
      }
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
