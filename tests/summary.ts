/**
 * Prints the plain line "N passed, N failed" from a JUnit report written by
 * `deno test --junit-path`, so a run that executed no test is visible.
 *
 * Under CI (the `CI` environment variable set, as .ci/run and `./dev.sh
 * test` do) a skipped test counts as a failure: a test that cannot run
 * where it should has not shown anything. The skipped tests are named on
 * stderr. Outside CI skips are only counted.
 *
 *   deno run --allow-read --allow-env tests/summary.ts <junit.xml>
 *
 * @module
 */

/** The outcome counts of a JUnit report, and the names of the skipped tests. */
export interface Summary {
  passed: number;
  failed: number;
  skipped: string[];
}

function unescape(text: string): string {
  return text.replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">").replace(/&amp;/g, "&");
}

/** Counts the top-level test cases of a JUnit report (steps are reported inside their case). */
export function summarize(xml: string): Summary {
  const out: Summary = { passed: 0, failed: 0, skipped: [] };
  for (const match of xml.matchAll(/<testcase\b([^>]*?)(\/>|>([\s\S]*?)<\/testcase>)/g)) {
    const body = match[3] ?? "";
    if (/<failure\b|<error\b/.test(body)) out.failed++;
    else if (/<skipped\b/.test(body)) {
      out.skipped.push(unescape(/\bname="([^"]*)"/.exec(match[1])?.[1] ?? "(unnamed)"));
    } else out.passed++;
  }
  return out;
}

/** True when running under CI: `CI` set to anything but "", "0" or "false". */
export function underCi(env: (name: string) => string | undefined): boolean {
  const v = env("CI");
  return v !== undefined && v !== "" && v !== "0" && v.toLowerCase() !== "false";
}

/** The summary line, and whether the run passes. */
export function verdict(s: Summary, ci: boolean): { line: string; ok: boolean } {
  const skipped = s.skipped.length;
  const failed = s.failed + (ci ? skipped : 0);
  const note = skipped ? `, ${skipped} skipped${ci ? " (failures under CI)" : ""}` : "";
  return { line: `${s.passed} passed, ${failed} failed${note}`, ok: failed === 0 && s.passed > 0 };
}

if (import.meta.main) {
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
  const s = summarize(xml);
  const ci = underCi((name) => Deno.env.get(name));
  for (const name of s.skipped) console.error(`skipped: ${name}`);
  const { line, ok } = verdict(s, ci);
  console.log(line);
  Deno.exit(ok ? 0 : 1);
}
