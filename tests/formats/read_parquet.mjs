// Reads a Parquet file with a real reader and prints the result as one JSON document.
//
//   node read_parquet.mjs <peers-dir> duckdb-rows <file>        rows via read_parquet()
//   node read_parquet.mjs <peers-dir> duckdb-sql <file> <sql>   any query; $FILE is replaced
//                                                               by the quoted file path
//   node read_parquet.mjs <peers-dir> hyparquet-rows <file>     rows via parquetReadObjects
//   node read_parquet.mjs <peers-dir> hyparquet-meta <file>     num_rows, row groups, schema
//   node read_parquet.mjs <peers-dir> batch <jobs.json>         many of the above in one run:
//                                                               [{mode, file, sql}] in, and
//                                                               [{ok, result|error}] out
//
// <peers-dir> holds node_modules with @duckdb/node-api, hyparquet, hyparquet-compressors.
// DuckDB rows come from getRowObjectsJson (BIGINT as decimal strings). hyparquet output
// writes BigInt as plain JSON integers (every digit kept) and Date as ISO 8601 text.
// Exit code 0 with the JSON on stdout; on a reader error, exit code 1 and the message on
// stderr.
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [peersDir, mode, file, sql] = process.argv.slice(2);
if (!peersDir || !mode || !file) {
  console.error('usage: read_parquet.mjs <peers-dir> <mode> <file> [sql]');
  process.exit(2);
}
const requireFromPeers = createRequire(path.join(path.resolve(peersDir), 'package.json'));
const load = (name) => import(pathToFileURL(requireFromPeers.resolve(name)).href);

// JSON text in which BigInt values are written as integers, without losing digits.
function toJson(value) {
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'number') return Number.isFinite(value) ? JSON.stringify(value) : 'null';
  if (typeof value === 'string' || typeof value === 'boolean') return JSON.stringify(value);
  if (value instanceof Date) return JSON.stringify(value.toISOString());
  if (ArrayBuffer.isView(value)) return toJson(Array.from(value));
  if (Array.isArray(value)) return '[' + value.map(toJson).join(',') + ']';
  const fields = Object.entries(value).map(([k, v]) => JSON.stringify(k) + ':' + toJson(v));
  return '{' + fields.join(',') + '}';
}

let duckConnection = null;
async function duckDb(query) {
  if (duckConnection === null) {
    const { DuckDBInstance } = await load('@duckdb/node-api');
    const instance = await DuckDBInstance.create(':memory:');
    duckConnection = await instance.connect();
  }
  const reader = await duckConnection.runAndReadAll(query);
  return JSON.stringify(reader.getRowObjectsJson());
}

async function hyparquet(mode, file) {
  const library = await load('hyparquet');
  const { compressors } = await load('hyparquet-compressors');
  const buffer = await library.asyncBufferFromFile(file);
  if (mode === 'hyparquet-rows') {
    return toJson(await library.parquetReadObjects({ file: buffer, compressors }));
  }
  const meta = await library.parquetMetadataAsync(buffer);
  return toJson({
    num_rows: meta.num_rows,
    row_groups: meta.row_groups.length,
    created_by: meta.created_by,
    schema: meta.schema.map((e) => ({ name: e.name, type: e.type ?? null,
                                     converted_type: e.converted_type ?? null })),
  });
}

async function run(mode, file, sql) {
  const quotedFile = "'" + file.replaceAll("'", "''") + "'";
  if (mode === 'duckdb-rows') return duckDb(`SELECT * FROM read_parquet(${quotedFile})`);
  if (mode === 'duckdb-sql') return duckDb(sql.replaceAll('$FILE', quotedFile));
  if (mode === 'hyparquet-rows' || mode === 'hyparquet-meta') return hyparquet(mode, file);
  throw new Error(`unknown mode ${mode}`);
}

if (mode === 'batch') {
  // <file> is a JSON array of {mode, file, sql}; prints an array of {ok, result | error}.
  const fs = await import('node:fs');
  const jobs = JSON.parse(fs.readFileSync(file, 'utf8'));
  const results = [];
  for (const job of jobs) {
    try {
      results.push('{"ok":true,"result":' + (await run(job.mode, job.file, job.sql)) + '}');
    } catch (error) {
      results.push(JSON.stringify({ ok: false, error: String(error) }));
    }
  }
  process.stdout.write('[' + results.join(',') + ']\n');
} else {
  try {
    process.stdout.write((await run(mode, file, sql)) + '\n');
  } catch (error) {
    console.error(String(error && error.stack ? error.stack : error));
    process.exit(1);
  }
}
