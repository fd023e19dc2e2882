/**
 * Fake CNI plugins for tests of plugin invocation and list running: small
 * shell scripts that log every call (command, CNI_* variables, stdin) and
 * answer ADD with a result naming themselves. A file `fail-<type>-<COMMAND>`
 * in the folder makes that call fail with code 42 (or the code in the file).
 * Calls may run side by side: each takes a number of its own.
 *
 * @module
 */

import { writeScript } from "./helpers.ts";

/** One logged call of a fake plugin. */
export interface FakeCall {
  type: string;
  command: string;
  containerId: string;
  ifName: string;
  netns: string;
  args: string;
  path: string;
  stdin: Record<string, unknown>;
}

/**
 * Writes fake plugins named `types` into `dir`; their results use
 * `resultVersion` and the address 10.0.<index>.<n>/24 (n = call number).
 */
export async function makeFakePlugins(
  dir: string,
  types: string[],
  resultVersion = "1.0.0",
): Promise<void> {
  await Deno.mkdir(`${dir}/log`, { recursive: true });
  for (const [index, type] of types.entries()) {
    await writeScript(
      `${dir}/${type}`,
      `n=0
# A number of its own even when calls run side by side: mkdir is atomic.
while ! mkdir ${dir}/log/.n$n 2>/dev/null; do n=$((n + 1)); done
seq=$(printf %04d "$n")
{ printf '%s\\n' "$CNI_COMMAND" "$CNI_CONTAINERID" "$CNI_IFNAME" "$CNI_NETNS" "$CNI_ARGS" "$CNI_PATH"; cat; } > ${dir}/log/$seq-${type}
if [ -f ${dir}/fail-${type}-$CNI_COMMAND ]; then
  code=$(cat ${dir}/fail-${type}-$CNI_COMMAND); [ -n "$code" ] || code=42
  echo "{\\"code\\":$code,\\"msg\\":\\"${type} refuses $CNI_COMMAND\\"}"; exit 1
fi
if [ "$CNI_COMMAND" = ADD ]; then
  echo '{"cniVersion":"${resultVersion}","interfaces":[{"name":"${type}-if","sandbox":"'"$CNI_NETNS"'"}],"ips":[{"interface":0,"address":"10.0.${index}.'"$((n + 1))"'/24"}]}'
fi`,
    );
  }
}

/** The calls made so far, oldest first. */
export async function readCalls(dir: string): Promise<FakeCall[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(`${dir}/log`)) if (e.isFile) names.push(e.name);
  const calls: FakeCall[] = [];
  for (const name of names.sort()) {
    const lines = (await Deno.readTextFile(`${dir}/log/${name}`)).split("\n");
    const [command, containerId, ifName, netns, args, path] = lines;
    calls.push({
      type: name.slice(5),
      command,
      containerId,
      ifName,
      netns,
      args,
      path,
      stdin: JSON.parse(lines.slice(6).join("\n")),
    });
  }
  return calls;
}

/** Forgets the calls logged so far. */
export async function clearCalls(dir: string): Promise<void> {
  await Deno.remove(`${dir}/log`, { recursive: true });
  await Deno.mkdir(`${dir}/log`);
}

/** Makes `type`'s next `command` calls fail with `code`. */
export async function failNext(
  dir: string,
  type: string,
  command: string,
  code = 42,
): Promise<void> {
  await Deno.writeTextFile(`${dir}/fail-${type}-${command}`, String(code));
}
