// Checks what scripts/reliability.sh's targets received against what the writer had
// acknowledged (writer.mjs --journal) and against the source database. Node.js built-ins only.
//
//   node verify.mjs --journal FILE --resources items,orders --source DIR
//                   [--state NAME=DIR[:REVFIELD]]...  [--stream NAME=KIND:PATH[:FILTER]]...
//
// --source DIR         DIR/<resource>.jsonl: `s3db list` of each source resource
// --state NAME=DIR:F   a state target dumped the same way (DIR/<resource>.jsonl); field F of a
//                      row holds the source revision (_sourceRev for s3db, _s3db_rev for
//                      PostgreSQL). The target must equal the source exactly: same ids, same
//                      n / v / tag, same revision.
// --stream NAME=jsonl:DIR            DIR/<resource>.jsonl rows with _change_id
// --stream NAME=webhook:FILE:PATH    the webhook sink's HOOK_LOG, requests to PATH only; the
//                                    change id is the webhook-id header (signing is on)
// --stream NAME=sqs:FILE             sqs.mjs drain output, one received message per line
// Stream targets: every acknowledged change id arrived at least once, the first arrivals of
// one record came in revision order; duplicates (arrivals of an id already seen) are counted.
//
// Prints one JSON line: {"changes", "lost", "duplicated", "extra", "targets": {...}, "ok"} and
// the first problems on stderr. Exit code 1 when anything is lost, differs or is out of order.
import fs from 'node:fs';
import path from 'node:path';

const args = process.argv.slice(2);
const options = { journal: '', resources: [], source: '', state: [], stream: [] };
for (let i = 0; i < args.length; i += 2) {
  const key = args[i].replace(/^--/, '');
  const value = args[i + 1];
  if (!(key in options) || value === undefined) throw new Error(`bad option ${args[i]}`);
  if (Array.isArray(options[key]) && key !== 'resources') options[key].push(value);
  else if (key === 'resources') options.resources = value.split(',');
  else options[key] = value;
}

function readLines(file) {
  if (!fs.existsSync(file)) return [];
  return fs.readFileSync(file, 'utf8').split('\n').filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line));
}

const problems = [];
function problem(text) { if (problems.length < 20) problems.push(text); }

// ---- what the writer acknowledged ----
const acked = new Map();    // change id -> {r, id, rev, a}
const lastAck = new Map();  // "r/id" -> {rev, a}
for (const line of readLines(options.journal)) {
  if (line.summary) continue;
  acked.set(`${line.r}:${line.id}:${line.rev}`, line);
  lastAck.set(`${line.r}/${line.id}`, line);
}

// ---- the source keeps every acknowledged write ----
const source = new Map();  // "r/id" -> record
for (const resource of options.resources) {
  for (const record of readLines(path.join(options.source, `${resource}.jsonl`))) {
    source.set(`${resource}/${record.id}`, record);
  }
}
let sourceLost = 0;
for (const [key, last] of lastAck) {
  const record = source.get(key);
  if (last.a === 'delete') {
    if (record) { sourceLost++; problem(`source: ${key} was deleted (rev ${last.rev}) but exists`); }
  } else if (!record || record._rev !== last.rev) {
    sourceLost++;
    problem(`source: ${key} should be at rev ${last.rev}, is ${record ? record._rev : 'absent'}`);
  }
}

const targets = { source: { kind: 'source', records: source.size, lost: sourceLost } };
let lost = sourceLost;
let duplicated = 0;
let extra = 0;

// ---- state targets equal the source ----
const compared = ['n', 'v', 'tag'];
for (const spec of options.state) {
  const [name, rest] = spec.split(/=(.*)/s);
  const [dir, revField = '_sourceRev'] = rest.split(':');
  const rows = new Map();
  for (const resource of options.resources) {
    for (const row of readLines(path.join(dir, `${resource}.jsonl`))) {
      rows.set(`${resource}/${row.id}`, row);
    }
  }
  let missing = 0, different = 0, surplus = 0;
  for (const [key, record] of source) {
    const row = rows.get(key);
    if (!row) { missing++; problem(`${name}: ${key} missing`); continue; }
    const same = compared.every((field) => row[field] === record[field]) &&
                 Number(row[revField]) === record._rev;
    if (!same) {
      different++;
      problem(`${name}: ${key} differs: ${JSON.stringify(row)} vs source ${JSON.stringify(record)}`);
    }
  }
  for (const key of rows.keys()) {
    if (!source.has(key)) { surplus++; problem(`${name}: ${key} exists but not in the source`); }
  }
  targets[name] = { kind: 'state', records: rows.size, missing, different, surplus,
                    lost: missing + different + surplus };
  lost += missing + different + surplus;
}

// ---- stream targets: at least once, in order per record ----
function splitChangeId(changeId) {
  const first = changeId.indexOf(':');
  const last = changeId.lastIndexOf(':');
  return { r: changeId.slice(0, first), id: changeId.slice(first + 1, last),
           rev: Number(changeId.slice(last + 1)) };
}

function arrivalsOf(kind, file, filter) {
  const out = [];
  if (kind === 'jsonl') {
    for (const resource of options.resources) {
      for (const row of readLines(path.join(file, `${resource}.jsonl`))) out.push(row._change_id);
    }
  } else if (kind === 'webhook') {
    for (const request of readLines(file)) {
      if (request.path !== filter || request.status < 200 || request.status > 299) continue;
      out.push(request.headers['webhook-id']);
    }
  } else if (kind === 'sqs') {
    for (const message of readLines(file)) {
      const body = JSON.parse(message.Body);
      const rev = body.data._rev + (body.action === 'delete' ? 1 : 0);
      out.push(`${body.resource}:${body.data.id}:${rev}`);
    }
  } else {
    throw new Error(`unknown stream kind ${kind}`);
  }
  return out;
}

for (const spec of options.stream) {
  const [name, rest] = spec.split(/=(.*)/s);
  const [kind, file, filter] = rest.split(':');
  const arrivals = arrivalsOf(kind, file, filter);
  const seen = new Set();
  const highest = new Map();  // "r/id" -> highest revision among first arrivals
  let dups = 0, outOfOrder = 0, surplus = 0;
  for (const changeId of arrivals) {
    if (seen.has(changeId)) { dups++; continue; }
    seen.add(changeId);
    if (!acked.has(changeId)) surplus++;  // logged, but its answer was lost: not acknowledged
    const { r, id, rev } = splitChangeId(changeId);
    const key = `${r}/${id}`;
    if ((highest.get(key) ?? 0) > rev) {
      outOfOrder++;
      problem(`${name}: ${changeId} arrived after revision ${highest.get(key)}`);
    } else {
      highest.set(key, rev);
    }
  }
  let missing = 0;
  for (const changeId of acked.keys()) {
    if (!seen.has(changeId)) { missing++; problem(`${name}: ${changeId} never arrived`); }
  }
  targets[name] = { kind: 'stream', arrivals: arrivals.length, distinct: seen.size,
                    lost: missing, duplicated: dups, extra: surplus, outOfOrder };
  lost += missing;
  duplicated += dups;
  extra += surplus;
}

const outOfOrder = Object.values(targets).reduce((sum, t) => sum + (t.outOfOrder || 0), 0);
const ok = lost === 0 && outOfOrder === 0 && acked.size > 0;
for (const text of problems) process.stderr.write(`verify: ${text}\n`);
process.stdout.write(JSON.stringify({ changes: acked.size, lost, duplicated, extra, outOfOrder,
                                      targets, ok }) + '\n');
process.exit(ok ? 0 : 1);
