/**
 * The node side of the cluster-wide IPAM: allocates and releases addresses
 * of one network for one node, writing every change to the API before it
 * answers.
 *
 * Where an address comes from, in order:
 * 1. an allocation the request already holds: the same sandbox and
 *    interface (a retried ADD), the same pod UID and interface (a new
 *    sandbox of the same pod, after a failed ADD or a crash), or — for a
 *    StatefulSet pod — the same pod name and interface (the address stays
 *    with the name across delete and re-create, on any node);
 * 2. a free address of a block this node claimed;
 * 3. a block nobody has claimed yet, created with the allocation in it
 *    (the create fails if another node was first, and the next is tried);
 *    the starting point of the search is a hash of the node name, so
 *    nodes claiming at once rarely want the same block;
 * 4. a free address of another node's block, or of a block whose node is
 *    gone (taken over): how a nearly full pool is used to its last address.
 *
 * Every write is a create-if-absent or a compare-and-swap on one block's
 * resourceVersion; a block's name follows from its addresses, so two
 * writers of one address always meet on one object and one of them
 * loses, reads again and goes on. Nothing else is locked: no lease, no
 * cluster-wide object on this path.
 *
 * Requests that arrive while a round of writes is in flight wait for the
 * next round and are written together: concurrent ADDs on a node cost one
 * write per block touched, not one each (when a node daemon runs them all;
 * an exec'd plugin without one makes one round of its own).
 *
 * @module
 */

import { CniError, ErrorCode } from "../../cni/errors.ts";
import type { Logger } from "../../pkg/log.ts";
import type { KubeClient } from "../../kube/client.ts";
import { formatIpAddr, type IpAddr, ipAddrEquals, parseIpAddr } from "../../ipaddr/ip.ts";
import type { AddressBlock } from "./objects.ts";
import {
  addressAt,
  type Block,
  BlockNonsenseError,
  blockObject,
  copyBlock,
  freeOffsets,
  newBlock,
  offsetOf,
  parseBlock,
} from "./block.ts";
import { type PodRef, type PoolRange, rangeAllows } from "./config.ts";
import { Doubts } from "./doubts.ts";
import { unclaimedBlocks } from "./grid.ts";
import { OwnerIndex } from "./owners.ts";
import { AddressInUseError, PoolExhaustedError } from "./errors.ts";
import { noMetrics, type PoolMetrics } from "./metrics.ts";
import { type Allocation, blockOf } from "./objects.ts";
import {
  ApiUnavailableError,
  createBlock,
  type Deadline,
  getBlock,
  listBlocks,
  remaining,
  updateBlock,
} from "./store.ts";
import { holdsIn, readWhereaboutsHolds, type WhereaboutsHold } from "./whereabouts.ts";

/** What one ADD asks of one range. */
export interface AllocationRequest {
  range: PoolRange;
  pod?: PodRef;
  /** The StatefulSet owning the pod: makes the address sticky to the pod's name. */
  statefulSet?: string;
  containerID: string;
  ifName: string;
  /** A static address asked for (already checked to be allowed in `range`). */
  static?: IpAddr;
  /** A random id of this ADD. */
  handle: string;
  /** Record whereabouts' holds in a block this request claims (default true). */
  importWhereabouts?: boolean;
}

/** What one DEL releases. */
export interface ReleaseRequest {
  containerID: string;
  ifName: string;
  /** Addresses the ADD returned (the prevResult), to find their blocks without a list. */
  hints: IpAddr[];
}

/** Options of {@link NetworkAllocator}. */
export interface AllocatorOptions {
  client: KubeClient;
  /** The network key. */
  network: string;
  node: string;
  metrics?: PoolMetrics;
  log?: Logger;
  /** How long a read of this node's blocks is trusted before claiming a new one; 5 s. */
  freshnessMs?: number;
  /**
   * Take back, once the API answers again, what a write whose outcome is
   * unknown (the API went away mid-request) may have recorded for an ADD
   * that failed. For long-lived processes; an exec'd plugin leaves such a
   * record to the retried ADD (which takes it over) or the controller.
   */
  settleDoubts?: boolean;
}

