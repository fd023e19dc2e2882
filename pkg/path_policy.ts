/**
 * Path confinement: whether a path someone else chose (a key of a network
 * definition read from the API server) lies under one of the roots the
 * node allows. Purely lexical: the path must be absolute and is judged
 * after `.` and `..` are resolved, so `/var/lib/cni/../../etc` is `/etc`.
 * Symbolic links are not followed: the roots are the node's own folders,
 * and whoever may plant a link in them is root on the node already.
 *
 * @module
 */

/** A path that is not absolute, holds a NUL, or lies outside every root. */
export class PathNotAllowedError extends Error {
  readonly path: string;
  readonly roots: readonly string[];

  constructor(path: string, roots: readonly string[], why: string) {
    super(why);
    this.name = "PathNotAllowedError";
    this.path = path;
    this.roots = roots;
  }
}

/**
 * `path` with `.`, `..` and repeated slashes resolved; undefined when it is
 * not absolute or holds a NUL byte. `..` at the top stays at `/`.
 */
export function normalizeAbsolute(path: string): string | undefined {
  if (!path.startsWith("/") || path.includes("\0")) return undefined;
  const out: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") out.pop();
    else out.push(part);
  }
  return "/" + out.join("/");
}

/** True when normalized `path` is `root` or lies below it. */
function under(path: string, root: string): boolean {
  return root === "/" || path === root || path.startsWith(root + "/");
}

/**
 * Checks `path` against `roots` (each absolute); returns it normalized, or
 * throws {@link PathNotAllowedError} saying why.
 */
export function confinePath(path: string, roots: readonly string[]): string {
  const norm = normalizeAbsolute(path);
  if (norm === undefined) {
    throw new PathNotAllowedError(path, roots, `${JSON.stringify(path)} is not an absolute path`);
  }
  const normRoots = roots.map((r) => normalizeAbsolute(r)).filter((r): r is string => !!r);
  if (!normRoots.some((r) => under(norm, r))) {
    throw new PathNotAllowedError(
      path,
      roots,
      `${JSON.stringify(path)} is outside the allowed roots (${
        roots.length ? roots.join(", ") : "none"
      })`,
    );
  }
  return norm;
}
