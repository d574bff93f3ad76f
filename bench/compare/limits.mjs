// The physical limits the replication numbers are compared with, on the same records, targets
// and machine, in the same run:
//   node limits.mjs --records FILE --n N --work DIR --out FILE.json --pg URL --pg-schema S
//                   --receiver URL [--peers DIR] [--seconds 5]
// - sequential file writes of the same bytes: one file (write + close), and one file per record;
// - DuckDB (@duckdb/node-api from scripts/peers) writing the same rows to Parquet, CSV, JSON;
// - psql's \copy of the same rows (CSV) into a fresh table of the same shape in PostgreSQL;
// - wrk POSTing one change payload (as the webhook drivers send it), and one 100-change batch,
//   to the same receiver: 2 threads, 16 connections.
// Every figure is records per second.
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { parseArgs } from './common.mjs';

const options = parseArgs(process.argv.slice(2), {
  records: '', n: 20000, work: '', out: '', pg: '', 'pg-schema': '', receiver: '', peers: '',
  seconds: 5,
});
for (const required of ['records', 'work', 'out', 'pg', 'pg-schema', 'receiver', 'peers']) {
  if (!options[required]) throw new Error(`--${required} is required`);
}
const lines = readFileSync(options.records, 'utf8').split('\n').filter(Boolean).slice(0, options.n);
if (lines.length < options.n) throw new Error(`${options.records} has fewer than ${options.n} records`);
const dir = join(options.work, `limits-${process.pid}`);
mkdirSync(dir, { recursive: true });
const result = { n: options.n, bytes: 0 };
const time = (action) => {
  const started = performance.now();
  action();
  return (performance.now() - started) / 1000;
};

// Sequential writes of the same bytes.
const buffers = lines.map((line) => Buffer.from(line + '\n'));
result.bytes = buffers.reduce((sum, buffer) => sum + buffer.length, 0);
const oneFile = time(() => {
  const fd = openSync(join(dir, 'all.jsonl'), 'w');
  for (const buffer of buffers) writeSync(fd, buffer);
  closeSync(fd);
});
mkdirSync(join(dir, 'each'));
const perRecord = time(() => {
  buffers.forEach((buffer, i) => writeFileSync(join(dir, 'each', `${i}.json`), buffer));
});
result.fileSequential = { seconds: oneFile, recordsPerSecond: options.n / oneFile, mbPerSecond: result.bytes / oneFile / 1e6 };
result.filePerRecord = { seconds: perRecord, recordsPerSecond: options.n / perRecord };

// DuckDB: read the records once, then time each COPY.
const require = createRequire(join(options.peers, 'package.json'));
const { DuckDBInstance } = await import(require.resolve('@duckdb/node-api'));
const instance = await DuckDBInstance.create(':memory:');
const connection = await instance.connect();
await connection.run(`CREATE TABLE customers AS SELECT * FROM read_json_auto('${join(dir, 'all.jsonl')}')`);
result.duckdb = {};
for (const [format, clause] of [['parquet', "(FORMAT parquet)"], ['csv', "(FORMAT csv, HEADER)"], ['json', "(FORMAT json)"]]) {
  const started = performance.now();
  await connection.run(`COPY customers TO '${join(dir, 'out.' + format)}' ${clause}`);
  const seconds = (performance.now() - started) / 1000;
  result.duckdb[format] = { seconds, recordsPerSecond: options.n / seconds };
}
// CSV for PostgreSQL with nested values as JSON text (the jsonb columns our driver creates).
await connection.run(`COPY (SELECT id, name, email, age, phone, company, score, active, "createdAt",
  to_json(address)::VARCHAR AS address, to_json(tags)::VARCHAR AS tags, bio FROM customers)
  TO '${join(dir, 'pg.csv')}' (FORMAT csv, HEADER false)`);
connection.closeSync?.();

// PostgreSQL: \copy into a table of the same shape.
const table = `${options['pg-schema']}.copy_limit`;
const psql = (command) => execFileSync('psql', [options.pg, '-X', '-q', '-t', '-A', '-v', 'ON_ERROR_STOP=1', '-c', command], { encoding: 'utf8' });
psql(`DROP TABLE IF EXISTS ${table}; CREATE TABLE ${table} (id text PRIMARY KEY, name text, email text, age double precision,
  phone text, company text, score double precision, active boolean, "createdAt" text,
  address jsonb, tags jsonb, bio text)`);
const copySeconds = time(() => psql(`\\copy ${table} FROM '${join(dir, 'pg.csv')}' WITH (FORMAT csv)`));
const copied = Number(psql(`SELECT count(*) FROM ${table}`).trim());
result.pgCopy = { seconds: copySeconds, recordsPerSecond: copied / copySeconds, rows: copied };
psql(`DROP TABLE ${table}`);

// wrk against the receiver: one change per request, and 100 per request.
function wrk(body, path) {
  const script = join(dir, 'wrk.lua');
  writeFileSync(script, `wrk.method = "POST"\nwrk.body = ${JSON.stringify(body)}\n` +
    'wrk.headers["Content-Type"] = "application/json"\n');
  const output = execFileSync('wrk', ['-t2', '-c16', `-d${options.seconds}s`, '-s', script, new URL(path, options.receiver).toString()], { encoding: 'utf8' });
  const match = output.match(/Requests\/sec:\s*([\d.]+)/);
  if (!match) throw new Error(`wrk printed no Requests/sec:\n${output}`);
  return Number(match[1]);
}
const change = (line) => ({ resource: 'customers', action: 'insert', timestamp: new Date().toISOString(), source: 'limits', data: JSON.parse(line) });
const single = wrk(JSON.stringify(change(lines[0])), '/limits-single');
const batch = wrk(JSON.stringify({ batch: lines.slice(0, 100).map(change) }), '/limits-batch');
await fetch(new URL('/__reset', options.receiver), { method: 'POST' });
result.wrk = { requestsPerSecond: single, recordsPerSecond: single };
result.wrkBatch100 = { requestsPerSecond: batch, recordsPerSecond: batch * 100 };

// The folder stays: run.sh deletes the work folders at its end (see "Nothing is deleted" there).
writeFileSync(options.out, JSON.stringify(result, null, 2) + '\n');
console.log(JSON.stringify(result));
