/**
 * A reader for the plain YAML configuration files are written in: block
 * mappings and sequences, one-line flow collections, plain and quoted
 * scalars on one line, comments. What it reads it reads exactly as YAML 1.2
 * with the core schema does (the `yaml` package's default); anything else
 * (anchors, tags, block scalars, multi-line scalars, scalars whose type is
 * not obvious, duplicate keys, tabs) it declines, and the caller hands the
 * text to the full parser instead (see config_text.ts).
 *
 * Why: the full parser is a CommonJS npm package, and loading it brings up
 * the runtime's Node compatibility layer, about 8.5 MiB of a long-running
 * role's memory for a file read once at start.
 *
 * @module
 */

/** One line with content: its indentation and the rest, trailing spaces cut. */
interface Line {
  indent: number;
  text: string;
}

interface Reader {
  lines: Line[];
  i: number;
}

/** Thrown (and caught in {@link readYamlSubset}) for anything outside the subset. */
const DECLINED = Symbol("declined");

function decline(): never {
  throw DECLINED;
}

/**
 * The value of a YAML document, or undefined when the document is outside
 * the subset this module reads (the full parser then decides what it is).
 */
export function readYamlSubset(text: string): { value: unknown } | undefined {
  try {
    const lines = contentLines(text);
    if (lines.length === 0) return undefined;
    const r: Reader = { lines, i: 0 };
    const value = readNode(r, lines[0].indent);
    if (r.i !== lines.length) decline();
    return { value };
  } catch (err) {
    if (err === DECLINED) return undefined;
    throw err;
  }
}

/** The lines that carry content; declines tabs, control characters, markers and directives. */
function contentLines(text: string): Line[] {
  // deno-lint-ignore no-control-regex
  if (/[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\ufeff]/.test(text)) decline();
  const out: Line[] = [];
  for (const raw of text.split("\n")) {
    const rest = raw.trimStart();
    if (rest === "" || rest.startsWith("#")) continue;
    const indent = raw.length - rest.length;
    if (indent === 0 && /^(---|\.\.\.|%)/.test(rest)) decline();
    out.push({ indent, text: rest.trimEnd() });
  }
  return out;
}

function isItem(text: string): boolean {
  return text === "-" || text.startsWith("- ");
}

/** The node whose first line is `r.lines[r.i]`, at `indent`. */
function readNode(r: Reader, indent: number): unknown {
  const text = r.lines[r.i].text;
  if (isItem(text)) return readSequence(r, indent);
  if (mappingKey(text)) return readMapping(r, indent);
  const value = inlineValue(text);
  r.i++;
  endOfValue(r, indent);
  return value;
}

/** After a line that ended its value: a deeper line would continue it (a multi-line scalar). */
function endOfValue(r: Reader, indent: number): void {
  if (r.i < r.lines.length && r.lines[r.i].indent > indent) decline();
}

/**
 * The block nested under the line just read (deeper than `indent`), or
 * null. Only a list or a mapping: a lone scalar on the lines below its key
 * is where readers part ways (with a comment line between, the YAML package
 * takes it for the start of a multi-line key and refuses the document).
 */
function nestedBlock(r: Reader, indent: number): unknown {
  if (r.i < r.lines.length && r.lines[r.i].indent > indent) {
    const text = r.lines[r.i].text;
    if (!isItem(text) && !mappingKey(text)) decline();
    return readNode(r, r.lines[r.i].indent);
  }
  return null;
}

function readSequence(r: Reader, indent: number): unknown[] {
  const out: unknown[] = [];
  while (r.i < r.lines.length && r.lines[r.i].indent === indent && isItem(r.lines[r.i].text)) {
    const after = r.lines[r.i].text.slice(1);
    const rest = after.trimStart();
    if (rest === "" || rest.startsWith("#")) {
      r.i++;
      out.push(nestedBlock(r, indent));
      continue;
    }
    if (isItem(rest)) decline(); // a sequence in a sequence on one line
    if (mappingKey(rest)) {
      // A mapping starting on the item's line: its keys line up with the first.
      const column = indent + 1 + (after.length - rest.length);
      r.lines[r.i] = { indent: column, text: rest };
      out.push(readMapping(r, column));
      continue;
    }
    out.push(inlineValue(rest));
    r.i++;
    endOfValue(r, indent);
  }
  return out;
}

function readMapping(r: Reader, indent: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  while (r.i < r.lines.length && r.lines[r.i].indent === indent) {
    const entry = mappingKey(r.lines[r.i].text) ?? decline();
    if (Object.hasOwn(out, entry.key)) decline(); // YAML refuses it; let the full parser say so
    let value: unknown;
    if (entry.rest === "" || entry.rest.startsWith("#")) {
      r.i++;
      const next = r.lines[r.i];
      // A sequence may sit at its key's own indentation.
      value = next && next.indent === indent && isItem(next.text)
        ? readSequence(r, indent)
        : nestedBlock(r, indent);
    } else {
      value = inlineValue(entry.rest);
      r.i++;
      endOfValue(r, indent);
    }
    out[entry.key] = value;
  }
  return out;
}

/**
 * Keys read as plain strings: a name, a domain-style or path-style name
 * (YAML bounds an implicit key at 1024 characters; these stay well below).
 */
const PLAIN_KEY = /^[A-Za-z_][A-Za-z0-9_./-]{0,252}$/;

/**
 * The key of a `key: value` or `key:` line and what follows the colon;
 * undefined when the line is no mapping entry. Declines keys YAML would not
 * read as this very string (or JavaScript would treat specially).
 */
