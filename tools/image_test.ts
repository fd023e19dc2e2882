/**
 * The image builder's readers of `ldd` and `ldconfig -p` output (the whole build runs in
 * tests/infra/hydra_image_test.ts).
 */

import assert from "node:assert/strict";
import { parseLdconfig, parseLdd } from "./image.ts";

Deno.test("parseLdd lists each library and the loader once, sorted", () => {
  const output = [
    "/usr/local/bin/deno:",
    "\tlinux-vdso.so.1 (0x00007ffd)",
    "\tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f01)",
    "\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f02)",
    "\t/lib64/ld-linux-x86-64.so.2 (0x00007f03)",
    "/usr/bin/dash:",
    "\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f04)",
  ].join("\n");
  assert.deepEqual(parseLdd(output), [
    "/lib/x86_64-linux-gnu/libc.so.6",
    "/lib/x86_64-linux-gnu/libgcc_s.so.1",
    "/lib64/ld-linux-x86-64.so.2",
  ]);
});

Deno.test("parseLdconfig finds the 64-bit library of each soname", () => {
  const output = [
    "1234 libs found in cache `/etc/ld.so.cache'",
    "\tlibnftables.so.1 (libc6) => /usr/lib/i386-linux-gnu/libnftables.so.1",
    "\tlibnftables.so.1 (libc6,x86-64) => /lib/x86_64-linux-gnu/libnftables.so.1",
    "\tlibnftnl.so.11 (libc6,x86-64) => /lib/x86_64-linux-gnu/libnftnl.so.11",
  ].join("\n");
  assert.deepEqual(parseLdconfig(output, ["libnftables.so.1"]), [
    "/lib/x86_64-linux-gnu/libnftables.so.1",
  ]);
});

Deno.test("parseLdconfig says which library is missing and its package", () => {
  assert.throws(
    () =>
      parseLdconfig(
        "\tlibc.so.6 (libc6,x86-64) => /lib/x86_64-linux-gnu/libc.so.6\n",
        [
          "libnftables.so.1",
        ],
      ),
    /libnftables\.so\.1 is not installed .*libnftables1/,
  );
});
