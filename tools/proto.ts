/**
 * Generates hydra's NRI message code (`nri/proto/api_pb.ts`) from the
 * trimmed NRI API (`nri/proto/api.proto`) with buf and protoc-gen-es, both
 * pinned in tools/package.json, then formats it as the rest of the tree.
 *
 *   deno task proto                         regenerate nri/proto/api_pb.ts
 *   deno task proto --check                 exit 1 when the committed code is stale
 *   deno task proto --compare <api.proto>   check the trimmed copy against an upstream
 *                                           api.proto: every kept field, enum value and
 *                                           RPC must be there unchanged
 *
 * Runs without network: buf compiles the file locally and runs the local plugin.
 *
 * @module
 */

import { join } from "node:path";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
/** Where the proto, the template and the generated code live. */
export const PROTO_DIR = "nri/proto";
/** The generated files, relative to `PROTO_DIR`. */
export const GENERATED = ["api_pb.ts"];
const BUF = join(ROOT, "tools/node_modules/.bin/buf");

async function run(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, cwd: ROOT, stdin: "null" }).output();
  const text = new TextDecoder();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")} failed: ${text.decode(out.stderr).trim()}`);
  }
  return text.decode(out.stdout);
}

/** Generates and formats the code into `outDir`; returns the paths written. */
export async function generate(outDir: string): Promise<string[]> {
  try {
    await Deno.stat(BUF);
  } catch {
    throw new Error("buf is not installed: run ./dev.sh (or npm install in tools/)");
  }
  await run(BUF, [
    "generate",
    PROTO_DIR,
    "--template",
    join(PROTO_DIR, "buf.gen.yaml"),
    "--output",
    outDir,
  ]);
  const files = GENERATED.map((name) => join(outDir, name));
  for (const file of files) {
    // Empty messages are generated as `Message<...> & {}`, which deno lint bans.
    const code = await Deno.readTextFile(file);
    await Deno.writeTextFile(file, `// deno-lint-ignore-file ban-types\n${code}`);
  }
  // The tree's fmt settings (deno.json), given explicitly: outDir may be outside it.
  await run(Deno.execPath(), ["fmt", "--quiet", "--no-config", "--line-width=100", ...files]);
  return files;
}

/** Names of the generated files whose committed copy differs from a fresh generation. */
export async function staleFiles(): Promise<string[]> {
  const tmp = await Deno.makeTempDir({ prefix: "hydra-proto-" });
  try {
    await generate(tmp);
    const stale: string[] = [];
    for (const name of GENERATED) {
      const fresh = await Deno.readTextFile(join(tmp, name));
      const committed = await Deno.readTextFile(join(ROOT, PROTO_DIR, name)).catch(() => "");
      if (fresh !== committed) stale.push(join(PROTO_DIR, name));
    }
    return stale;
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}

interface Descriptor {
  name: string;
  field?: { number: number }[];
  value?: unknown[];
  method?: { name: string }[];
}

interface FileDescriptor {
  messageType?: Descriptor[];
  enumType?: Descriptor[];
  service?: Descriptor[];
}

/** The file descriptor of one .proto file, as buf's JSON. */
async function describe(protoFile: string): Promise<FileDescriptor> {
  const tmp = await Deno.makeTempDir({ prefix: "hydra-proto-" });
  try {
    await Deno.copyFile(protoFile, join(tmp, "api.proto"));
    const image = join(tmp, "image.json");
    await run(BUF, ["build", tmp, "--output", image]);
    return JSON.parse(await Deno.readTextFile(image)).file[0];
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}

/** What the trimmed copy has that `upstream` lacks or defines otherwise. */
export async function compareWithUpstream(upstream: string): Promise<string[]> {
  const mine = await describe(join(ROOT, PROTO_DIR, "api.proto"));
  const theirs = await describe(upstream);
  const problems: string[] = [];
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  const index = (list: Descriptor[] = []) => new Map(list.map((d) => [d.name, d]));
  const messages = index(theirs.messageType);
  for (const message of mine.messageType ?? []) {
    const other = messages.get(message.name);
    if (!other) problems.push(`message ${message.name} is gone`);
    for (const field of message.field ?? []) {
      const match = other?.field?.find((f) => f.number === field.number);
      if (other && !same(field, match)) {
        problems.push(`${message.name} field ${field.number} differs`);
      }
    }
  }
  const enums = index(theirs.enumType);
  for (const e of mine.enumType ?? []) {
    if (!same(e, enums.get(e.name))) problems.push(`enum ${e.name} differs`);
  }
  const services = index(theirs.service);
  for (const service of mine.service ?? []) {
    for (const method of service.method ?? []) {
      const match = services.get(service.name)?.method?.find((m) => m.name === method.name);
      if (!same(method, match)) problems.push(`rpc ${service.name}.${method.name} differs`);
    }
  }
  return problems;
}

async function main(args: string[]): Promise<number> {
  if (args[0] === "--check") {
    const stale = await staleFiles();
    for (const file of stale) console.error(`${file} is stale: run deno task proto`);
    return stale.length ? 1 : 0;
  }
  if (args[0] === "--compare" && args[1]) {
    const problems = await compareWithUpstream(args[1]);
    for (const problem of problems) console.error(problem);
    if (!problems.length) console.log(`${PROTO_DIR}/api.proto matches ${args[1]}`);
    return problems.length ? 1 : 0;
  }
  if (args.length) {
    console.error("usage: deno task proto [--check | --compare <upstream api.proto>]");
    return 2;
  }
  const tmp = await Deno.makeTempDir({ prefix: "hydra-proto-" });
  try {
    for (const file of await generate(tmp)) {
      await Deno.copyFile(file, join(ROOT, PROTO_DIR, file.slice(tmp.length + 1)));
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
  console.log(`generated ${GENERATED.map((name) => join(PROTO_DIR, name)).join(", ")}`);
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
