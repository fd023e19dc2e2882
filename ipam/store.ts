/**
 * The on-disk reservation store, laid out exactly as host-local lays it out
 * so either plugin can take over a node from the other:
 *
 * - `<dataDir>/<network>/` (mode 0755),
 * - `lock`: flock(2)ed exclusively around every read-modify-write,
 * - one file per reserved address, named by its canonical text, holding
 *   `<containerID>\r\n<ifname>` (no trailing newline; host-local versions
 *   before ifnames were recorded wrote the container ID alone),
 * - `last_reserved_ip.<setIndex>`: the address most recently handed out
 *   from range set `setIndex`, where the next round-robin scan starts.
 *
 * Reservations are atomic even against writers that skip the lock: the
 * content is written to a temporary file first, then hard-linked
 * to its final name. link(2) fails if the name exists, so it is as exclusive
 * as host-local's O_EXCL create, and a reader never sees a half-written
 * reservation: a crash leaves at worst a temporary file, which the next
 * holder of the lock removes. A rename would not do: it replaces an
 * existing name silently.
 *
 * A reservation file with no owner in it (empty, or only whitespace) is
 * one whose content a crash lost: every writer fills the file before it
 * gets its name (hydra) or while holding the lock (host-local), so under
 * the lock such a file is never a write in progress. Whoever holds the
 * lock next removes it, like a temporary file: its owner can no longer be
 * told (no DEL could ever match it) and its pod did not survive the crash.
 *
 * File operations other than waiting for the lock are synchronous behind
 * async signatures: an asynchronous one hops to a worker thread and back,
 * which costs a plugin process that lives for milliseconds more than the
 * I/O. Waiting for the lock stays asynchronous, so a long-running process
 * is never frozen by another holding it.
 *
 * Nothing is fsynced (host-local does not sync either): a reservation only
 * has to outlast the plugin process, which the page cache gives; after a
 * power loss or kernel crash the pods that held the addresses are gone
 * too, and an fsync would cost 1–3 ms per address on every pod's path.
 *
 * @module
 */

import { CniError, ErrorCode, throwIfCancelled, untilCancelled } from "../cni/errors.ts";
import { formatIpAddr, type IpAddr, ipAddrEquals, parseIpAddr } from "../ipaddr/ip.ts";
import { createKeyedQueue } from "../pkg/async.ts";

const LOCK_FILE = "lock";
const LAST_RESERVED_PREFIX = "last_reserved_ip.";
/** Temporary files start with this; never an address, never a host-local name. */
const TEMP_PREFIX = ".hydra-tmp-";
const encoder = new TextEncoder();

/** A reservation file read from the store. */
export interface Reservation {
  readonly ip: IpAddr;
  /** File name (the address as text). */
  readonly name: string;
  /** Container ID; "" for an empty (torn) file. */
  readonly containerId: string;
  /** Interface name; undefined for files that record the container ID alone. */
  readonly ifname?: string;
}

/** A network's directory, locked for the holder's exclusive use. */
export interface LockedStore {
  /** `<dataDir>/<network>`. */
  readonly dir: string;
}

/** Whitespace as Go's strings.TrimSpace sees it, so owners match host-local's comparison. */
const GO_SPACE =
  "[\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]";
const GO_TRIM = new RegExp(`^${GO_SPACE}+|${GO_SPACE}+$`, "g");

/** Trims whitespace at both ends with Go's definition of whitespace. */
export function goTrimSpace(text: string): string {
  return text.replace(GO_TRIM, "");
}

/** The file content recording that `containerId`/`ifname` owns an address. */
export function ownerRecord(containerId: string, ifname: string): string {
  return `${goTrimSpace(containerId)}\r\n${ifname}`;
}

function ioError(what: string, err: unknown): CniError {
  return new CniError(
    ErrorCode.IoFailure,
    `${what}: ${err instanceof Error ? err.message : String(err)}`,
  );
}

/**
 * `dir/name`. Local rather than node:path, whose compatibility layer adds
 * measurably to the start of every exec'd plugin.
 */
