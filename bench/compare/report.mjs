// Reads DIR/raw/*.json from run.sh and writes DIR/results.json (every raw number plus medians),
// DIR/report.md (the tables, the goals) and DIR/latency.png (gnuplot), and prints report.md.
//   node report.mjs DIR
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.argv[2];
if (!dir || !existsSync(join(dir, 'raw'))) {
  console.error('usage: node report.mjs DIR   (DIR: the --out folder of run.sh, with raw/)');
  process.exit(2);
}
const raw = join(dir, 'raw');
const machine = existsSync(join(dir, 'machine.json')) ? JSON.parse(readFileSync(join(dir, 'machine.json'), 'utf8')) : {};

// raw/run<R>-<system>-<phase>-<target>-<variant>-<mode>.json
const results = [];
const limits = [];
for (const file of readdirSync(raw).sort()) {
  let match = file.match(/^run(\d+)-limits\.json$/);
  if (match) {
    limits.push({ run: Number(match[1]), ...JSON.parse(readFileSync(join(raw, file), 'utf8')) });
    continue;
  }
  match = file.match(/^run(\d+)-(js|cpp)-(plain|replicate)-(s3db-memory|s3db-file|webhook|postgresql)-(\w+)-(1w|16w|paced)\.json$/);
  if (!match) continue;
  const [, run, system, phase, target, variant, mode] = match;
  const data = JSON.parse(readFileSync(join(raw, file), 'utf8'));
  const entry = { ...data, systemName: data.system, run: Number(run), system, phase, target, variant, mode };
  const pgFile = join(raw, file.replace(/\.json$/, '.pg.json'));
  if (existsSync(pgFile)) {
    const pg = JSON.parse(readFileSync(pgFile, 'utf8'));
    entry.atTarget = pg.distinct;
    entry.pgRows = pg.rows;
  }
  results.push(entry);
}

const median = (values) => {
  const sorted = values.filter((v) => typeof v === 'number' && Number.isFinite(v)).sort((a, b) => a - b);
  if (!sorted.length) return null;
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};
const spread = (values) => {
  const sorted = values.filter((v) => typeof v === 'number' && Number.isFinite(v)).sort((a, b) => a - b);
  return sorted.length ? [sorted[0], sorted[sorted.length - 1]] : null;
};
const pick = (filter) => results.filter((r) => Object.entries(filter).every(([k, v]) => r[k] === v));
const stat = (filter, get) => {
  const values = pick(filter).map(get);
  return { median: median(values), spread: spread(values), runs: values.length };
};
const limitStat = (get) => ({ median: median(limits.map(get)), spread: spread(limits.map(get)) });

const fmt = (v, digits) => {
  if (v === null || v === undefined || !Number.isFinite(v)) return '–';
  if (digits !== undefined) return v.toFixed(digits);
  if (Math.abs(v) >= 100) return Math.round(v).toLocaleString('en-US');
  if (Math.abs(v) >= 10) return v.toFixed(1);
  return v.toFixed(2);
};
const withSpread = (s) => s.median === null ? '–'
  : s.spread && s.runs > 1 && s.spread[0] !== s.spread[1] ? `${fmt(s.median)} (${fmt(s.spread[0])}–${fmt(s.spread[1])})` : fmt(s.median);
const ratio = (a, b) => (a && b ? `${fmt(a / b)}×` : '–');

