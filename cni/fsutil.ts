/**
 * Crash-safe file writes for state other processes read: write a temp file
 * beside the target, fsync it, rename it over the target, fsync the folder.
 * A reader sees the old file or the new one, never a torn one.
 *
 * @module
 */


/** Creates `dir` (and parents) with `mode` if missing. */
export async function ensureDir(dir: string, mode: number): Promise<void> {
  await Deno.mkdir(dir, { recursive: true, mode });
}

/** Writes `data` to `path` atomically with file mode `mode`. */
export async function writeFileAtomic(
  path: string,
  data: Uint8Array | string,
  mode = 0o600,
): Promise<void> {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const slash = path.lastIndexOf("/");
  // Plain string work: node:path costs tens of ms to load on the exec path.
  const dir = slash > 0 ? path.slice(0, slash) : slash === 0 ? "/" : ".";
  const rand = crypto.getRandomValues(new Uint32Array(1))[0].toString(36);
  const tmp = `${dir}/.${path.slice(slash + 1)}.tmp-${Deno.pid}-${rand}`;
  const file = await Deno.open(tmp, { write: true, createNew: true, mode });
  try {
    let rest = bytes;
    while (rest.length) rest = rest.subarray(await file.write(rest));
    await file.sync();
  } catch (err) {
    file.close();
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
  file.close();
  try {
    // mode on create is masked by the umask; state files must be exactly `mode`.
    await Deno.chmod(tmp, mode);
    await Deno.rename(tmp, path);
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
  try {
    const d = await Deno.open(dir, { read: true });
    try {
      await d.sync();
    } finally {
      d.close();
    }
  } catch {
    // Some filesystems refuse fsync on a directory; the rename is done.
  }
}

/** Removes `path`; true if it existed. */
export async function removeIfExists(path: string): Promise<boolean> {
  try {
    await Deno.remove(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}