function join(dir: string, name: string): string {
  return `${dir.replace(/\/+$/, "") || "/"}/${name}`.replace(/^\/\//, "/");
}

/** In-process queue per lock path, so concurrent callers in one process wait in line. */
const localQueue = createKeyedQueue();

/**
 * Runs `fn` holding the network's lock: an in-process queue first, then an
 * exclusive flock on `<dir>/lock`, the same lock host-local takes. The
 * directory is created if missing, as host-local does on every command.
 * When `signal` aborts while the lock is awaited, the wait ends with a
 * cancellation (code 11) and `fn` never runs.
 */
export function withStore<T>(
  dataDir: string,
  network: string,
  fn: (store: LockedStore) => Promise<T>,
  signal?: AbortSignal,
): Promise<T> {
  const dir = join(dataDir, network);
  const lockPath = join(dir, LOCK_FILE);
  return localQueue.run(lockPath, () => withFileLock(dir, lockPath, fn, signal));
}

/** Runs `fn` holding the flock on `lockPath`, the store folder made first. */
async function withFileLock<T>(
  dir: string,
  lockPath: string,
  fn: (store: LockedStore) => Promise<T>,
  signal?: AbortSignal,
): Promise<T> {
  throwIfCancelled(signal);
  try {
    Deno.mkdirSync(dir, { recursive: true, mode: 0o755 });
  } catch (err) {
    throw ioError(`cannot create store directory ${dir}`, err);
  }
  let file: Deno.FsFile;
  try {
    // host-local creates its lock file with mode 0750; match it.
    file = Deno.openSync(lockPath, { read: true, write: true, create: true, mode: 0o750 });
  } catch (err) {
    throw ioError(`cannot open lock file ${lockPath}`, err);
  }
  try {
    await untilCancelled(() => file.lock(true), signal);
    return await fn({ dir });
  } finally {
    file.close(); // closing the descriptor drops the flock
  }
}

function parseOwner(content: string): { containerId: string; ifname?: string } {
  // NUL bytes are what a crash leaves of a file whose size reached the disk and data did not
  // (xfs, ext4 data=writeback): no container ID holds one, so the owner is lost.
  if (content.includes("\0")) return { containerId: "" };
  const trimmed = goTrimSpace(content);
  const sep = trimmed.indexOf("\r\n");
  if (sep < 0) return { containerId: trimmed };
  return { containerId: trimmed.slice(0, sep), ifname: trimmed.slice(sep + 2) };
}

/**
 * Lists every reservation in the store. Must be called with the lock held:
 * it also removes temporary files left by a writer that crashed and
 * reservation files whose owner a crash lost (see the module doc).
 */
export function listReservations(store: LockedStore): Promise<Reservation[]> {
  const found: Reservation[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(store.dir)];
  } catch (err) {
    return Promise.reject(ioError(`cannot list store directory ${store.dir}`, err));
  }
  for (const entry of entries) {
    if (!entry.isFile) continue;
    if (entry.name.startsWith(TEMP_PREFIX)) {
      removeQuietly(join(store.dir, entry.name));
      continue;
    }
    const ip = parseIpAddr(entry.name);
    if (!ip) continue;
    try {
      const owner = parseOwner(Deno.readTextFileSync(join(store.dir, entry.name)));
      if (owner.containerId === "") {
        removeQuietly(join(store.dir, entry.name));
        continue;
      }
      found.push({ ip, name: entry.name, ...owner });
    } catch {
      // Gone since the listing (a lock-ignoring writer); not ours to report.
    }
  }
  return Promise.resolve(found);
}

function removeQuietly(path: string): void {
  try {
    Deno.removeSync(path);
  } catch {
    // already gone
  }
}

/**
 * True when a reservation belongs to the attachment: the `id\r\nifname`
 * record, or with `legacy` the record of the ID alone.
 */
export function ownedBy(
  r: Reservation,
  containerId: string,
  ifname: string,
  legacy: boolean,
): boolean {
  const id = goTrimSpace(containerId);
  return legacy
    ? r.ifname === undefined && r.containerId === id
    : r.ifname === ifname && r.containerId === id;
}

/**
 * The reservations of an attachment: its `id\r\nifname` records, or, when
 * it has none, records of the container ID alone (as host-local reads them).
 */
export function reservationsOf(
  all: readonly Reservation[],
  containerId: string,
  ifname: string,
): Reservation[] {
  const current = all.filter((r) => ownedBy(r, containerId, ifname, false));
  return current.length > 0 ? current : all.filter((r) => ownedBy(r, containerId, ifname, true));
}

function writeNew(path: string, content: string): void {
  const file = Deno.openSync(path, { write: true, createNew: true, mode: 0o600 });
  try {
    let rest = encoder.encode(content);
    while (rest.length) rest = rest.subarray(file.writeSync(rest));
  } finally {
    file.close();
  }
}

function tempName(store: LockedStore, label: string): string {
  const rand = crypto.getRandomValues(new Uint32Array(1))[0].toString(36);
  return join(store.dir, `${TEMP_PREFIX}${label}-${Deno.pid}-${rand}`);
}

/**
 * Reserves `ip` for the attachment: false if the address is already taken.
 * With the lock held; records the address as set `setIndex`'s last reserved.
 */
export function reserve(
  store: LockedStore,
  ip: IpAddr,
  containerId: string,
  ifname: string,
  setIndex: number,
): Promise<boolean> {
  try {
    return Promise.resolve(reserveSync(store, ip, containerId, ifname, setIndex));
  } catch (err) {
    return Promise.reject(err);
  }
}

