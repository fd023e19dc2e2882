/**
 * `hydra doctor`'s look at the cluster-wide IPAM: every AddressPool's size,
 * allocated and free addresses (counted afresh), a warning for a pool that
 * is full or nearly so and for blocks that cannot be read. Asks the API
 * server with `--kubeconfig`, else the installer's kubeconfig, else the
 * in-cluster account; says so and moves on when none works.
 *
 * @module
 */

/** One line of the report (the shape of doctor.ts's checks). */
export interface Check {
  name: string;
  status: "ok" | "warn" | "fail";
  detail: string;
  hint?: string;
}

/** The kubeconfig `hydra install` writes on a node. */
const INSTALLER_KUBECONFIG = "/etc/cni/net.d/hydra.d/hydra.kubeconfig";

/** Free below this share of a pool is a warning. */
const LOW = 0.1;

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** The pool checks; `kubeconfig` undefined means the installer's, else in-cluster. */
export async function poolChecks(kubeconfig?: string): Promise<Check[]> {
  const { resolveConnection } = await import("../kube/kubeconfig.ts");
  const { createKubeClient } = await import("../kube/client.ts");
  const path = kubeconfig ??
    (await exists(INSTALLER_KUBECONFIG) ? INSTALLER_KUBECONFIG : undefined);
  let conn;
  try {
    conn = await resolveConnection(path);
  } catch (err) {
    return [{
      name: "address pools",
      status: "warn",
      detail: `cannot load API access: ${(err as Error).message}`,
    }];
  }
  if (!conn) {
    return [{
      name: "address pools",
      status: "ok",
      detail: "not checked (no --kubeconfig, no installer kubeconfig, not in a cluster)",
    }];
  }
  const client = createKubeClient(conn, { timeoutMs: 5_000, userAgent: "hydra-doctor" });
  try {
    const { poolUsage } = await import("../ipam_controller/usage.ts");
    const { isMissingApi } = await import("../ipam/pool/store.ts");
    let usage;
    try {
      usage = await poolUsage(client, 5_000);
    } catch (err) {
      if (isMissingApi(err)) {
        return [{
          name: "address pools",
          status: "ok",
          detail: "hydra-pool is not installed (no CRDs)",
        }];
      }
      return [{
        name: "address pools",
        status: "warn",
        detail: `cannot list: ${(err as Error).message}`,
      }];
    }
    const checks: Check[] = usage.pools.map((p) => {
      const full = p.free === 0;
      const low = p.size > 0 && p.free / p.size < LOW;
      return {
        name: `pool ${p.pool}`,
        status: full || low ? "warn" : "ok",
        detail:
          `${p.cidr}${
            p.network ? ` (${p.network})` : ""
          }: ${p.allocated} of ${p.size} allocated, ` +
          `${p.free} free, ${p.blocks} blocks`,
        hint: full
          ? "exhausted: new pods get no address; widen the range or free addresses"
          : low
          ? "nearly exhausted"
          : undefined,
      };
    });
    if (checks.length === 0) {
      checks.push({ name: "address pools", status: "ok", detail: "none yet" });
    }
    for (const b of usage.malformedBlocks) {
      checks.push({
        name: `block ${b}`,
        status: "warn",
        detail: "malformed: hydra neither allocates from it nor frees anything in it",
        hint: `repair or delete it: kubectl get addressblock ${b} -o yaml`,
      });
    }
    return checks;
  } finally {
    client.close();
  }
}
