// DuckDB side of bench/files_bench: loads the benchmark's rows (a JSON Lines file) into an
// in-memory table, untimed, then times COPY ... TO each format, one after the other.
//
//   node files_bench_duckdb.mjs <peers-dir> <rows.jsonl> <out-dir> <threads> <case>...
//
// A case is csv, jsonl, jsonl-gzip, parquet-snappy, parquet-gzip, parquet-zstd, parquet-lz4
// or parquet-none. Prints one JSON object: {"<case>": {"seconds": s, "bytes": n}, ...,
// "load_seconds": s}. <peers-dir> holds node_modules with @duckdb/node-api (scripts/peers).
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [peersDir, rowsFile, outDir, threads, ...cases] = process.argv.slice(2);
if (!peersDir || !rowsFile || !outDir || !threads || cases.length === 0) {
  console.error('usage: files_bench_duckdb.mjs <peers-dir> <rows.jsonl> <out-dir> <threads> <case>...');
  process.exit(2);
}
const requireFromPeers = createRequire(path.join(path.resolve(peersDir), 'package.json'));
const { DuckDBInstance } = await import(
  pathToFileURL(requireFromPeers.resolve('@duckdb/node-api')).href);

const quote = (text) => "'" + text.replaceAll("'", "''") + "'";

// Output file name and COPY options per case.
const targets = {
  'csv': ['rows.csv', 'FORMAT csv, HEADER true'],
  'jsonl': ['rows.jsonl', 'FORMAT json'],
  'jsonl-gzip': ['rows.jsonl.gz', 'FORMAT json, COMPRESSION gzip'],
  'parquet-snappy': ['rows.snappy.parquet', 'FORMAT parquet, COMPRESSION snappy'],
  'parquet-gzip': ['rows.gzip.parquet', 'FORMAT parquet, COMPRESSION gzip'],
  'parquet-zstd': ['rows.zstd.parquet', 'FORMAT parquet, COMPRESSION zstd'],
  'parquet-lz4': ['rows.lz4.parquet', 'FORMAT parquet, COMPRESSION lz4_raw'],
  'parquet-none': ['rows.none.parquet', 'FORMAT parquet, COMPRESSION uncompressed'],
};

const instance = await DuckDBInstance.create(':memory:');
const connection = await instance.connect();
await connection.run(`SET threads = ${Number(threads)}`);
await connection.run('SET preserve_insertion_order = true');

const loadStart = process.hrtime.bigint();
// The same column types as the s3db writers get from the benchmark's schema.
await connection.run(`CREATE TABLE rows AS SELECT * FROM read_json(${quote(rowsFile)},
  format = 'newline_delimited',
  columns = {id: 'VARCHAR', name: 'VARCHAR', email: 'VARCHAR', age: 'BIGINT', score: 'DOUBLE',
             active: 'BOOLEAN', created_at: 'TIMESTAMPTZ', tags: 'VARCHAR[]', bio: 'VARCHAR',
             _action: 'VARCHAR', _changed_at: 'VARCHAR', _change_id: 'VARCHAR'})`);
const result = { load_seconds: Number(process.hrtime.bigint() - loadStart) / 1e9 };

for (const name of cases) {
  const target = targets[name];
  if (!target) {
    console.error(`unknown case ${name}`);
    process.exit(2);
  }
  const file = path.join(outDir, 'duckdb-' + target[0]);
  fs.rmSync(file, { force: true });
  const start = process.hrtime.bigint();
  await connection.run(`COPY rows TO ${quote(file)} (${target[1]})`);
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  result[name] = { seconds, bytes: fs.statSync(file).size };
  fs.rmSync(file, { force: true });
}
console.log(JSON.stringify(result));
