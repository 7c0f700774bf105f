/**
 * The status server's metrics in the Prometheus text exposition format (version 0.0.4): counters and
 * one latency histogram, kept in plain maps. Labels are a small fixed set (routes, HTTP statuses, OCSP
 * statuses), never anything a client chooses, so the series stay few.
 */

/** Latency buckets in seconds: the goal is a p99 under 10 ms, so the resolution is there. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

type Labels = Readonly<Record<string, string>>;

/** `{a="x",b="y"}` with label values escaped as the format asks (backslash, quote, newline). */
function renderLabels(labels: Labels, extra?: string): string {
  const parts = Object.entries(labels).map(
    ([name, value]) => `${name}="${value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`,
  );
  if (extra) parts.push(extra);
  return parts.length > 0 ? `{${parts.join(",")}}` : "";
}

/** A series' key: its label values (our label sets have one or two labels, in a fixed order). */
function keyOf(labels: Labels): string {
  let key = "";
  for (const name in labels) key += `${labels[name]}\u0000`;
  return key;
}

class Counter {
  private readonly series = new Map<string, { labels: Labels; value: number }>();
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}

  inc(labels: Labels, by = 1): void {
    const key = keyOf(labels);
    const entry = this.series.get(key);
    if (entry) entry.value += by;
    else this.series.set(key, { labels, value: by });
  }

  value(labels: Labels): number {
    return this.series.get(keyOf(labels))?.value ?? 0;
  }

  render(): string[] {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    for (const { labels, value } of this.series.values())
      lines.push(`${this.name}${renderLabels(labels)} ${value}`);
    return lines;
  }
}

class Histogram {
  private readonly series = new Map<
    string,
    { labels: Labels; buckets: number[]; sum: number; count: number }
  >();
  constructor(
    readonly name: string,
    readonly help: string,
    private readonly bounds: readonly number[],
  ) {}

  observe(labels: Labels, value: number): void {
    const key = keyOf(labels);
    let entry = this.series.get(key);
    if (!entry) {
      entry = { labels, buckets: new Array(this.bounds.length).fill(0), sum: 0, count: 0 };
      this.series.set(key, entry);
    }
    // Buckets are stored per interval and accumulated when rendered.
    let i = 0;
    while (i < this.bounds.length && value > this.bounds[i]!) i++;
    if (i < this.bounds.length) entry.buckets[i]!++;
    entry.sum += value;
    entry.count++;
  }

  render(): string[] {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    for (const { labels, buckets, sum, count } of this.series.values()) {
      let cumulative = 0;
      this.bounds.forEach((bound, i) => {
        cumulative += buckets[i]!;
        lines.push(`${this.name}_bucket${renderLabels(labels, `le="${bound}"`)} ${cumulative}`);
      });
      lines.push(`${this.name}_bucket${renderLabels(labels, 'le="+Inf"')} ${count}`);
      lines.push(`${this.name}_sum${renderLabels(labels)} ${sum}`);
      lines.push(`${this.name}_count${renderLabels(labels)} ${count}`);
    }
    return lines;
  }
}

/** What the status server counts. */
export class StatusMetrics {
  readonly requests = new Counter("jpki_http_requests_total", "HTTP requests by route and status code.");
  readonly latency = new Histogram(
    "jpki_http_request_duration_seconds",
    "Time from a request's arrival to its answer being handed to the socket, by route.",
    LATENCY_BUCKETS,
  );
  readonly ocspResponses = new Counter(
    "jpki_ocsp_responses_total",
    "OCSP answers by OCSPResponseStatus (RFC 6960 §4.2.1).",
  );
  readonly ocspCertStatuses = new Counter(
    "jpki_ocsp_cert_statuses_total",
    "Certificate statuses given in successful OCSP answers (held: revoked with certificateHold).",
  );
  readonly ocspCache = new Counter(
    "jpki_ocsp_cache_total",
    "Single-certificate answers without nonce: hit (pre-signed, from memory or the table) or miss (signed).",
  );
  readonly ocspSources = new Counter(
    "jpki_ocsp_answer_source_total",
    "Successful OCSP answers by where they came from: memory, table (pre-signed) or signed.",
  );
  readonly lookups = new Counter("jpki_verifier_lookups_total", "Lookups counted for verifiers, by channel.");

  constructor(private readonly gauges: () => Record<string, { help: string; value: number }> = () => ({})) {}

  /** The exposition text (Content-Type text/plain; version=0.0.4). */
  render(): string {
    const lines = [
      this.requests,
      this.latency,
      this.ocspResponses,
      this.ocspCertStatuses,
      this.ocspCache,
      this.ocspSources,
      this.lookups,
    ].flatMap((metric) => metric.render());
    for (const [name, { help, value }] of Object.entries(this.gauges()))
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`, `${name} ${value}`);
    return `${lines.join("\n")}\n`;
  }
}