const limitOf = {
  's3db-file': { label: 'one file per record', get: (l) => l.filePerRecord?.recordsPerSecond },
  webhook: { label: 'wrk, 1 change/request', get: (l) => l.wrk?.recordsPerSecond },
  'webhook-batched': { label: 'wrk, 100 changes/request', get: (l) => l.wrkBatch100?.recordsPerSecond },
  postgresql: { label: 'psql \\copy', get: (l) => l.pgCopy?.recordsPerSecond },
};
// [label, target, s3db.js variant, our variant, limit key]
const rows = [
  ['s3db, memory', 's3db-memory', 'default', 'default', null],
  ['s3db, file', 's3db-file', 'default', 'default', 's3db-file'],
  ['s3db, file, ours with fsync', 's3db-file', 'default', 'fsync', 's3db-file'],
  ['webhook', 'webhook', 'default', 'default', 'webhook'],
  ['webhook, ours batched', 'webhook', 'default', 'batched', 'webhook-batched'],
  ['webhook, s3db.js on fetch', 'webhook', 'fetch', 'default', 'webhook'],
  ['postgresql', 'postgresql', 'default', 'default', 'postgresql'],
];
const modes = [...new Set(results.map((r) => r.mode))].sort((a, b) => ['1w', '16w', 'paced'].indexOf(a) - ['1w', '16w', 'paced'].indexOf(b));
const modeLabel = { '1w': '1 writer', '16w': '16 writers', paced: '1,000 writes/s' };
const summary = [];
const lines = [];
const out = (line = '') => lines.push(line);

out(`Date ${machine.date ?? '?'}; ${machine.cores ?? '?'} cores (${machine.cpu ?? '?'}), ${machine.memGiB ?? '?'} GiB, Linux ${machine.kernel ?? '?'}, load average at the end ${machine.load ?? '?'}.`);
const runCount = Math.max(0, ...results.map((r) => r.run));
out(`Command: \`${machine.command ?? 'bench/compare/run.sh'}\`; results of ${runCount} run(s): medians, and where a row has more than one run, the range in parentheses.`);
out('');
for (const mode of modes) {
  const n = pick({ mode })[0]?.n;
  out(`### ${modeLabel[mode]} (N = ${n?.toLocaleString('en-US')})`);
  out('');
  out('| target | writes/s s3db.js: plain → with plugin | writes/s ours: plain → with plugin | replicated/s s3db.js | replicated/s ours | ratio | all at target, s (s3db.js / ours) | % of limit (ours) |');
  out('|---|---|---|---|---|---|---|---|');
  for (const [label, target, jsVariant, cppVariant, limitKey] of rows) {
    const js = { system: 'js', phase: 'replicate', target, variant: jsVariant, mode };
    const cpp = { system: 'cpp', phase: 'replicate', target, variant: cppVariant, mode };
    if (!pick(js).length || !pick(cpp).length) continue;
    const storage = target === 's3db-file' ? 's3db-file' : 's3db-memory';
    const plainJs = stat({ system: 'js', phase: 'plain', target: storage, mode }, (r) => r.writesPerSecond);
    const plainCpp = stat({ system: 'cpp', phase: 'plain', target: storage, mode }, (r) => r.writesPerSecond);
    const writesJs = stat(js, (r) => r.writesPerSecond);
    const writesCpp = stat(cpp, (r) => r.writesPerSecond);
    const replJs = stat(js, (r) => r.replicationPerSecond);
    const replCpp = stat(cpp, (r) => r.replicationPerSecond);
    const allJs = stat(js, (r) => r.allVisibleSeconds);
    const allCpp = stat(cpp, (r) => r.allVisibleSeconds);
    const limit = limitKey ? limitStat(limitOf[limitKey].get) : null;
    const percent = limit?.median && replCpp.median ? `${fmt(100 * replCpp.median / limit.median, 0)}% of ${fmt(limit.median)} (${limitOf[limitKey].label})` : 'no limit measured';
    out(`| ${label} | ${mode === 'paced' ? '–' : fmt(plainJs.median)} → ${fmt(writesJs.median)} | ${mode === 'paced' ? '–' : fmt(plainCpp.median)} → ${fmt(writesCpp.median)} | ${withSpread(replJs)} | ${withSpread(replCpp)} | ${mode === 'paced' ? 'paced' : ratio(replCpp.median, replJs.median)} | ${fmt(allJs.median)} / ${fmt(allCpp.median)} | ${percent} |`);
    summary.push({ label, target, mode, jsVariant, cppVariant, plainJs, plainCpp, writesJs, writesCpp, replJs, replCpp, allJs, allCpp, limit, limitKey,
      latJs: ['p50', 'p95', 'p99'].map((p) => stat(js, (r) => r.latencyMs?.[p])),
      latCpp: ['p50', 'p95', 'p99'].map((p) => stat(cpp, (r) => r.latencyMs?.[p])),
      missJs: stat(js, (r) => r.missing), missCpp: stat(cpp, (r) => r.missing),
      dupJs: stat(js, (r) => r.duplicates + (r.pgRows !== undefined ? r.pgRows - r.atTarget : 0)),
      dupCpp: stat(cpp, (r) => r.duplicates + (r.pgRows !== undefined ? r.pgRows - r.atTarget : 0)),
      rssJs: stat(js, (r) => r.peakRssMb), rssCpp: stat(cpp, (r) => r.peakRssMb) });
  }
  out('');
  out('| target | write → visible p50 / p95 / p99 ms, s3db.js | same, ours | missing / duplicated s3db.js | missing / duplicated ours | peak RSS MB s3db.js / ours |');
  out('|---|---|---|---|---|---|');
  for (const s of summary.filter((s) => s.mode === mode)) {
    const lat = (list) => list.map((x) => fmt(x.median)).join(' / ');
    out(`| ${s.label} | ${lat(s.latJs)} | ${lat(s.latCpp)} | ${fmt(s.missJs.median, 0)} / ${fmt(s.dupJs.median, 0)} | ${fmt(s.missCpp.median, 0)} / ${fmt(s.dupCpp.median, 0)} | ${fmt(s.rssJs.median, 0)} / ${fmt(s.rssCpp.median, 0)} (${s.rssJs.median && s.rssCpp.median ? fmt(s.rssCpp.median / s.rssJs.median, 2) : '–'}) |`);
  }
  out('');
}

