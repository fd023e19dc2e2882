/**
 * Writes the Helm chart's templates (deploy/helm/hydra/templates/) from the
 * plain manifests in deploy/, so that `helm template` with the chart's
 * default values renders exactly what `kubectl apply -f deploy/<file>`
 * applies, and the two cannot drift apart:
 *
 *   deno run -A tools/helm_chart.ts           write the templates and Chart.yaml's versions
 *   deno run -A tools/helm_chart.ts --check   exit 1 (saying what differs) when they are stale
 *
 * Each object of the manifests becomes one template, shown when a setup file
 * holding it is selected by the values: `mode: meta` or `mode: nri` (the node
 * setup, hydra-meta.yaml or hydra-nri.yaml) and `<name>.enabled` for every
 * other `hydra-<name>.yaml` (router, dra, ...). An object several files hold
 * (the Namespace, the CRDs, the shared RBAC) is rendered once. The image
 * becomes `image.repository`:`image.tag` (default: the chart's appVersion)
 * with an optional `image.pullPolicy`.
 *
 * @module
 */

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const DEPLOY = `${ROOT}/deploy`;
/** The chart's folder. */
export const CHART_DIR = `${DEPLOY}/helm/hydra`;
/** The image name the manifests carry (deploy/README.md tells users to replace it). */
export const MANIFEST_IMAGE_REPOSITORY = "ghcr.io/hydra-cni/hydra";

/** One object of a setup file. */
interface ManifestDoc {
  file: string;
  /** The document's text, comments included, without the `---` line. */
  text: string;
  /** `Kind/namespace/name`. */
  id: string;
  kind: string;
  name: string;
  /** The text without comments and blank lines: equal for the same object. */
  body: string;
}

/** The setup files, in the order their objects take precedence. */
export async function setupFiles(): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(DEPLOY)) {
    if (e.isFile && /^hydra-[a-z0-9-]+\.yaml$/.test(e.name)) names.push(e.name);
  }
  const rank = (n: string) => n === "hydra-meta.yaml" ? 0 : n === "hydra-nri.yaml" ? 1 : 2;
  return names.sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : 1));
}

/** The value selecting a setup file, as a template condition. */
export function conditionOf(file: string): string {
  const name = file.replace(/^hydra-/, "").replace(/\.yaml$/, "");
  if (name === "meta" || name === "nri") return `(eq .Values.mode "${name}")`;
  const key = name.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
  return `.Values.${key}.enabled`;
}

