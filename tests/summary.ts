/**
 * Prints the plain line "N passed, N failed" from a JUnit report written by
 * `deno test --junit-path`, so a run that executed no test is visible.
 *
 * @module
 */

const path = Deno.args[0];
if (!path) {
  console.error("usage: summary.ts <junit.xml>");
  Deno.exit(2);
}
let xml = "";
try {
  xml = await Deno.readTextFile(path);
} catch {
  console.log("0 passed, 0 failed");
  Deno.exit(1);
}
// Count top-level test cases (steps are reported inside their parent case).
let passed = 0;
let failed = 0;
let skipped = 0;
for (const match of xml.matchAll(/<testcase\b[^>]*?(\/>|>([\s\S]*?)<\/testcase>)/g)) {
  const body = match[2] ?? "";
  if (/<failure\b|<error\b/.test(body)) failed++;
  else if (/<skipped\b/.test(body)) skipped++;
  else passed++;
}
console.log(`${passed} passed, ${failed} failed` + (skipped ? `, ${skipped} skipped` : ""));
Deno.exit(failed > 0 || passed === 0 ? 1 : 0);
