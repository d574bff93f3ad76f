// Shared by the s3db.js side, the receiver and the report: percentiles and argument parsing.
import { readFileSync } from 'node:fs';

export function parseArgs(argv, defaults) {
  const options = { ...defaults };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--')) throw new Error(`unexpected argument '${arg}' (options are --name value)`);
    const key = arg.slice(2);
    if (!(key in defaults)) {
      throw new Error(`unknown option --${key}; known: ${Object.keys(defaults).map((k) => '--' + k).join(' ')}`);
    }
    if (i + 1 >= argv.length) throw new Error(`--${key} needs a value`);
    options[key] = typeof defaults[key] === 'number' ? Number(argv[++i]) : argv[++i];
    if (typeof defaults[key] === 'number' && !Number.isFinite(options[key])) {
      throw new Error(`--${key} must be a number, got '${argv[i]}'`);
    }
  }
  return options;
}

export function readRecords(path, count) {
  const lines = readFileSync(path, 'utf8').split('\n').filter(Boolean);
  if (lines.length < count) {
    throw new Error(`${path} has ${lines.length} records, fewer than the ${count} asked for: regenerate it with workload.mjs`);
  }
  return lines.slice(0, count).map((line) => JSON.parse(line));
}

// values sorted ascending; nearest-rank percentile.
export function percentile(sorted, fraction) {
  if (sorted.length === 0) return null;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil(fraction * sorted.length) - 1));
  return sorted[index];
}

export function latencySummary(values) {
  const sorted = Float64Array.from(values).sort();
  return {
    count: sorted.length,
    p50: percentile(sorted, 0.5),
    p95: percentile(sorted, 0.95),
    p99: percentile(sorted, 0.99),
    max: sorted.length ? sorted[sorted.length - 1] : null,
  };
}

// Wall-clock milliseconds with sub-millisecond resolution, comparable across processes.
export function nowMs() {
  return performance.timeOrigin + performance.now();
}