out('### Physical limits (same run, same records; records/s)');
out('');
out('| limit | records/s |');
out('|---|---|');
for (const [label, get] of [
  ['sequential writes, one file', (l) => l.fileSequential?.recordsPerSecond],
  ['one file per record', (l) => l.filePerRecord?.recordsPerSecond],
  ['DuckDB → Parquet', (l) => l.duckdb?.parquet?.recordsPerSecond],
  ['DuckDB → CSV', (l) => l.duckdb?.csv?.recordsPerSecond],
  ['DuckDB → JSON', (l) => l.duckdb?.json?.recordsPerSecond],
  ['psql \\copy into PostgreSQL', (l) => l.pgCopy?.recordsPerSecond],
  ['wrk → receiver, 1 change a request', (l) => l.wrk?.recordsPerSecond],
  ['wrk → receiver, 100 changes a request', (l) => l.wrkBatch100?.recordsPerSecond],
]) {
  const s = { ...limitStat(get), runs: limits.length };
  out(`| ${label} | ${withSpread(s)} |`);
}
out('');

// Goals.
out('### Goals');
out('');
const goal = (text, ok) => out(`- ${ok === null ? 'no verdict' : ok ? 'met' : '**not met**'}: ${text}`);
for (const mode of ['1w', '16w']) {
  for (const s of summary.filter((x) => x.mode === mode && x.jsVariant === 'default')) {
    const r = s.replCpp.median && s.replJs.median ? s.replCpp.median / s.replJs.median : null;
    const want = s.target === 's3db-memory' || s.cppVariant === 'batched' ? 100 : 30;
    const n = pick({ mode })[0]?.n;
    if (r === null && s.missJs.median === n && s.missCpp.median === 0) {
      goal(`${s.label}, ${modeLabel[mode]}: s3db.js delivered none of the ${n} records before 30 s passed without an arrival; ours delivered all at ${fmt(s.replCpp.median)}/s (no ratio; goal ≥ ${want}×)`, null);
      continue;
    }
    goal(`${s.label}, ${modeLabel[mode]}: replication ${fmt(r)}× s3db.js's (goal ≥ ${want}×)`, r === null ? null : r >= want);
  }
}
for (const s of summary.filter((x) => x.mode === 'paced' && x.target !== 'postgresql' && x.jsVariant === 'default')) {
  const p99 = s.latCpp[2].median;
  goal(`${s.label}: write → visible p99 ${fmt(p99)} ms at 1,000 writes/s (goal < 20 ms)`, p99 === null ? null : p99 < 20);
}
for (const s of summary.filter((x) => x.mode === '16w' && x.jsVariant === 'default')) {
  const q = s.rssJs.median && s.rssCpp.median ? s.rssCpp.median / s.rssJs.median : null;
  goal(`${s.label}, 16 writers: peak RSS ${fmt(s.rssCpp.median, 0)} MB vs ${fmt(s.rssJs.median, 0)} MB (goal ≤ 1/4: ${fmt(q, 2)})`, q === null ? null : q <= 0.25);
}
for (const s of summary.filter((x) => x.mode === '16w' && x.limitKey && x.jsVariant === 'default')) {
  const p = s.limit?.median && s.replCpp.median ? s.replCpp.median / s.limit.median : null;
  goal(`${s.label}, 16 writers: ${fmt(100 * p, 0)}% of ${limitOf[s.limitKey].label} (goal ≥ 50%)`, p === null ? null : p >= 0.5);
}
out('');

