// exceljs side of bench/files_bench's "excel" case (DuckDB cannot write .xlsx without an
// extension downloaded at run time): writes the benchmark's rows to one worksheet with
// exceljs's streaming WorkbookWriter, the same cells as the s3db writer (a bold header row,
// numbers, booleans, dates as dates, arrays as JSON text, inline strings).
//
//   node files_bench_exceljs.mjs <peers-dir> <rows.jsonl> <out-file>
//
// Rows are read and parsed in batches of 10,000, untimed; the time is adding each batch's
// rows (and committing them to the stream) plus the final commit of the workbook. Prints
// {"excel": {"seconds": s, "bytes": n}}. <peers-dir> holds node_modules with exceljs
// (scripts/peers).
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { pathToFileURL } from 'node:url';

const [peersDir, rowsFile, outFile] = process.argv.slice(2);
if (!peersDir || !rowsFile || !outFile) {
  console.error('usage: files_bench_exceljs.mjs <peers-dir> <rows.jsonl> <out-file>');
  process.exit(2);
}
const requireFromPeers = createRequire(path.join(path.resolve(peersDir), 'package.json'));
const ExcelJS = (await import(pathToFileURL(requireFromPeers.resolve('exceljs')).href)).default;

const columns = ['id', 'name', 'email', 'age', 'score', 'active', 'created_at', 'tags', 'bio',
                 '_action', '_changed_at', '_change_id'];

let spent = 0n;
const timed = async (work) => {
  const start = process.hrtime.bigint();
  await work();
  spent += process.hrtime.bigint() - start;
};

let book, sheet;
await timed(async () => {
  fs.rmSync(outFile, { force: true });
  book = new ExcelJS.stream.xlsx.WorkbookWriter({ filename: outFile, useStyles: true,
                                                  useSharedStrings: false });
  sheet = book.addWorksheet('Sheet1', { views: [{ state: 'frozen', ySplit: 1 }] });
  const header = sheet.addRow(columns);
  header.font = { bold: true };
  header.commit();
});

const addBatch = async (lines) => {
  const values = lines.map((line) => {
    const row = JSON.parse(line);
    return columns.map((column) => {
      const value = row[column];
      if (column === 'created_at') return new Date(value);
      if (Array.isArray(value)) return JSON.stringify(value);
      return value ?? null;
    });
  });
  await timed(async () => {
    for (const cells of values) sheet.addRow(cells).commit();
  });
};

const input = readline.createInterface({ input: fs.createReadStream(rowsFile),
                                         crlfDelay: Infinity });
let batch = [];
for await (const line of input) {
  if (line.length === 0) continue;
  batch.push(line);
  if (batch.length === 10000) {
    await addBatch(batch);
    batch = [];
  }
}
if (batch.length > 0) await addBatch(batch);
await timed(async () => {
  sheet.commit();
  await book.commit();
});
const bytes = fs.statSync(outFile).size;
fs.rmSync(outFile, { force: true });
console.log(JSON.stringify({ excel: { seconds: Number(spent) / 1e9, bytes } }));
