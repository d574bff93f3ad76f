// Reads an .xlsx workbook with exceljs and prints what it holds as one JSON document.
//
//   node read_xlsx.mjs <peers-dir> rows <file.xlsx>
//   node read_xlsx.mjs <peers-dir> batch <jobs.json>    [{mode, file}] in, [{ok, result|error}] out
//
// <peers-dir> holds node_modules with exceljs (and jszip, which exceljs depends on).
// Output of `rows`:
//   { sheets: [ { name, rowCount, columnCount, views, autoFilter, widths: [number|null],
//                 header: [{ value, bold, fill }], rows: [[cell, ...], ...] } ],
//     formulas: number of <f> elements in all worksheet parts,
//     sharedStrings: whether the package has a shared-strings part }
// `rows` holds the data rows (after the header row), each padded to columnCount. A cell is
// null when empty, else { t, v, fmt }: t is "n" (number), "s" (text), "b" (boolean), "d" (a
// number with a date format, v as ISO 8601 text, milliseconds), "f" (formula, v its text) or
// the exceljs type number for anything else.
//
// Text in cells goes through ECMA-376's _xHHHH_ unescaping (how XML-illegal characters such
// as control characters are stored). exceljs 4.4.0 applies it to shared strings only, not to
// inline strings (<is><t>), which Excel and LibreOffice unescape alike; so for a package
// without a shared-strings part this script applies the same unescaping exceljs uses.
// Exit code 0 with the JSON on stdout; on a reader error, exit code 1 and the message on
// stderr.
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';

const [peersDir, mode, file] = process.argv.slice(2);
if (!peersDir || !mode || !file) {
  console.error('usage: read_xlsx.mjs <peers-dir> rows|batch <file>');
  process.exit(2);
}
const requireFromPeers = createRequire(path.join(path.resolve(peersDir), 'package.json'));
const ExcelJS = requireFromPeers('exceljs');
const JSZip = requireFromPeers('jszip');

const unescapeText = (text) =>
  text.replace(/_x([0-9A-F]{4})_/g, (whole, hex) => String.fromCharCode(parseInt(hex, 16)));

async function packageFacts(bytes) {
  const zip = await JSZip.loadAsync(bytes);
  let formulas = 0;
  for (const name of Object.keys(zip.files)) {
    if (!/^xl\/worksheets\/sheet\d+\.xml$/.test(name)) continue;
    const xml = await zip.file(name).async('string');
    formulas += (xml.match(/<f[ >/]/g) || []).length;
  }
  return { formulas, sharedStrings: zip.file('xl/sharedStrings.xml') !== null };
}

function describeCell(cell, decode) {
  const value = cell.value;
  if (value === null || value === undefined) return null;
  const fmt = cell.numFmt ?? null;
  switch (cell.type) {
    case ExcelJS.ValueType.Number:
      return { t: 'n', v: value, fmt };
    case ExcelJS.ValueType.String:
    case ExcelJS.ValueType.SharedString:
      return { t: 's', v: decode ? unescapeText(value) : value, fmt };
    case ExcelJS.ValueType.Boolean:
      return { t: 'b', v: value, fmt };
    case ExcelJS.ValueType.Date:
      return { t: 'd', v: value.toISOString(), fmt };
    case ExcelJS.ValueType.Formula:
      return { t: 'f', v: value.formula ?? value.sharedFormula ?? null, fmt };
    default:
      return { t: cell.type, v: String(value), fmt };
  }
}

async function readRows(file) {
  const bytes = fs.readFileSync(file);
  const facts = await packageFacts(bytes);
  const decode = !facts.sharedStrings;
  const workbook = new ExcelJS.Workbook();
  await workbook.xlsx.load(bytes);
  const sheets = [];
  workbook.eachSheet((worksheet) => {
    const columnCount = worksheet.columnCount;
    const widths = [];
    for (let c = 1; c <= columnCount; ++c) widths.push(worksheet.getColumn(c).width ?? null);
    const header = [];
    const headerRow = worksheet.getRow(1);
    for (let c = 1; c <= columnCount; ++c) {
      const cell = headerRow.getCell(c);
      const described = describeCell(cell, decode);
      header.push({
        value: described ? described.v : null,
        bold: Boolean(cell.font && cell.font.bold),
        fill: cell.fill && cell.fill.fgColor ? cell.fill.fgColor.argb ?? null : null,
      });
    }
    const rows = [];
    for (let r = 2; r <= worksheet.rowCount; ++r) {
      const row = worksheet.getRow(r);
      const cells = [];
      for (let c = 1; c <= columnCount; ++c) cells.push(describeCell(row.getCell(c), decode));
      rows.push(cells);
    }
    sheets.push({
      name: worksheet.name,
      rowCount: worksheet.rowCount,
      columnCount,
      views: worksheet.views ?? [],
      autoFilter: worksheet.autoFilter ?? null,
      widths,
      header,
      rows,
    });
  });
  return { sheets, ...facts };
}

async function run(job) {
  if (job.mode === 'rows') return readRows(job.file);
  throw new Error(`unknown mode ${job.mode}`);
}

if (mode === 'batch') {
  const jobs = JSON.parse(fs.readFileSync(file, 'utf8'));
  const results = [];
  for (const job of jobs) {
    try {
      results.push({ ok: true, result: await run(job) });
    } catch (error) {
      results.push({ ok: false, error: String(error && error.stack ? error.stack : error) });
    }
  }
  process.stdout.write(JSON.stringify(results) + '\n');
} else {
  try {
    process.stdout.write(JSON.stringify(await run({ mode, file })) + '\n');
  } catch (error) {
    console.error(String(error && error.stack ? error.stack : error));
    process.exit(1);
  }
}
