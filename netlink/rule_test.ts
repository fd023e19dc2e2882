import assert from "node:assert/strict";
import { inNetns } from "../tests/helpers/netlink.ts";
import { isExists } from "./errors.ts";
import { addRule, delRule, listRules, type Rule } from "./rule.ts";

Deno.test(
  "rule: add, list by protocol, delete",
  inNetns(1, (h) => {
    const from: Rule = {
      family: 4,
      src: "10.250.0.0/16",
      table: 210,
      priority: 1000,
      protocol: 210,
    };
    const to: Rule = { family: 4, dst: "10.250.0.0/16", table: 210, priority: 1000, protocol: 210 };
    addRule(h, from);
    addRule(h, to);
    assert.throws(() => addRule(h, from), isExists);
    const mine = listRules(h, { family: 4, protocol: 210 });
    assert.deepEqual(
      mine.map((r) => ({ src: r.src, dst: r.dst, table: r.table, priority: r.priority })),
      [
        { src: "10.250.0.0/16", dst: undefined, table: 210, priority: 1000 },
        { src: undefined, dst: "10.250.0.0/16", table: 210, priority: 1000 },
      ],
    );
    assert.ok(listRules(h, { family: 4 }).some((r) => r.table === 254), "the main rule is listed");
    delRule(h, from);
    assert.equal(listRules(h, { family: 4, protocol: 210 }).length, 1);
  }),
);