function reserveSync(
  store: LockedStore,
  ip: IpAddr,
  containerId: string,
  ifname: string,
  setIndex: number,
): boolean {
  const name = formatIpAddr(ip);
  const finalPath = join(store.dir, name);
  const content = ownerRecord(containerId, ifname);
  const temp = tempName(store, name);
  try {
    writeNew(temp, content);
    try {
      Deno.linkSync(temp, finalPath);
    } catch (err) {
      if (err instanceof Deno.errors.AlreadyExists) return false;
      // A filesystem without hard links: fall back to host-local's O_EXCL create.
      removeQuietly(temp);
      try {
        writeNew(finalPath, content);
      } catch (err2) {
        if (err2 instanceof Deno.errors.AlreadyExists) return false;
        removeQuietly(finalPath);
        throw err2;
      }
    }
  } catch (err) {
    throw ioError(`cannot reserve ${name} in ${store.dir}`, err);
  } finally {
    removeQuietly(temp);
  }
  writeLastReserved(store, setIndex, name);
  return true;
}

function writeLastReserved(store: LockedStore, setIndex: number, name: string): void {
  // A hint only, rewritten in place under the lock (every reader and writer
  // holds it, host-local too). Neither replaced by rename nor truncated to
  // zero first: on ext4 either makes the kernel start writing the file's
  // data out (auto_da_alloc), ~0.5 ms on every reservation. A hint torn by a
  // crash only moves where the next scan starts (any address, or none, is
  // safe there).
  const path = join(store.dir, `${LAST_RESERVED_PREFIX}${setIndex}`);
  const bytes = encoder.encode(name);
  let file: Deno.FsFile | undefined;
  try {
    file = Deno.openSync(path, { write: true, create: true, mode: 0o600 });
    let rest = bytes;
    while (rest.length) rest = rest.subarray(file.writeSync(rest));
    file.truncateSync(bytes.length);
  } catch (err) {
    throw ioError(`cannot record last reserved address in ${path}`, err);
  } finally {
    file?.close();
  }
}

/** The last address reserved from set `setIndex`, undefined if none or unreadable. */
export function lastReservedIp(
  store: LockedStore,
  setIndex: number,
): Promise<IpAddr | undefined> {
  try {
    // Parsed exactly as written (no trimming), as host-local parses it.
    const text = Deno.readTextFileSync(join(store.dir, `${LAST_RESERVED_PREFIX}${setIndex}`));
    return Promise.resolve(parseIpAddr(text));
  } catch {
    return Promise.resolve(undefined);
  }
}

/** Deletes reservation files; ones already gone count as deleted. */
export function removeReservations(
  store: LockedStore,
  reservations: readonly Reservation[],
): Promise<void> {
  const errors: string[] = [];
  for (const r of reservations) {
    try {
      Deno.removeSync(join(store.dir, r.name));
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) errors.push(`${r.name}: ${String(err)}`);
    }
  }
  if (errors.length > 0) {
    return Promise.reject(
      new CniError(ErrorCode.IoFailure, `cannot release ${errors.join("; ")}`),
    );
  }
  return Promise.resolve();
}

/**
 * Releases every address of the attachment (records of the ID alone when
 * it has no `id\r\nifname` record) and returns what was released. Of the
 * addresses in `held` (those its result says it holds), a reservation whose
 * owner a crash cut short goes too.
 */
export async function releaseByOwner(
  store: LockedStore,
  containerId: string,
  ifname: string,
  held: readonly IpAddr[] = [],
): Promise<Reservation[]> {
  const all = await listReservations(store);
  const mine = reservationsOf(all, containerId, ifname);
  const torn = all.filter((r) =>
    !mine.includes(r) && held.some((ip) => ipAddrEquals(ip, r.ip)) &&
    cutFrom(r, containerId, ifname)
  );
  await removeReservations(store, [...mine, ...torn]);
  return [...mine, ...torn];
}

/**
 * True when `r`'s owner is a strict beginning of the attachment's own
 * record: a file a crash cut short (its size on disk, not all its bytes).
 * Only trusted for an address the attachment's result says it holds: then
 * no other owner can have written it.
 */
function cutFrom(r: Reservation, containerId: string, ifname: string): boolean {
  const text = r.ifname === undefined ? r.containerId : `${r.containerId}\r\n${r.ifname}`;
  const full = ownerRecord(containerId, ifname);
  return text !== "" && text.length < full.length && full.startsWith(text);
}

/** True when the store directory accepts a new file (STATUS). */
export function probeWritable(store: LockedStore): Promise<void> {
  const temp = tempName(store, "probe");
  try {
    Deno.writeTextFileSync(temp, "", { createNew: true, mode: 0o600 });
    return Promise.resolve();
  } catch (err) {
    return Promise.reject(err);
  } finally {
    removeQuietly(temp);
  }
}