/** The object's kind, name and namespace, read from its top-level keys and metadata. */
function identity(
  file: string,
  text: string,
): { id: string; kind: string; name: string } {
  const kind = /^kind: *(\S+)$/m.exec(text)?.[1];
  const meta = /^metadata:\n((?: {2}.*\n?|#.*\n?)*)/m.exec(text)?.[1] ?? "";
  const name = /^ {2}name: *(\S+)$/m.exec(meta)?.[1];
  const namespace = /^ {2}namespace: *(\S+)$/m.exec(meta)?.[1] ?? "";
  if (!kind || !name) {
    throw new Error(
      `${file}: an object without kind or metadata.name:\n${text}`,
    );
  }
  return { id: `${kind}/${namespace}/${name}`, kind, name };
}

async function readDocs(file: string): Promise<ManifestDoc[]> {
  const text = await Deno.readTextFile(`${DEPLOY}/${file}`);
  // Every setup file separates its objects with lines of exactly `---`; a part holding only
  // comments (the file's header) is no object.
  return text.split(/^---$/m).map((t) => t.replace(/^\n/, "").trimEnd())
    .flatMap((t) => {
      const body = t.split("\n").filter((l) => !/^\s*(#.*)?$/.test(l)).join(
        "\n",
      );
      if (!body) return [];
      return [{ file, text: t, body, ...identity(file, t) }];
    });
}

/** Go template text for the manifest text: `{{` escaped, the image made a value. */
function templated(text: string): string {
  const escaped = text.replaceAll("{{", '{{ "{{" }}');
  const image = new RegExp(
    `^( *)image: ${MANIFEST_IMAGE_REPOSITORY.replaceAll(".", "\\.")}:\\S+$`,
    "gm",
  );
  return escaped.replace(
    image,
    (_, indent: string) =>
      `${indent}image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"\n` +
      `${indent}{{- with .Values.image.pullPolicy }}\n${indent}imagePullPolicy: {{ . }}\n${indent}{{- end }}`,
  );
}

function templateName(d: ManifestDoc, variant: string | undefined): string {
  const base = `${d.kind}-${d.name}`.toLowerCase().replace(/[^a-z0-9.-]/g, "-");
  return `${base}${variant ? `.${variant}` : ""}.yaml`;
}

/** The templates, by file name. */
export async function renderTemplates(): Promise<Map<string, string>> {
  const byId = new Map<string, { doc: ManifestDoc; files: string[] }[]>();
  const order: string[] = [];
  for (const file of await setupFiles()) {
    for (const doc of await readDocs(file)) {
      if (!byId.has(doc.id)) {
        byId.set(doc.id, []);
        order.push(doc.id);
      }
      const variants = byId.get(doc.id)!;
      const same = variants.find((v) => v.doc.body === doc.body);
      if (same) same.files.push(file);
      else variants.push({ doc, files: [file] });
    }
  }
  const out = new Map<string, string>();
  for (const id of order) {
    const variants = byId.get(id)!;
    const earlier: string[] = [];
    for (const { doc, files } of variants) {
      const shown = files.map(conditionOf);
      const either = shown.length === 1 ? shown[0] : `or ${shown.join(" ")}`;
      // A variant shows only when no earlier variant of the same object does.
      const cond = earlier.length
        ? `and (${either}) (not (or ${earlier.join(" ")} false))`
        : either;
      earlier.push(...shown);
      const variant = variants.length > 1 ? files[0].replace(/^hydra-|\.yaml$/g, "") : undefined;
      out.set(
        templateName(doc, variant),
        `# Generated from deploy/${
          files.join(", deploy/")
        } by tools/helm_chart.ts; do not edit.\n` +
          `{{- if ${cond} }}\n${templated(doc.text)}\n{{- end }}\n`,
      );
    }
  }
  return out;
}

/** Chart.yaml's text with its version and appVersion set to hydra's. */
async function chartYaml(): Promise<string> {
  const version = JSON.parse(await Deno.readTextFile(`${ROOT}/deno.json`))
    .version as string;
  const text = await Deno.readTextFile(`${CHART_DIR}/Chart.yaml`);
  return text.replace(/^version: .*$/m, `version: ${version}`)
    .replace(/^appVersion: .*$/m, `appVersion: "${version}"`);
}

/** Stale or missing files of the chart, with what they should hold. */
export async function staleFiles(): Promise<Map<string, string | null>> {
  const want = await renderTemplates();
  const stale = new Map<string, string | null>();
  const dir = `${CHART_DIR}/templates`;
  const have = new Set<string>();
  try {
    for await (const e of Deno.readDir(dir)) {
      if (e.name.endsWith(".yaml")) have.add(e.name);
    }
  } catch {
    // no templates yet
  }
  for (const [name, text] of want) {
    const current = have.has(name) ? await Deno.readTextFile(`${dir}/${name}`) : undefined;
    if (current !== text) stale.set(`templates/${name}`, text);
  }
  for (const name of have) {
    if (!want.has(name)) stale.set(`templates/${name}`, null);
  }
  const chart = await chartYaml();
  if (chart !== await Deno.readTextFile(`${CHART_DIR}/Chart.yaml`)) {
    stale.set("Chart.yaml", chart);
  }
  return stale;
}

async function main(args: string[]): Promise<number> {
  const stale = await staleFiles();
  if (args.includes("--check")) {
    if (stale.size === 0) return 0;
    console.error(
      `deploy/helm/hydra is stale (run deno run -A tools/helm_chart.ts): ${
        [...stale.keys()].join(", ")
      }`,
    );
    return 1;
  }
  await Deno.mkdir(`${CHART_DIR}/templates`, { recursive: true });
  for (const [name, text] of stale) {
    const path = `${CHART_DIR}/${name}`;
    if (text === null) await Deno.remove(path);
    else await Deno.writeTextFile(path, text);
  }
  console.log(`deploy/helm/hydra: ${stale.size} file(s) written`);
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