interface Waiter<T> {
  resolve(v: T): void;
  reject(e: unknown): void;
}

/** One request in a round. */
type Item =
  & ({ kind: "allocate"; req: AllocationRequest } | { kind: "release"; req: ReleaseRequest })
  & { deadline: Deadline; waiter: Waiter<IpAddr | number> };

/** A block being changed in this round. */
interface Draft {
  block: Block;
  create: boolean;
  /** Items whose change is in this draft, with the address staged (or entries released) for each. */
  items: { item: Item; ip?: IpAddr; released?: number }[];
  /** Set when it changes the block's affinity (adopting an orphan). */
  adopted?: boolean;
  /** How to take back each item's changes, should its placement fail half-way. */
  undo: Map<Item, (() => void)[]>;
}

function now(): string {
  return new Date().toISOString().replace(/\.\d+Z$/, "Z");
}

function podText(p?: PodRef): string | undefined {
  return p ? `${p.namespace}/${p.name}` : undefined;
}

/**
 * Allocates and releases addresses of one network on one node. Long-lived
 * in a node daemon (it keeps its copies of the node's blocks between
 * requests); made per invocation in an exec'd plugin.
 */
export class NetworkAllocator {
  readonly network: string;
  readonly node: string;
  #client: KubeClient;
  #metrics: PoolMetrics;
  #log?: Logger;
  #freshnessMs: number;
  /** The last copy read of each block this allocator has seen, by name. */
  #known = new Map<string, Block>();
  /** When each known copy was read (ms since the epoch). */
  #readAt = new Map<string, number>();
  /** When the round in progress started. */
  #roundAt = 0;
  /** Which known blocks hold what (sandbox, pod UID, pod name): see {@link ownerKeys}. */
  #owners = new OwnerIndex();
  /** Names of blocks known to be nonsense (never written). */
  #bad = new Map<string, string>();
  /** When this node's blocks were last listed (0: never). */
  #affineAt = 0;
  #pending: Item[] = [];
  #running = false;
  #holds?: { at: number; holds: WhereaboutsHold[] | undefined };
  /** Allocations whose write's outcome is unknown, for ADDs that failed (settleDoubts). */
  #doubts?: Doubts;

  constructor(opts: AllocatorOptions) {
    this.network = opts.network;
    this.node = opts.node;
    this.#client = opts.client;
    this.#metrics = opts.metrics ?? noMetrics;
    this.#log = opts.log;
    this.#freshnessMs = opts.freshnessMs ?? 5_000;
    if (opts.settleDoubts) {
      this.#doubts = new Doubts(this.#client, opts.log, (block) => this.#known.delete(block));
    }
  }

  /** Allocates one address per request (all or none are kept); throws a CniError-like error. */
  async allocate(reqs: AllocationRequest[], deadline: Deadline): Promise<IpAddr[]> {
    const settled = await Promise.allSettled(
      reqs.map((req) => this.#enqueue<IpAddr>({ kind: "allocate", req }, deadline)),
    );
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === "rejected");
    if (!failed) return settled.map((s) => (s as PromiseFulfilledResult<IpAddr>).value);
    // All or nothing: give back what this ADD got before reporting why it failed.
    const got = settled.flatMap((s) => s.status === "fulfilled" ? [s.value] : []);
    if (got.length > 0) {
      const { containerID, ifName } = reqs[0];
      await this.release({ containerID, ifName, hints: got }, deadline).catch((err) =>
        this.#log?.warn("cannot give back addresses of a failed ADD", { error: err })
      );
    }
    throw failed.reason;
  }

  /** Releases what a sandbox's interface holds; resolves to the number of addresses released. */
  release(req: ReleaseRequest, deadline: Deadline): Promise<number> {
    return this.#enqueue<number>({ kind: "release", req }, deadline);
  }

