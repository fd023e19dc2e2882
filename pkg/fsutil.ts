/**
 * Files of state other processes share (result caches, attachment records).
 * Writes are atomic: write a temp file beside the target and rename it over
 * the target. A reader, or the next process after one that was killed,
 * sees the old file or the new one, never a torn one.
 *
 * They are not fsynced unless the caller asks (`durable`): what these files
 * describe (interfaces in a pod's namespace, addresses held by running pods)
 * does not outlive a power loss or kernel crash either, and an fsync costs
 * 1–3 ms on the path of every pod (libcni and host-local do not sync them
 * either). Readers treat an empty or unparsable file as damaged. The one
 * exception is the file other state is found from after a crash (the
 * attachment record, see engine/run.ts): its bytes are synced before it
 * gets its name, so a crash leaves it complete or absent, never empty.
 *
 * The work is done with synchronous calls behind async signatures: every
 * asynchronous file operation hops to a worker thread and back, and in a
 * plugin process that lives for milliseconds those hops cost more than the
 * I/O itself.
 *
 * @module
 */

/** Creates `dir` (and parents) with `mode` if missing. */
export function ensureDir(dir: string, mode: number): Promise<void> {
  try {
    Deno.mkdirSync(dir, { recursive: true, mode });
    return Promise.resolve();
  } catch (err) {
    return Promise.reject(err);
  }
}

/** How a file is written. */
export interface WriteOptions {
  /**
   * Sync the bytes (fdatasync) before the file gets its name: a crash after
   * the rename then finds it complete. The rename itself reaches the disk
   * in order with the metadata changes made after it (the journal of ext4
   * and xfs commits in order), so the folder is not synced.
   */
  durable?: boolean;
}

/** Writes `data` to `path` atomically with file mode `mode`. */
export function writeFileAtomic(
  path: string,
  data: Uint8Array | string,
  mode = 0o600,
  opts: WriteOptions = {},
): Promise<void> {
  try {
    writeFileAtomicSync(path, data, mode, opts);
    return Promise.resolve();
  } catch (err) {
    return Promise.reject(err);
  }
}

/** {@link writeFileAtomic}, synchronously. */
export function writeFileAtomicSync(
  path: string,
  data: Uint8Array | string,
  mode = 0o600,
  opts: WriteOptions = {},
): void {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const slash = path.lastIndexOf("/");
  // Plain string work: node:path costs tens of ms to load on the exec path.
  const dir = slash > 0 ? path.slice(0, slash) : slash === 0 ? "/" : ".";
  const rand = crypto.getRandomValues(new Uint32Array(1))[0].toString(36);
  const tmp = `${dir}/.${path.slice(slash + 1)}.tmp-${Deno.pid}-${rand}`;
  const file = Deno.openSync(tmp, { write: true, createNew: true, mode });
  try {
    let rest = bytes;
    while (rest.length) rest = rest.subarray(file.writeSync(rest));
    if (opts.durable) file.syncDataSync();
  } catch (err) {
    file.close();
    removeQuietly(tmp);
    throw err;
  }
  file.close();
  try {
    // mode on create is masked by the umask; state files must be exactly `mode`.
    Deno.chmodSync(tmp, mode);
    Deno.renameSync(tmp, path);
  } catch (err) {
    removeQuietly(tmp);
    throw err;
  }
}

function removeQuietly(path: string): void {
  try {
    Deno.removeSync(path);
  } catch {
    // already gone, or nothing more to do about it
  }
}

/** Removes `path`; true if it existed. */
export function removeIfExists(path: string): Promise<boolean> {
  try {
    Deno.removeSync(path);
    return Promise.resolve(true);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return Promise.resolve(false);
    return Promise.reject(err);
  }
}

/** The text of `path`, or undefined when it does not exist. */
export function readTextIfExists(path: string): Promise<string | undefined> {
  try {
    return Promise.resolve(Deno.readTextFileSync(path));
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return Promise.resolve(undefined);
    return Promise.reject(err);
  }
}

/**
 * The names of the files in `dir` that do not start with "." (temporary and
 * set-aside files do), sorted; [] when `dir` does not exist.
 */
export function listFileNames(dir: string): Promise<string[]> {
  try {
    const names: string[] = [];
    for (const e of Deno.readDirSync(dir)) {
      if (e.isFile && !e.name.startsWith(".")) names.push(e.name);
    }
    return Promise.resolve(names.sort());
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return Promise.resolve([]);
    return Promise.reject(err);
  }
}

/** The prefix of a file set aside as damaged (see {@link quarantineFile}). */
export const QUARANTINE_PREFIX = ".damaged-";

/**
 * Moves a file that cannot be read as what it should be to
 * `.damaged-<name>` beside it (replacing an older one of that name), out of
 * the way of every reader (they skip "." files) but kept for whoever wants
 * to look; returns where it went.
 */
export function quarantineFile(path: string): Promise<string> {
  const slash = path.lastIndexOf("/");
  const to = `${path.slice(0, slash + 1)}${QUARANTINE_PREFIX}${path.slice(slash + 1)}`;
  try {
    Deno.renameSync(path, to);
    return Promise.resolve(to);
  } catch (err) {
    return Promise.reject(err);
  }
}

/** The temporary file name {@link writeFileAtomicSync} uses: `.<name>.tmp-<pid>-<random>`. */
const TEMP_FILE = /^\..+\.tmp-\d+-[0-9a-z]+$/;

/**
 * Removes, in `dir`, the temporary files of atomic writes whose writer was
 * killed (older than `minAgeMs`: a live writer renames its file within
 * milliseconds) and, with `quarantineAgeMs`, files set aside as damaged
 * longer ago than that. Returns the names removed; [] when `dir` is missing.
 */
export function sweepLeftovers(
  dir: string,
  opts: { minAgeMs?: number; quarantineAgeMs?: number } = {},
): string[] {
  const now = Date.now();
  const removed: string[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(dir)];
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return [];
    throw err;
  }
  for (const e of entries) {
    if (!e.isFile) continue;
    const temp = TEMP_FILE.test(e.name);
    const damaged = opts.quarantineAgeMs !== undefined && e.name.startsWith(QUARANTINE_PREFIX);
    if (!temp && !damaged) continue;
    const path = `${dir}/${e.name}`;
    let age: number;
    try {
      age = now - (Deno.lstatSync(path).mtime?.getTime() ?? now);
    } catch {
      continue;
    }
    if (age < (temp ? opts.minAgeMs ?? 60_000 : opts.quarantineAgeMs!)) continue;
    try {
      Deno.removeSync(path);
      removed.push(e.name);
    } catch {
      // gone meanwhile
    }
  }
  return removed;
}

/** The folder of `path` as `dirname(1)` prints it: "." for a bare name, "/" for the root. */
export function parentDir(path: string): string {
  const trimmed = path.replace(/(?<=.)\/+$/, "");
  const slash = trimmed.lastIndexOf("/");
  if (slash < 0) return ".";
  return trimmed.slice(0, slash).replace(/(?<=.)\/+$/, "") || "/";
}

/** The last part of `path` as `basename(1)` prints it (trailing slashes dropped). */
export function baseName(path: string): string {
  const trimmed = path.replace(/(?<=.)\/+$/, "");
  return trimmed === "/" ? "/" : trimmed.slice(trimmed.lastIndexOf("/") + 1);
}
