// Prometheus text exposition parsed with a real parser
// (parse-prometheus-text-format). That parser flattens every labelled
// histogram into one sample and drops its labels, so histogram families are
// parsed a second time with their TYPE line made untyped: each of the
// _bucket/_sum/_count series then keeps its labels. Nothing here matches
// metric lines with a regular expression.
import parsePrometheusTextFormat, { type MetricFamily } from 'parse-prometheus-text-format';

export interface Series {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface Exposition {
  /** Families as the parser sees them (name, TYPE, HELP). */
  readonly families: readonly MetricFamily[];
  /** Every sample line with its own labels, histogram series included. */
  readonly series: readonly Series[];
}

export function parseExposition(text: string): Exposition {
  const families = parsePrometheusTextFormat(text);
  const histograms = new Set(families.filter((f) => f.type === 'HISTOGRAM').map((f) => f.name));
  const untyped = text
    .split('\n')
    .map((line) => {
      const words = line.split(' ');
      return words[0] === '#' && words[1] === 'TYPE' && histograms.has(words[2] ?? '') ? `# TYPE ${words[2]} untyped` : line;
    })
    .join('\n');
  const series: Series[] = [];
  for (const f of parsePrometheusTextFormat(untyped)) {
    if (f.type === 'HISTOGRAM' || f.type === 'SUMMARY') throw new Error(`unexpected ${f.type} family ${f.name} after retyping`);
    for (const m of f.metrics) series.push({ name: f.name, labels: m.labels ?? {}, value: Number(m.value) });
  }
  return { families, series };
}
