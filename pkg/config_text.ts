/**
 * Reading a configuration file that may be YAML or JSON (a router's networks
 * file, a node list, a hybrid networks file, a kubeconfig) without loading a
 * YAML parser for the usual file.
 *
 * Text that starts as JSON is JSON. Anything else goes to the subset reader
 * (yaml_subset.ts), which reads plain YAML exactly as YAML does; only what it
 * declines reaches the full YAML parser, loaded on first use. That parser is
 * a CommonJS npm package: loading it brings up the runtime's Node layer,
 * about 8.5 MiB that a long-running role would otherwise carry for a file it
 * read once.
 *
 * @module
 */

import { readYamlSubset } from "./yaml_subset.ts";

/**
 * The document in `text` (YAML or JSON). Throws the parser's error (with
 * its message) for text that is neither.
 */
export async function parseConfigText(text: string): Promise<unknown> {
  const head = text.trimStart()[0];
  if (head === "{" || head === "[") {
    try {
      return JSON.parse(text);
    } catch {
      // Flow-style YAML starts the same way: the YAML readers decide.
    }
  }
  const read = readYamlSubset(text);
  if (read) return read.value;
  const { parse } = await import("yaml");
  return parse(text);
}
