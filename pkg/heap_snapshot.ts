/**
 * Heap snapshots on request, for finding where a long-running role's memory
 * goes: with a folder given, SIGUSR2 writes a V8 heap snapshot there
 * (`<role>-<pid>-<time>.heapsnapshot`, readable by Chrome's DevTools or
 * `tools/heap_summary.ts`). Off unless asked for: a snapshot pauses the
 * process for a moment and can be as large as the heap. The folder should
 * be private to root (the snapshot holds whatever the heap holds, tokens
 * included); the file is created 0600.
 *
 * @module
 */

/** Writes heap snapshots into `dir` on SIGUSR2; returns the stopper. */
export function heapSnapshotsOnSignal(
  dir: string,
  role: string,
  onWritten: (path: string) => void,
  onError: (err: unknown) => void,
): () => void {
  const handler = async () => {
    try {
      const { writeHeapSnapshot } = await import("node:v8");
      const stamp = new Date().toISOString().replaceAll(":", "-");
      const path = `${dir}/${role}-${Deno.pid}-${stamp}.heapsnapshot`;
      // Created private first, so the snapshot is never readable by others.
      Deno.writeTextFileSync(path, "", { mode: 0o600, createNew: true });
      onWritten(writeHeapSnapshot(path));
    } catch (err) {
      onError(err);
    }
  };
  Deno.addSignalListener("SIGUSR2", handler);
  return () => Deno.removeSignalListener("SIGUSR2", handler);
}