  /**
   * The allocations of a sandbox's interface, read afresh: this node's
   * blocks and the blocks of `hints` (the addresses the ADD returned).
   */
  async held(
    containerID: string,
    ifName: string,
    hints: IpAddr[],
    deadline: Deadline,
  ): Promise<Allocation[]> {
    this.#affineAt = 0;
    await this.#loadAffine(deadline, false);
    for (const name of new Set(hints.map((ip) => blockOf(this.network, ip).name))) {
      await this.#fetch(name, deadline);
    }
    const out: Allocation[] = [];
    for (const b of this.#known.values()) {
      for (const a of b.allocations.values()) {
        if (a.containerID === containerID && a.interface === ifName) out.push(a);
      }
    }
    return out;
  }

  #enqueue<T extends IpAddr | number>(
    body: Omit<Item, "deadline" | "waiter">,
    deadline: Deadline,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#pending.push({
        ...body,
        deadline,
        waiter: { resolve: resolve as (v: IpAddr | number) => void, reject },
      } as Item);
      if (!this.#running) this.#drain();
    });
  }

  /** Runs rounds until nothing is pending; requests arriving meanwhile join the next round. */
  async #drain(): Promise<void> {
    this.#running = true;
    try {
      while (this.#pending.length > 0) {
        const items = this.#pending.splice(0);
        this.#metrics.batch(this.network, items.length);
        try {
          await this.#round(items);
        } catch (err) {
          for (const it of items) it.waiter.reject(err);
        }
      }
    } finally {
      this.#running = false;
    }
  }

  /** Places and writes `items`, again and again for those whose write lost, until each is settled. */
  async #round(items: Item[]): Promise<void> {
    let todo = items;
    while (todo.length > 0) {
      const live: Item[] = [];
      for (const it of todo) {
        if (remaining(it.deadline) > 0) live.push(it);
        else it.waiter.reject(new ApiUnavailableError("the address was not recorded in time"));
      }
      if (live.length === 0) return;
      const d: Deadline = { end: Math.max(...live.map((it) => it.deadline.end)) };
      this.#roundAt = Date.now();
      try {
        await this.#loadAffine(d, false);
      } catch (err) {
        for (const it of live) it.waiter.reject(err);
        return;
      }
      const drafts = new Map<string, Draft>();
      const unplaced: Item[] = [];
      for (const it of live) {
        try {
          if (it.kind === "release") await this.#placeRelease(it, drafts, d);
          else if (
            !await this.#placeExisting(it, drafts, d) && !await this.#placeStatic(it, drafts, d)
          ) {
            if (!this.#placeInAffine(it, drafts)) unplaced.push(it);
          }
        } catch (err) {
          this.#drop(it, drafts);
          it.waiter.reject(err);
        }
      }
      if (unplaced.length > 0) await this.#placeElsewhere(unplaced, drafts, d);
      todo = await this.#commit(drafts, d);
    }
  }

  /** Lists this node's blocks when never done or (with `refresh`) when older than the freshness. */
  async #loadAffine(d: Deadline, refresh: boolean): Promise<void> {
    if (this.#affineAt !== 0 && (!refresh || Date.now() - this.#affineAt < this.#freshnessMs)) {
      return;
    }
    const objs = await listBlocks(this.#client, this.network, d, this.node);
    for (const obj of objs) this.#remember(obj);
    this.#affineAt = Date.now();
  }

  /** Keeps the copy read of a block (or notes it as nonsense). */
  #remember(obj: Parameters<typeof parseBlock>[0]): Block | undefined {
    try {
      const b = parseBlock(obj);
      this.#known.set(b.name, b);
      this.#owners.index(b);
      this.#readAt.set(b.name, Date.now());
      this.#bad.delete(b.name);
      return b;
    } catch (err) {
      if (!(err instanceof BlockNonsenseError)) throw err;
      this.#known.delete(err.block);
      if (!this.#bad.has(err.block)) {
        this.#log?.error("skipping a malformed address block", { error: err });
      }
      this.#bad.set(err.block, err.message);
      return undefined;
    }
  }

  /** The draft of a block, made from the known copy when there is none yet. */
  #draft(drafts: Map<string, Draft>, b: Block, create = false): Draft {
    let d = drafts.get(b.name);
    if (!d) {
      d = { block: copyBlock(b), create, items: [], undo: new Map() };
      drafts.set(b.name, d);
    }
    return d;
  }

  /** Takes an item's staged changes out of the drafts again (its placement failed). */
  #drop(it: Item, drafts: Map<string, Draft>): void {
    for (const d of drafts.values()) {
      d.items = d.items.filter((x) => x.item !== it);
      for (const undo of (d.undo.get(it) ?? []).reverse()) undo();
      d.undo.delete(it);
    }
  }

  /** Sets (or with undefined, removes) the allocation at `offset` of a draft, for `it`. */
  #change(draft: Draft, offset: number, a: Allocation | undefined, it: Item): void {
    const map = draft.block.allocations;
    const before = map.get(offset);
    if (a) map.set(offset, a);
    else map.delete(offset);
    const undos = draft.undo.get(it) ?? [];
    undos.push(() => before ? map.set(offset, before) : map.delete(offset));
    draft.undo.set(it, undos);
  }

  /** Reads one block into the known copies; undefined when it does not exist. */
  async #fetch(name: string, d: Deadline): Promise<Block | undefined> {
    const obj = await getBlock(this.#client, name, d);
    if (!obj) {
      this.#known.delete(name);
      return undefined;
    }
    const b = this.#remember(obj);
    if (!b) throw new CniError(ErrorCode.Internal, this.#bad.get(name)!);
    return b;
  }

  /** The known copy of a block if read in this round, else a fresh read. */
  async #fresh(name: string, d: Deadline): Promise<Block | undefined> {
    if (this.#known.has(name) && (this.#readAt.get(name) ?? 0) >= this.#roundAt) {
      return this.#known.get(name);
    }
    return await this.#fetch(name, d);
  }

  /** The current view of a block: its draft if one exists, else the known copy. */
  #view(drafts: Map<string, Draft>, name: string): Block | undefined {
    return drafts.get(name)?.block ?? this.#known.get(name);
  }

  /** Writes `a` at `offset` of the block's draft for the item. */
  #stage(
    drafts: Map<string, Draft>,
    b: Block,
    offset: number,
    it: Item,
    a: Allocation,
    create = false,
  ) {
    const draft = this.#draft(drafts, b, create);
    this.#change(draft, offset, a, it);
    draft.items.push({ item: it, ip: addressAt(b, offset) });
    return draft;
  }

  #entry(req: AllocationRequest, ip: IpAddr): Allocation {
    return {
      ip: formatIpAddr(ip),
      pool: req.range.name,
      source: "pod",
      ...(req.pod ? { pod: podText(req.pod) } : {}),
      ...(req.pod?.uid ? { podUID: req.pod.uid } : {}),
      containerID: req.containerID,
      interface: req.ifName,
      node: this.node,
      time: now(),
      handle: req.handle,
      ...(req.statefulSet ? { statefulSet: req.statefulSet } : {}),
    };
  }

  /** True when the allocation `a` is already this request's (or its pod's) address. */
  #owns(req: AllocationRequest, a: Allocation): "same" | "takeover" | undefined {
    if (a.source === "whereabouts" || a.interface !== req.ifName || a.pool !== req.range.name) {
      return undefined;
    }
    if (a.containerID === req.containerID && !a.releasedAt) return "same";
    if (req.pod?.uid && a.podUID === req.pod.uid) return "takeover";
    if (req.statefulSet && a.statefulSet === req.statefulSet && a.pod === podText(req.pod)) {
      return "takeover";
    }
    return undefined;
  }

  /** Finds what the request already holds among `blocks`. */
  #findOwned(req: AllocationRequest, blocks: Iterable<Block>) {
    for (const b of blocks) {
      for (const [offset, a] of b.allocations) {
        const how = this.#owns(req, a);
        if (how) return { block: b, offset, how, a };
      }
    }
    return undefined;
  }

  /** Step 1: what the request already holds. True when placed (or settled). */
  async #placeExisting(it: Item, drafts: Map<string, Draft>, d: Deadline): Promise<boolean> {
    const req = (it as Item & { kind: "allocate" }).req;
    const candidates = () =>
      [...drafts.values()].map((x) => x.block).concat(
        [...this.#owners.blocksFor(req)].filter((n) => !drafts.has(n)).flatMap((n) =>
          this.#known.get(n) ?? []
        ),
      );
    let found = this.#findOwned(req, candidates());
    if (!found && req.statefulSet) {
      // The pod's earlier address may be on any node's block.
      for (const obj of await listBlocks(this.#client, this.network, d)) this.#remember(obj);
      found = this.#findOwned(req, candidates());
    }
    if (!found) return false;
    if (
      !drafts.has(found.block.name) && (this.#readAt.get(found.block.name) ?? 0) < this.#roundAt
    ) {
      // A copy from an earlier round may be out of date (the controller may have freed it since).
      await this.#fetch(found.block.name, d);
      return await this.#placeExisting(it, drafts, d);
    }
    const ip = addressAt(found.block, found.offset);
    if (req.static && !ipAddrEquals(req.static, ip)) {
      // The pod asks for another address now: the old one goes, the static one is placed next.
      const draft = this.#draft(drafts, found.block);
      this.#change(draft, found.offset, undefined, it);
      draft.items.push({ item: it });
      return false;
    }
    if (
      found.how === "same" && !drafts.has(found.block.name) &&
      !this.#doubts?.has(found.a.handle ?? "")
    ) {
      it.waiter.resolve(ip);
      return true;
    }
    this.#stage(drafts, found.block, found.offset, it, { ...this.#entry(req, ip) });
    return true;
  }

  /** A static address: its block, wherever it is (claimed here when nobody has it). */
  async #placeStatic(it: Item, drafts: Map<string, Draft>, d: Deadline): Promise<boolean> {
    const req = (it as Item & { kind: "allocate" }).req;
    if (!req.static) return false;
    const { name } = blockOf(this.network, req.static);
    if (this.#bad.has(name)) throw new CniError(ErrorCode.Internal, this.#bad.get(name)!);
    const b = drafts.get(name)?.block ?? await this.#fresh(name, d);
    if (!b) {
      const fresh = newBlock(this.network, req.static, this.node);
      const draft = this.#stage(
        drafts,
        fresh,
        offsetOf(fresh, req.static),
        it,
        this.#entry(req, req.static),
        true,
      );
      await this.#addHolds(draft, d);
      const holder = draft.block.allocations.get(offsetOf(fresh, req.static));
      if (holder?.source === "whereabouts") {
        throw new AddressInUseError(req.static, req.range, holder);
      }
      return true;
    }
    const offset = offsetOf(b, req.static);
    const holder = b.allocations.get(offset);
    if (holder) throw new AddressInUseError(req.static, req.range, holder);
    this.#stage(drafts, b, offset, it, this.#entry(req, req.static));
    return true;
  }

  /** Step 2: a free address of this node's blocks. */
  #placeInAffine(it: Item, drafts: Map<string, Draft>): boolean {
    const req = (it as Item & { kind: "allocate" }).req;
    const mine = [...this.#known.values()].filter((b) => b.node === this.node)
      .map((b) => drafts.get(b.name)?.block ?? b)
      .concat([...drafts.values()].filter((x) => x.create).map((x) => x.block))
      .sort((a, b) => (a.cidr.ip.value < b.cidr.ip.value ? -1 : 1));
    for (const b of mine) {
      if (b.cidr.ip.family !== req.range.cidr.ip.family) continue;
      const free = freeOffsets(b, (ip) => rangeAllows(req.range, ip));
      if (free.length === 0) continue;
      this.#stage(drafts, b, free[0], it, this.#entry(req, addressAt(b, free[0])));
      return true;
    }
    return false;
  }

  /** Steps 3 and 4: new blocks, then other nodes' blocks; what still has no address is exhausted. */
  async #placeElsewhere(items: Item[], drafts: Map<string, Draft>, d: Deadline): Promise<void> {
    let all: Block[];
    try {
      const objs = await listBlocks(this.#client, this.network, d);
      all = objs.flatMap((o) => this.#remember(o) ?? []);
      this.#affineAt = Date.now();
    } catch (err) {
      for (const it of items) it.waiter.reject(err);
      return;
    }
    const existing = new Set([...all.map((b) => b.name), ...this.#bad.keys(), ...drafts.keys()]);
    for (const it of items) {
      const req = (it as Item & { kind: "allocate" }).req;
      try {
        if (this.#placeInAffine(it, drafts)) continue;
        if (await this.#claim(it, req, drafts, existing, d)) continue;
        if (this.#borrow(it, req, drafts, all)) continue;
        it.waiter.reject(new PoolExhaustedError(req.range));
      } catch (err) {
        this.#drop(it, drafts);
        it.waiter.reject(err);
      }
    }
  }

  /** Step 3: creates the next unclaimed block of the request's window (none left: false). */
  async #claim(
    it: Item,
    req: AllocationRequest,
    drafts: Map<string, Draft>,
    existing: Set<string>,
    d: Deadline,
  ): Promise<boolean> {
    for (const ip of unclaimedBlocks(this.network, req.range, this.node, existing)) {
      const { name } = blockOf(this.network, ip);
      const fresh = newBlock(this.network, ip, this.node);
      const draft: Draft = { block: fresh, create: true, items: [], undo: new Map() };
      if (req.importWhereabouts !== false) await this.#addHolds(draft, d);
      const free = freeOffsets(draft.block, (a) => rangeAllows(req.range, a));
      existing.add(name);
      if (free.length === 0) continue;
      drafts.set(name, draft);
      this.#stage(drafts, fresh, free[0], it, this.#entry(req, addressAt(fresh, free[0])), true);
      this.#metrics.block(this.network, "claimed");
      return true;
    }
    return false;
  }

  /** Step 4: the block of any node with the most free addresses in the window. */
  #borrow(it: Item, req: AllocationRequest, drafts: Map<string, Draft>, all: Block[]): boolean {
    let best: { b: Block; free: number[] } | undefined;
    for (const known of all) {
      const b = drafts.get(known.name)?.block ?? known;
      if (b.cidr.ip.family !== req.range.cidr.ip.family) continue;
      const free = freeOffsets(b, (ip) => rangeAllows(req.range, ip));
      if (free.length > 0 && (!best || free.length > best.free.length)) best = { b, free };
    }
    if (!best) return false;
    const draft = this.#stage(
      drafts,
      best.b,
      best.free[0],
      it,
      this.#entry(req, addressAt(best.b, best.free[0])),
    );
    if (best.b.node === "") {
      draft.block.node = this.node;
      draft.adopted = true;
      this.#metrics.block(this.network, "adopted");
    } else if (best.b.node !== this.node) {
      this.#metrics.block(this.network, "borrowed");
    }
    return true;
  }

  /** A release: the sandbox's allocations, removed (or, for StatefulSet pods, marked released). */
  async #placeRelease(it: Item, drafts: Map<string, Draft>, d: Deadline): Promise<void> {
    const req = (it as Item & { kind: "release" }).req;
    const names = new Set(req.hints.map((ip) => blockOf(this.network, ip).name));
    for (const name of names) {
      if (this.#view(drafts, name) || this.#bad.has(name)) continue;
      // A malformed block is not written: its address stays recorded until a person repairs
      // the block, and the controller frees it then (the pod is gone by that time).
      await this.#fetch(name, d).catch((err) => {
        if (!this.#bad.has(name)) throw err;
        this.#log?.warn("DEL leaves an address in a malformed block", { block: name });
      });
    }
    let count = 0;
    for (const known of [...this.#known.values()]) {
      const b = this.#view(drafts, known.name)!;
      for (const [offset, a] of b.allocations) {
        if (a.containerID !== req.containerID || a.interface !== req.ifName) continue;
        if (a.source === "whereabouts" || a.releasedAt) continue;
        const draft = this.#draft(drafts, b);
        this.#change(draft, offset, a.statefulSet ? { ...a, releasedAt: now() } : undefined, it);
        const mine = draft.items.find((x) => x.item === it);
        if (mine) mine.released = (mine.released ?? 0) + 1;
        else draft.items.push({ item: it, released: 1 });
        count++;
      }
    }
    if (count === 0) it.waiter.resolve(0);
  }

  /** Adds whereabouts' holds inside a new block (read at most every 10 s). */
  async #addHolds(draft: Draft, d: Deadline): Promise<void> {
    if (!this.#holds || Date.now() - this.#holds.at > (this.#holds.holds ? 10_000 : 60_000)) {
      this.#holds = { at: Date.now(), holds: await readWhereaboutsHolds(this.#client, d) };
    }
    for (const h of holdsIn(this.#holds.holds ?? [], draft.block.cidr, now())) {
      const offset = offsetOf(draft.block, parseIpAddr(h.ip)!);
      if (offset >= 0 && !draft.block.allocations.has(offset)) {
        draft.block.allocations.set(offset, h);
      }
    }
  }

  /** Notes the allocations a failed write may have recorded, to be taken back later. */
  #doubt(draft: Draft): void {
    for (const { item } of draft.items) {
      if (item.kind !== "allocate") continue;
      const { handle, containerID, ifName } = item.req;
      this.#doubts?.add(handle, { block: draft.block.name, containerID, ifName });
    }
  }

  /**
   * Writes every draft that has changes. An item is settled once every
   * write it is part of succeeded; the items of writes that lost are
   * returned, to be placed again on the blocks as they are now.
   */
  async #commit(drafts: Map<string, Draft>, d: Deadline): Promise<Item[]> {
    const done = new Map<Item, { ip?: IpAddr; released: number }>();
    const failed = new Set<Item>();
    const retry = new Set<Item>();
    const writes = [...drafts.values()].filter((x) => x.items.length > 0);
    await Promise.all(writes.map(async (draft) => {
      const items = draft.items.map((x) => x.item);
      let written: AddressBlock | "exists" | "conflict";
      try {
        const obj = blockObject(draft.block);
        written = draft.create
          ? await createBlock(this.#client, obj, d)
          : await updateBlock(this.#client, obj, d);
      } catch (err) {
        // The write may or may not have happened: read the block again next time.
        this.#known.delete(draft.block.name);
        this.#affineAt = 0;
        this.#doubt(draft);
        for (const it of items) {
          if (!failed.has(it)) it.waiter.reject(err);
          failed.add(it);
        }
        return;
      }
      if (written === "exists" || written === "conflict") {
        this.#metrics.conflict(this.network);
        try {
          await this.#fetch(draft.block.name, d);
          for (const it of items) retry.add(it);
        } catch (err) {
          for (const it of items) {
            if (!failed.has(it)) it.waiter.reject(err);
            failed.add(it);
          }
        }
        return;
      }
      this.#remember(written);
      for (const x of draft.items) {
        const prev = done.get(x.item);
        done.set(x.item, {
          ip: x.ip ?? prev?.ip,
          released: (prev?.released ?? 0) + (x.released ?? 0),
        });
      }
    }));
    for (const [item, r] of done) {
      if (failed.has(item) || retry.has(item)) continue;
      if (item.kind === "allocate") {
        item.waiter.resolve(r.ip!);
      } else {
        this.#metrics.released(this.network, r.released);
        item.waiter.resolve(r.released);
      }
    }
    return [...retry].filter((it) => !failed.has(it));
  }
}
