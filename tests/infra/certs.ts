/**
 * A throwaway PKI for the test control plane, made with the openssl command: a CA, the
 * apiserver's serving certificate, an admin client certificate (group system:masters) and the
 * service-account token signing key pair. EC P-256 keys keep generation in the milliseconds.
 *
 * @module
 */

import { join } from "node:path";
import { runCommand } from "./process.ts";

/** Paths of the generated PEM files. */
export interface Pki {
  caCert: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
  adminCert: string;
  adminKey: string;
  /** Private key kube-apiserver signs service-account tokens with. */
  serviceAccountKey: string;
  /** Its public half, for verifying the tokens. */
  serviceAccountPub: string;
}

/** Options for {@link generatePki}. */
export interface PkiOptions {
  /** IP addresses in the serving certificate (default 127.0.0.1 and the service IP 10.96.0.1). */
  serverIps?: string[];
  /** DNS names in the serving certificate. */
  serverNames?: string[];
}

const EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

async function openssl(args: string[]): Promise<void> {
  await runCommand("openssl", args);
}

/** Signs a new key pair's certificate with the CA. */
async function issue(
  dir: string,
  name: string,
  subject: string,
  extensions: string[],
  ca: { cert: string; key: string },
): Promise<{ cert: string; key: string }> {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  await openssl([
    "req",
    "-x509",
    ...EC_KEY,
    "-keyout",
    key,
    "-out",
    cert,
    "-days",
    "3650",
    "-subj",
    subject,
    "-CA",
    ca.cert,
    "-CAkey",
    ca.key,
    ...extensions.flatMap((ext) => ["-addext", ext]),
  ]);
  return { cert, key };
}

/** Generates the control plane's PKI into `dir`. */
export async function generatePki(dir: string, opts: PkiOptions = {}): Promise<Pki> {
  const caCert = join(dir, "ca.crt");
  const caKey = join(dir, "ca.key");
  const serviceAccountKey = join(dir, "sa.key");
  const serviceAccountPub = join(dir, "sa.pub");
  const makeCa = openssl([
    "req",
    "-x509",
    ...EC_KEY,
    "-keyout",
    caKey,
    "-out",
    caCert,
    "-days",
    "3650",
    "-subj",
    "/CN=hydra-test-ca",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
  ]);
  const makeSaKey = (async () => {
    await openssl([
      "genpkey",
      "-algorithm",
      "EC",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-out",
      serviceAccountKey,
    ]);
    await openssl(["pkey", "-in", serviceAccountKey, "-pubout", "-out", serviceAccountPub]);
  })();
  await makeCa;
  const ca = { cert: caCert, key: caKey };
  const ips = opts.serverIps ?? ["127.0.0.1", "10.96.0.1"];
  const names = opts.serverNames ??
    ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"];
  const san = [...ips.map((ip) => `IP:${ip}`), ...names.map((n) => `DNS:${n}`)].join(",");
  const leaf = ["basicConstraints=critical,CA:FALSE", "keyUsage=critical,digitalSignature"];
  const [server, admin] = await Promise.all([
    issue(dir, "apiserver", "/CN=kube-apiserver", [
      ...leaf,
      "extendedKeyUsage=serverAuth",
      `subjectAltName=${san}`,
    ], ca),
    issue(dir, "admin", "/O=system:masters/CN=hydra-admin", [
      ...leaf,
      "extendedKeyUsage=clientAuth",
    ], ca),
    makeSaKey,
  ]);
  return {
    caCert,
    caKey,
    serverCert: server.cert,
    serverKey: server.key,
    adminCert: admin.cert,
    adminKey: admin.key,
    serviceAccountKey,
    serviceAccountPub,
  };
}

/** Issues a client certificate for `user` in `groups`, signed by the PKI's CA. */
export function issueClientCert(
  pki: Pki,
  dir: string,
  name: string,
  user: string,
  groups: string[] = [],
): Promise<{ cert: string; key: string }> {
  const subject = [...groups.map((g) => `/O=${g}`), `/CN=${user}`].join("");
  return issue(dir, name, subject, [
    "basicConstraints=critical,CA:FALSE",
    "keyUsage=critical,digitalSignature",
    "extendedKeyUsage=clientAuth",
  ], { cert: pki.caCert, key: pki.caKey });
}

/**
 * Issues a serving certificate for a component listening on loopback (kube-scheduler,
 * kube-controller-manager), signed by the PKI's CA so clients can verify it with `caCert`.
 */
export function issueServingCert(
  pki: Pki,
  dir: string,
  name: string,
  ips: string[] = ["127.0.0.1"],
): Promise<{ cert: string; key: string }> {
  return issue(dir, name, `/CN=${name}`, [
    "basicConstraints=critical,CA:FALSE",
    "keyUsage=critical,digitalSignature",
    "extendedKeyUsage=serverAuth",
    `subjectAltName=${ips.map((ip) => `IP:${ip}`).join(",")}`,
  ], { cert: pki.caCert, key: pki.caKey });
}
