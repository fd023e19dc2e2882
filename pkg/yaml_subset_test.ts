import assert from "node:assert/strict";
import fc from "fast-check";
import { parse, stringify } from "yaml";
import { readYamlSubset } from "./yaml_subset.ts";

/**
 * What the full parser makes of `text`, or "error": strict, as
 * pkg/config_text.ts calls it ("silent" would also swallow its errors and
 * hand back what it made of a broken document).
 */
function full(text: string): unknown {
  try {
    return parse(text, { logLevel: "error" });
  } catch {
    return "error";
  }
}

/** Whatever the subset reads, the full parser reads the same. */
function agrees(text: string): boolean {
  const got = readYamlSubset(text);
  if (got === undefined) return false;
  const expected = full(text);
  assert.notEqual(expected, "error", `read a document the full parser refuses:\n${text}`);
  assert.deepEqual(got.value, expected, text);
  return true;
}

Deno.test("configuration files as written are read, the same as the full parser reads them", () => {
  const docs = [
    // The router's networks file as deploy/ ships it.
    `networks:
  - name: default # spec.podCIDRs of each node, via its InternalIP
    mode: routed # protocol 202, main table
    # The cluster CIDR: set yours before applying.
    allowedCIDRs: [10.244.0.0/16]
`,
    `networks:
- name: blue
  mode: vxlan
  vxlan: { vni: 4097, port: 4789, device: hv-blue }
  allowedCIDRs:
  - 10.10.0.0/16
  - "fd00:10::/64"
  nodeSelector: {}
- name: 'green'
  protocol: 203
  enabled: true
  note: it's a plain string, with a comma and a:colon
  empty:
`,
    `- { name: default, allowedCIDRs: [10.0.0.0/8] }`,
    // A kubeconfig as kubeadm writes it.
    `apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUM=
    server: https://10.0.0.1:6443
  name: kubernetes
contexts:
- context:
    cluster: kubernetes
    user: kubernetes-admin
  name: kubernetes-admin@kubernetes
current-context: kubernetes-admin@kubernetes
kind: Config
preferences: {}
users:
- name: kubernetes-admin
  user:
    client-certificate-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t
    token: "abc.def"
`,
    "plain string",
    "[1, -2, true, null, ~, x y]",
  ];
  for (const doc of docs) assert.ok(agrees(doc), `declined:\n${doc}`);
});

Deno.test("what is outside the subset is declined, never read differently", () => {
  const outside = [
    "a: &x 1\nb: *x",
    "a: !!str 1",
    "a: |\n  line\n",
    "a: >-\n  folded\n",
    "a: multi\n  line",
    "a: 1\na: 2",
    "a: 1.5",
    "a: 0x1f",
    "a: 012",
    "a: .inf",
    "a: 99999999999999999999",
    '"a\\tb": 1',
    'a: "x\\ny"',
    "---\na: 1",
    "a: - b",
    "? a\n: b",
    "a:\n\t- b",
    "1: one",
    "true: yes",
    "__proto__: {}",
    "a: [1, 2,]",
    "a: [1,\n  2]",
    "a: b: c",
    "",
    "# only a comment",
    `${"k".repeat(1100)}: 1`,
    "a: x\u2028y",
    "a: x\u0085y",
    // A lone scalar below its key: with a comment between, the YAML package refuses it.
    "networks:\n# c\n    a\nallowedCIDRs: [10.244.0.0/16]\n",
    "a:\n  b\n",
    "-\n  x\n",
  ];
  for (const doc of outside) assert.equal(readYamlSubset(doc), undefined, doc);
});

const KEYS = ["name", "mode", "a", "b", "allowedCIDRs", "k8s.io/name", "x_y", "vni", "null", "1"];
const STRINGS = [
  "default",
  "10.244.0.0/16",
  "fd00::/64",
  "true",
  "False",
  "null",
  "~",
  "yes",
  "1.5",
  "-1",
  "+1",
  "0x1f",
  "007",
  "1e3",
  ".inf",
  "a: b",
  "a:b",
  "#x",
  "x #y",
  "x#y",
  "- a",
  "-a",
  "it's",
  '"q"',
  "[a]",
  "{a}",
  "a, b",
  "*x",
  "&x",
  "!x",
  "|",
  ">",
  "%",
  "@",
  "`",
  " lead",
  "trail ",
  "",
  "a  b",
  "a\\b",
  "é",
];

const scalar = fc.oneof(
  fc.constantFrom(...STRINGS),
  fc.string({ maxLength: 8 }),
  fc.integer(),
  fc.double({ noNaN: true }),
  fc.boolean(),
  fc.constant(null),
);
const { value: document } = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    scalar,
    fc.array(tie("value"), { maxLength: 4 }),
    fc.dictionary(fc.constantFrom(...KEYS), tie("value"), { maxKeys: 4 }),
  ),
}));
const options = fc.record({
  indentSeq: fc.boolean(),
  indent: fc.constantFrom(2, 4),
  defaultStringType: fc.constantFrom("PLAIN", "QUOTE_SINGLE", "QUOTE_DOUBLE") as fc.Arbitrary<
    "PLAIN" | "QUOTE_SINGLE" | "QUOTE_DOUBLE"
  >,
  collectionStyle: fc.constantFrom("any", "block", "flow") as fc.Arbitrary<
    "any" | "block" | "flow"
  >,
});

Deno.test("on written documents the subset reads what the full parser reads, or declines", () => {
  let read = 0;
  let runs = 0;
  fc.assert(
    fc.property(document, options, (value, opts) => {
      runs++;
      if (agrees(stringify(value, { ...opts, lineWidth: 0 }))) read++;
    }),
    { numRuns: 3000 },
  );
  // Not a vacuous pass: most written documents are read.
  assert.ok(read > runs / 3, `read only ${read} of ${runs}`);
});

const ALPHABET = [..." \n-:#'\"[]{},&*!|>?%@`~abcxyz019.\\/"];
const BASES = [
  "networks:\n  - name: default\n    mode: routed\n    allowedCIDRs: [10.244.0.0/16]\n",
  "- a: 1\n  b: [x, 'y', \"z\"]\n- c:\n  - d # e\n",
  "a: {b: c, d: [1, 2]}\nf: g h\n",
  "x:\n- a\n-   b: 1\n    c: 2\n-\n  - y\nz: # c\n  w: 'it''s'\n  v: \"q\"\n",
];

Deno.test("on damaged documents the subset reads what the full parser reads, or declines", () => {
  let read = 0;
  let runs = 0;
  const edit = fc.record({
    at: fc.nat(),
    del: fc.integer({ min: 0, max: 2 }),
    insert: fc.array(fc.constantFrom(...ALPHABET), { maxLength: 3 }),
  });
  fc.assert(
    fc.property(fc.constantFrom(...BASES), fc.array(edit, { minLength: 1, maxLength: 4 }), (
      base,
      edits,
    ) => {
      let text = base;
      for (const e of edits) {
        const at = e.at % (text.length + 1);
        text = text.slice(0, at) + e.insert.join("") + text.slice(at + e.del);
      }
      runs++;
      if (agrees(text)) read++;
    }),
    { numRuns: 5000 },
  );
  // Edits that keep a document inside the subset are common: those were compared.
  assert.ok(read > runs / 10, `read only ${read} of ${runs}`);
});