function mappingKey(text: string): { key: string; rest: string } | undefined {
  let key: string;
  let after: number;
  if (text[0] === "[" || text[0] === "{") return undefined; // a flow collection (as a key: declined later)
  if (text[0] === "'" || text[0] === '"') {
    const q = quoted(text, 0);
    if (text[q.end] !== ":") return undefined;
    if (q.end > 253) decline();
    key = q.value;
    after = q.end + 1;
  } else {
    const colon = text.search(/:( |$)/);
    if (colon < 0) return undefined;
    key = text.slice(0, colon);
    if (!PLAIN_KEY.test(key) || typeof resolvePlain(key) !== "string") decline();
    after = colon + 1;
  }
  if (after < text.length && text[after] !== " ") return undefined;
  if (key === "__proto__") decline();
  return { key, rest: text.slice(after).trimStart() };
}

/** A value on the rest of a line: flow collection, quoted or plain scalar, then maybe a comment. */
function inlineValue(text: string): unknown {
  if (text[0] === "[" || text[0] === "{" || text[0] === "'" || text[0] === '"') {
    const { value, end } = flowValue(text, 0);
    lineEnd(text, end);
    return value;
  }
  // Indicators that start something else: aliases, anchors, tags, block scalars, directives…
  if (/^[?:,\]}#&*!|>%@`]/.test(text) || isItem(text)) decline();
  const comment = text.search(/ #/);
  const plain = (comment < 0 ? text : text.slice(0, comment)).trimEnd();
  if (/: |:$/.test(plain)) decline(); // a mapping where none can start
  return resolvePlain(plain);
}

/** Nothing but spaces and a comment may follow a value. */
function lineEnd(text: string, pos: number): void {
  const rest = text.slice(pos);
  if (rest.trim() === "") return;
  if (rest[0] === " " && rest.trimStart().startsWith("#")) return;
  decline();
}

/** A value of a one-line flow collection (or a quoted scalar) from `pos`. */
function flowValue(text: string, pos: number): { value: unknown; end: number } {
  const c = text[pos];
  if (c === "[") return flowSequence(text, pos);
  if (c === "{") return flowMapping(text, pos);
  if (c === "'" || c === '"') return quoted(text, pos);
  const m = /^[^,[\]{}:#'"\s][^,[\]{}:#]*/.exec(text.slice(pos)) ?? decline();
  const plain = m[0].trimEnd();
  if (/^[&*!|>%@`]|^[-?]( |$)/.test(plain)) decline();
  return { value: resolvePlain(plain), end: pos + plain.length };
}

function skipSpaces(text: string, pos: number): number {
  while (text[pos] === " ") pos++;
  return pos;
}

function flowSequence(text: string, pos: number): { value: unknown[]; end: number } {
  const out: unknown[] = [];
  pos = skipSpaces(text, pos + 1);
  if (text[pos] === "]") return { value: out, end: pos + 1 };
  for (;;) {
    const item = flowValue(text, pos);
    out.push(item.value);
    pos = skipSpaces(text, item.end);
    if (text[pos] === "]") return { value: out, end: pos + 1 };
    if (text[pos] !== ",") decline();
    pos = skipSpaces(text, pos + 1);
    if (text[pos] === "]") decline(); // a trailing comma
  }
}

function flowMapping(text: string, pos: number): { value: Record<string, unknown>; end: number } {
  const out: Record<string, unknown> = {};
  pos = skipSpaces(text, pos + 1);
  if (text[pos] === "}") return { value: out, end: pos + 1 };
  for (;;) {
    const colon = text.indexOf(": ", pos);
    if (colon < 0) decline();
    const key = text.slice(pos, colon);
    if (!PLAIN_KEY.test(key) || typeof resolvePlain(key) !== "string") decline();
    if (key === "__proto__" || Object.hasOwn(out, key)) decline();
    const item = flowValue(text, skipSpaces(text, colon + 2));
    out[key] = item.value;
    pos = skipSpaces(text, item.end);
    if (text[pos] === "}") return { value: out, end: pos + 1 };
    if (text[pos] !== ",") decline();
    pos = skipSpaces(text, pos + 1);
    if (text[pos] === "}") decline();
  }
}

/** A quoted scalar on one line; double-quoted ones only without escapes. */
function quoted(text: string, pos: number): { value: string; end: number } {
  const q = text[pos];
  if (q === '"') {
    const close = text.indexOf('"', pos + 1);
    if (close < 0) decline();
    const value = text.slice(pos + 1, close);
    if (value.includes("\\")) decline();
    return { value, end: close + 1 };
  }
  let value = "";
  let i = pos + 1;
  for (;;) {
    const close = text.indexOf("'", i);
    if (close < 0) decline();
    value += text.slice(i, close);
    if (text[close + 1] !== "'") return { value, end: close + 1 };
    value += "'";
    i = close + 2;
  }
}

/**
 * A plain scalar as the core schema reads it: null, a boolean, a decimal
 * integer, else a string. Other numbers (floats, octal, hexadecimal,
 * leading zeros, beyond 2^53) are declined.
 */
function resolvePlain(s: string): unknown {
  if (s === "") decline();
  if (/^(~|null|Null|NULL)$/.test(s)) return null;
  if (/^(true|True|TRUE)$/.test(s)) return true;
  if (/^(false|False|FALSE)$/.test(s)) return false;
  if (/^-?[1-9][0-9]*$|^0$/.test(s)) {
    const n = Number(s);
    return Number.isSafeInteger(n) ? n : decline();
  }
  if (
    /^[-+]?[0-9]+$/.test(s) || /^0[ox]/.test(s) ||
    /^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$/.test(s) ||
    /^[-+]?\.(inf|Inf|INF)$/.test(s) || /^\.(nan|NaN|NAN)$/.test(s)
  ) {
    decline();
  }
  return s;
}
