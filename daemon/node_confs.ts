/**
 * The node's own CNI configuration, as the daemon reads it to run an
 * invocation handed over under `daemonExec`: the network of a given name
 * that has a plugin of a given type, found in the node's conf folders the
 * way libcni finds a network by name (folder by folder, `.conflist` files
 * before `.conf`/`.json`, each in lexical order). A file that cannot be
 * parsed is skipped with a log line (once per version of the file): it
 * must not hide the others.
 *
 * Files are parsed again only when they change (size, time, inode), so a
 * lookup costs a folder listing and a stat per file.
 *
 * @module
 */

import {
  confFiles,
  type ConfList,
  LIST_EXTENSIONS,
  loadConfFile,
  SINGLE_EXTENSIONS,
} from "../cni/conf.ts";
import type { NetConf } from "../cni/types.ts";
import type { Logger } from "../pkg/log.ts";

/** A plugin of a node conf, as the daemon will run it. */
export interface NodeConf {
  list: ConfList;
  /** The plugin object (first of its type in the list). */
  plugin: NetConf;
  /** Its position in the list. */
  index: number;
  /** The file it came from. */
  path: string;
}

/** Looks up node confs. */
export interface NodeConfs {
  /** The network `name` with a plugin of type `type`; undefined when there is none. */
  find(name: string, type: string): Promise<NodeConf | undefined>;
}

interface Parsed {
  stamp: string;
  list?: ConfList;
}

function stampOf(info: Deno.FileInfo): string {
  return `${info.size}:${info.mtime?.getTime()}:${info.ino}`;
}

/** A lookup over `dirs` (searched in order). */
export function nodeConfs(dirs: readonly string[], log: Logger): NodeConfs {
  const parsed = new Map<string, Parsed>();

  async function load(path: string): Promise<ConfList | undefined> {
    let info: Deno.FileInfo;
    try {
      info = Deno.statSync(path);
    } catch {
      return undefined;
    }
    const stamp = stampOf(info);
    const known = parsed.get(path);
    if (known?.stamp === stamp) return known.list;
    let list: ConfList | undefined;
    try {
      list = await loadConfFile(path);
    } catch (err) {
      log.warn("node conf cannot be parsed; skipped", { path, error: (err as Error).message });
    }
    parsed.set(path, { stamp, list });
    return list;
  }

  return {
    async find(name, type) {
      for (const dir of dirs) {
        for (const extensions of [LIST_EXTENSIONS, SINGLE_EXTENSIONS]) {
          for (const path of await confFiles(dir, extensions).catch(() => [])) {
            const list = await load(path);
            if (list?.name !== name) continue;
            const index = list.plugins.findIndex((p) => p.type === type);
            if (index >= 0) return { list, plugin: list.plugins[index], index, path };
          }
        }
      }
      return undefined;
    },
  };
}
