/**
 * Prometheus metrics for hydra's long-running roles: counters, gauges and
 * histograms with labels, rendered in the text exposition format (0.0.4).
 * Small on purpose: a registry is a list of metric families, each family a
 * map from label values to numbers.
 *
 * ```ts
 * const reg = createRegistry();
 * const syncs = reg.counter("hydra_route_syncs_total", "Syncs by result.", ["result"]);
 * syncs.inc({ result: "ok" });
 * const took = reg.histogram("hydra_route_sync_duration_seconds", "Sync time.", [], [0.01, 0.1]);
 * took.observe({}, 0.004);
 * console.log(reg.render());
 * ```
 *
 * @module
 */

/** Label values of one series, by label name. */
export type Labels = Record<string, string>;

/** A monotonically increasing count. */
export interface Counter {
  inc(labels?: Labels, by?: number): void;
  /** The current value of one series (0 when never touched). */
  get(labels?: Labels): number;
}

/** A value that goes up and down. */
export interface Gauge {
  set(labels: Labels, value: number): void;
  inc(labels?: Labels, by?: number): void;
  get(labels?: Labels): number;
  /** Drops every series (for gauges rebuilt from scratch on each update). */
  reset(): void;
}

/** A distribution of observed values in cumulative buckets. */
export interface Histogram {
  observe(labels: Labels, value: number): void;
  /** Number of observations of one series. */
  count(labels?: Labels): number;
}

/** A set of metric families rendered together. */
export interface Registry {
  counter(name: string, help: string, labelNames?: string[]): Counter;
  gauge(name: string, help: string, labelNames?: string[]): Gauge;
  histogram(name: string, help: string, labelNames?: string[], buckets?: number[]): Histogram;
  /**
   * A family of one unlabelled series whose value is read at each render
   * (process figures); left out of the output while `read` returns
   * undefined or throws.
   */
  observed(
    name: string,
    help: string,
    type: "counter" | "gauge",
    read: () => number | undefined,
  ): void;
  /** Every family in the Prometheus text format, ending with a newline. */
  render(): string;
}

/**
 * The histogram buckets of every request and operation latency hydra
 * reports, in seconds: 100 µs (a daemon answer from its cache) to 10 s (an
 * attachment waiting on the API server). One set, so latencies of different
 * roles can be compared and summed bucket by bucket.
 */
export const DURATION_BUCKETS: readonly number[] = [
  0.0001,
  0.00025,
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
];

/** The content type of {@link Registry.render}'s output. */
export const EXPOSITION_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function escapeLabel(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

function formatValue(n: number): string {
  if (Number.isNaN(n)) return "NaN";
  if (n === Infinity) return "+Inf";
  if (n === -Infinity) return "-Inf";
  return String(n);
}

interface Family {
  name: string;
  help: string;
  type: "counter" | "gauge" | "histogram";
  /** False: left out of this render. */
  present?: () => boolean;
  lines(): string[];
}

/** Validates label values against the family's names and builds the series key. */
function seriesKey(family: string, labelNames: string[], labels: Labels = {}): string {
  const keys = Object.keys(labels);
  if (keys.length !== labelNames.length || !labelNames.every((n) => n in labels)) {
    throw new TypeError(
      `${family}: labels {${keys.join(",")}} do not match {${labelNames.join(",")}}`,
    );
  }
  return labelNames.map((n) => `${n}="${escapeLabel(String(labels[n]))}"`).join(",");
}

function braces(key: string, extra = ""): string {
  const inner = [key, extra].filter((s) => s).join(",");
  return inner ? `{${inner}}` : "";
}

/** Creates an empty registry. */
export function createRegistry(): Registry {
  const families: Family[] = [];
  const names = new Set<string>();

  function register(name: string, labelNames: string[]): void {
    if (!NAME.test(name)) throw new TypeError(`invalid metric name ${JSON.stringify(name)}`);
    if (names.has(name)) throw new TypeError(`metric ${name} registered twice`);
    for (const l of labelNames) {
      if (!LABEL.test(l) || l === "le") throw new TypeError(`${name}: invalid label name ${l}`);
    }
    names.add(name);
  }

  function scalar(name: string, help: string, labelNames: string[], type: "counter" | "gauge") {
    register(name, labelNames);
    const series = new Map<string, number>();
    families.push({
      name,
      help,
      type,
      lines: () =>
        [...series].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([key, v]) =>
          `${name}${braces(key)} ${formatValue(v)}`
        ),
    });
    // A family without labels shows its single series from the start.
    if (labelNames.length === 0) series.set("", 0);
    return series;
  }

  return {
    counter(name, help, labelNames = []) {
      const series = scalar(name, help, labelNames, "counter");
      return {
        inc(labels, by = 1) {
          if (by < 0) throw new RangeError(`${name}: a counter cannot go down`);
          const key = seriesKey(name, labelNames, labels);
          series.set(key, (series.get(key) ?? 0) + by);
        },
        get: (labels) => series.get(seriesKey(name, labelNames, labels)) ?? 0,
      };
    },
    gauge(name, help, labelNames = []) {
      const series = scalar(name, help, labelNames, "gauge");
      return {
        set(labels, value) {
          series.set(seriesKey(name, labelNames, labels), value);
        },
        inc(labels, by = 1) {
          const key = seriesKey(name, labelNames, labels);
          series.set(key, (series.get(key) ?? 0) + by);
        },
        get: (labels) => series.get(seriesKey(name, labelNames, labels)) ?? 0,
        reset() {
          series.clear();
          if (labelNames.length === 0) series.set("", 0);
        },
      };
    },
    histogram(name, help, labelNames = [], buckets = [...DURATION_BUCKETS]) {
      register(name, labelNames);
      const bounds = [...buckets].sort((a, b) => a - b);
      const series = new Map<string, { counts: number[]; sum: number; count: number }>();
      const get = (key: string) => {
        let s = series.get(key);
        if (!s) series.set(key, s = { counts: bounds.map(() => 0), sum: 0, count: 0 });
        return s;
      };
      if (labelNames.length === 0) get("");
      families.push({
        name,
        help,
        type: "histogram",
        lines: () =>
          [...series].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).flatMap(([key, s]) => [
            ...bounds.map((b, i) => `${name}_bucket${braces(key, `le="${b}"`)} ${s.counts[i]}`),
            `${name}_bucket${braces(key, 'le="+Inf"')} ${s.count}`,
            `${name}_sum${braces(key)} ${formatValue(s.sum)}`,
            `${name}_count${braces(key)} ${s.count}`,
          ]),
      });
      return {
        observe(labels, value) {
          const s = get(seriesKey(name, labelNames, labels));
          for (let i = 0; i < bounds.length; i++) if (value <= bounds[i]) s.counts[i]++;
          s.sum += value;
          s.count++;
        },
        count: (labels) => series.get(seriesKey(name, labelNames, labels))?.count ?? 0,
      };
    },
    observed(name, help, type, read) {
      register(name, []);
      let value: number | undefined;
      families.push({
        name,
        help,
        type,
        present: () => {
          try {
            value = read();
          } catch {
            value = undefined;
          }
          return value !== undefined;
        },
        lines: () => [`${name} ${formatValue(value!)}`],
      });
    },
    render() {
      const out: string[] = [];
      for (const f of families) {
        if (f.present && !f.present()) continue;
        out.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`);
        out.push(...f.lines());
      }
      return out.join("\n") + "\n";
    },
  };
}