// Latency plot: the cumulative distribution at 1,000 writes/s (else 1 writer), per target.
const plotMode = modes.includes('paced') ? 'paced' : modes[0];
const panels = [];
for (const [label, target, jsVariant, cppVariant] of rows.filter((r) => r[2] === 'default' && r[3] !== 'fsync')) {
  const series = [];
  for (const [system, variant, name] of [['js', jsVariant, 's3db.js'], ['cpp', cppVariant, cppVariant === 'batched' ? 'ours (batched)' : 'ours']]) {
    const file = readdirSync(raw).find((f) => f === `run1-${system}-replicate-${target}-${variant}-${plotMode}.latencies`);
    if (!file) continue;
    const values = readFileSync(join(raw, file), 'utf8').split('\n').filter(Boolean).map(Number).sort((a, b) => a - b);
    if (!values.length) continue;
    const data = join(dir, `cdf-${target}-${system}-${variant}.dat`);
    const step = Math.max(1, Math.floor(values.length / 2000));
    const points = [];
    for (let i = 0; i < values.length; i += step) points.push(`${Math.max(values[i], 0.01)} ${(i + 1) / values.length}`);
    points.push(`${Math.max(values[values.length - 1], 0.01)} 1`);
    writeFileSync(data, points.join('\n') + '\n');
    series.push({ data, name });
  }
  if (series.length) panels.push({ label, series });
}
if (panels.length) {
  const cols = 2;
  const rowsCount = Math.ceil(panels.length / cols);
  let script = `set terminal pngcairo size 1200,${360 * rowsCount} font ",10"\nset output '${join(dir, 'latency.png')}'\n`;
  script += `set multiplot layout ${rowsCount},${cols} title "write → visible latency of the records delivered, cumulative (${modeLabel[plotMode]}, run 1)"\n`;
  script += 'set logscale x\nset xlabel "ms (log scale)"\nset ylabel "fraction of records"\nset yrange [0:1]\nset grid\nset key bottom right\n';
  for (const panel of panels) {
    script += `set title "${panel.label}"\nplot ` + panel.series.map((s) => `'${s.data}' using 1:2 with lines lw 2 title "${s.name}"`).join(', ') + '\n';
  }
  script += 'unset multiplot\n';
  writeFileSync(join(dir, 'latency.gp'), script);
  try {
    execFileSync('gnuplot', [join(dir, 'latency.gp')]);
    out(`Latency plot: ${join(dir, 'latency.png')}`);
  } catch (error) {
    out(`Latency plot not drawn (${error.message.split('\n')[0]}); install gnuplot-nox (scripts/install-deps.sh --bench).`);
  }
}

writeFileSync(join(dir, 'results.json'), JSON.stringify({ machine, results, limits, summary }, null, 2) + '\n');
writeFileSync(join(dir, 'report.md'), lines.join('\n') + '\n');
console.log(lines.join('\n'));
