import assert from "node:assert/strict";
import { parseNetworkSelection } from "../kube/selection.ts";
import { planChange, type Recorded, selectionProblem } from "./plan.ts";

const sels = (text: string) => parseNetworkSelection(text, "ns");
const rec = (network: string | undefined, ifName: string, selected = true): Recorded => ({
  ...(network ? { network: `ns/${network}` } : {}),
  ifName,
  selected,
});
/** The plan in words: "-net2" leaves, "+green@net3" comes, "!x: why" refused. */
function words(recorded: Recorded[], text: string, links: string[] = []): string[] {
  const p = planChange(recorded, sels(text), new Set(links));
  return [
    ...p.leave.map((r) => `-${r.ifName}`),
    ...p.arrive.map((a) => `+${a.sel.name}@${a.ifName}`),
    ...p.refused.map((r) => `!${r.sel.name}: ${r.message}`),
  ];
}

const meta = [rec("cluster", "eth0", false), rec("blue", "net1")];

Deno.test("plan: what stays, goes and comes", () => {
  assert.deepEqual(words(meta, "blue"), []);
  assert.deepEqual(words(meta, "blue,green"), ["+green@net2"]);
  assert.deepEqual(words(meta, "green"), ["-net1", "+green@net1"], "a freed name is reused");
  assert.deepEqual(words(meta, ""), ["-net1"], "the default network never goes");
  assert.deepEqual(words(meta, "blue@net1,blue"), ["+blue@net2"], "repeats are separate");
  assert.deepEqual(words(meta, "blue@data0"), ["-net1", "+blue@data0"], "another interface");
});

Deno.test("plan: naming selections are matched first, new names skip what is taken", () => {
  const two = [...meta, rec("blue", "net2")];
  assert.deepEqual(words(two, "blue,blue@net1"), []);
  assert.deepEqual(words(two, "blue@net2"), ["-net1"]);
  assert.deepEqual(words(meta, "blue,green,red@net2"), ["+green@net3", "+red@net2"]);
  assert.deepEqual(words(meta, "blue,green", ["lo", "eth0", "net1", "net2"]), ["+green@net3"]);
  // A network the conf gives every pod (not selected) stays, and its name is busy.
  const withDefault = [rec("cluster", "eth0", false), rec("extra", "net1", false)];
  assert.deepEqual(words(withDefault, "extra"), ["+extra@net2"]);
});

Deno.test("plan: an interface already taken is refused for that selection alone", () => {
  assert.deepEqual(words(meta, "blue,green@net1"), [
    '!green: interface "net1" is already taken in the pod',
  ]);
  assert.deepEqual(words(meta, "blue,green@eth0,red"), [
    "+red@net2",
    '!green: interface "eth0" is already taken in the pod',
  ]);
  assert.deepEqual(words(meta, "blue,green@tap0", ["tap0"]), [
    '!green: interface "tap0" is already taken in the pod',
  ]);
  // Unless its holder leaves in the same change.
  assert.deepEqual(words(meta, "green@net1"), ["-net1", "+green@net1"]);
});

Deno.test("plan: annotation-wide problems", () => {
  assert.equal(selectionProblem(sels("a,b@net1")), undefined);
  assert.match(selectionProblem(sels("a@net1,b@net1"))!, /elements 1 and 2 both ask/);
  assert.match(selectionProblem(sels("a@eth0"))!, /belongs to the pod's default network/);
});
