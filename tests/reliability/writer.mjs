// Workload for scripts/reliability.sh: writes inserts, updates and deletes through the HTTP API
// of a running `s3db run`, and keeps going while that process is killed and restarted.
// Node.js built-ins only.
//
//   node writer.mjs --lock STATE_DIR/s3db-cli.lock --resources items,orders --changes 10000
//                   [--workers 8] [--rate 0] [--seconds 0] [--journal FILE] [--stats FILE]
//                   [--errors FILE] [--seed 1] [--give-up-after 600]
//
// The service's address is read from its lock file (`{"pid":..,"url":".."}`) before every
// retry, so a restarted service on another port is found again.
//
// Each worker owns its records (ids w<worker>-<n>), so it knows every record's revision: an
// insert or update answers with the stored record (`_rev`), a delete is the last revision + 1.
// Acknowledged changes go to --journal as JSON lines {"r","id","rev","a"}; the last line is
// a summary {"summary":{...}}.
//
// A request without an answer (refused, reset, 5xx) may or may not have been applied, so it is
// repeated until it is acknowledged: an insert as an upsert, an update as the same update. A
// repeated delete that answers 404 was applied by the lost attempt, which may have died before
// its change reached the change log (docs/replicator.md, Limits): the record is written again
// and deleted again, and counted as "deletesRepeated".
//
// --rate N: each worker sends at most N requests per second (0: as fast as answers come).
// --seconds S: stop after S seconds instead of after --changes changes.
// --stats FILE: one CSV line per 5 s window: elapsed s, requests, p50 ms, p99 ms, max ms,
// failed attempts.
import fs from 'node:fs';
import http from 'node:http';

function parseArgs(argv) {
  const options = {
    workers: 8, rate: 0, seconds: 0, changes: 1000, seed: 1, giveUpAfter: 600,
    resources: 'items', journal: '', stats: '', errors: '', lock: '',
  };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '').replace(/-(\w)/g, (_, c) => c.toUpperCase());
    if (!(key in options)) throw new Error(`unknown option ${argv[i]}`);
    const value = argv[i + 1];
    if (value === undefined) throw new Error(`option ${argv[i]} needs a value`);
    options[key] = typeof options[key] === 'number' ? Number(value) : value;
  }
  if (!options.lock) throw new Error('--lock FILE is required (the service lock file)');
  options.resources = options.resources.split(',').filter(Boolean);
  return options;
}

const options = parseArgs(process.argv.slice(2));

// A small deterministic PRNG (mulberry32), so a run can be repeated with --seed.
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const agent = new http.Agent({ keepAlive: true, maxSockets: options.workers * 2 });
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

let serviceUrl = '';
function readServiceUrl() {
  try {
    const lock = JSON.parse(fs.readFileSync(options.lock, 'utf8'));
    if (typeof lock.url === 'string') serviceUrl = lock.url;
  } catch {
    // not written yet (the service is starting): keep the last one
  }
  return serviceUrl;
}

// One request; resolves {status, body} or {status: 0, error} when there was no answer.
function send(method, path, body) {
  const base = serviceUrl || readServiceUrl();
  if (!base) return Promise.resolve({ status: 0, error: 'no service URL in the lock file yet' });
  return new Promise((resolve) => {
    const url = new URL(path, base);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const request = http.request(url, {
      method, agent, timeout: 30000,
      headers: payload === undefined ? {} : {
        'content-type': 'application/json', 'content-length': Buffer.byteLength(payload),
      },
    }, (response) => {
      const chunks = [];
      response.on('data', (chunk) => chunks.push(chunk));
      response.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed = null;
        try { parsed = text ? JSON.parse(text) : null; } catch { parsed = text; }
        resolve({ status: response.statusCode, body: parsed });
      });
      response.on('error', (error) => resolve({ status: 0, error: error.message }));
    });
    request.on('timeout', () => request.destroy(new Error('timed out after 30 s')));
    request.on('error', (error) => resolve({ status: 0, error: error.code || error.message }));
    if (payload !== undefined) request.write(payload);
    request.end();
  });
}

const journal = [];
const errorCounts = new Map();  // distinct failure messages -> count
const summary = {
  acknowledged: 0, inserts: 0, updates: 0, deletes: 0, failedAttempts: 0,
  deletesRepeated: 0, rejected: 0,
};
let latencies = [];
let windowFailures = 0;
const statsLines = [];
const started = Date.now();
let budget = options.changes;
let lastAnswer = Date.now();
let stopping = false;

function noteError(text) {
  const key = String(text).slice(0, 300);
  errorCounts.set(key, (errorCounts.get(key) || 0) + 1);
}

// Sends until the service gives a definite answer (2xx or 4xx other than 409). Returns {status, body, retried}.
async function untilAnswered(method, path, body, retryAs) {
  let retried = false;
  for (;;) {
    const began = process.hrtime.bigint();
    const answer = await send(method, path, body);
    const ms = Number(process.hrtime.bigint() - began) / 1e6;
    // 409: a delete is half done (the record is "being deleted"); it is finished by a retry.
    if (answer.status >= 200 && answer.status < 500 && answer.status !== 409) {
      latencies.push(ms);
      lastAnswer = Date.now();
      return { ...answer, retried };
    }
    summary.failedAttempts++;
    windowFailures++;
    noteError(answer.status ? `HTTP ${answer.status}: ${JSON.stringify(answer.body)}` : answer.error);
    if (Date.now() - lastAnswer > options.giveUpAfter * 1000) {
      throw new Error(`no answer from the service for ${options.giveUpAfter} s`);
    }
    retried = true;
    if (retryAs) ({ method, path, body } = retryAs);
    await sleep(50);
    readServiceUrl();
  }
}

function ack(resource, id, rev, action) {
  journal.push({ r: resource, id, rev, a: action });
  summary.acknowledged++;
  summary[action === 'insert' ? 'inserts' : action === 'update' ? 'updates' : 'deletes']++;
}

function recordPath(resource, id) {
  return `/resources/${encodeURIComponent(resource)}/records` +
         (id === undefined ? '' : `/${encodeURIComponent(id)}`);
}

function reject(what, answer) {
  summary.rejected++;
  noteError(`${what}: HTTP ${answer.status}: ${JSON.stringify(answer.body)}`);
}

async function worker(index) {
  const random = rng(options.seed * 1000 + index);
  const live = [];  // {resource, id, rev}
  let next = 0;
  const interval = options.rate > 0 ? 1000 / options.rate : 0;
  let due = Date.now();
  while (!stopping) {
    if (options.seconds > 0 ? Date.now() - started >= options.seconds * 1000 : budget <= 0) break;
    budget--;
    if (interval > 0) {
      due += interval;
      const wait = due - Date.now();
      if (wait > 0) await sleep(wait);
    }
    const choice = random();
    if (live.length < 8 || choice < 0.3) {
      const resource = options.resources[Math.floor(random() * options.resources.length)];
      const id = `w${index}-${next++}`;
      const record = { id, n: 0, v: `v${Math.floor(random() * 1e9)}`, tag: `t${index}` };
      const answer = await untilAnswered('POST', recordPath(resource), record,
                                         { method: 'POST', path: `${recordPath(resource)}?upsert=true`,
                                           body: record });
      if (answer.status >= 300) { reject(`insert ${resource}/${id}`, answer); continue; }
      const rev = answer.body._rev;
      ack(resource, id, rev, rev === 1 ? 'insert' : 'update');
      live.push({ resource, id, rev, n: 0 });
    } else if (choice < 0.85) {
      // Updates favour a few hot records, so one record gets many revisions.
      const pick = random() < 0.5 ? Math.min(live.length - 1, Math.floor(random() * 4))
                                  : Math.floor(random() * live.length);
      const entry = live[pick];
      entry.n++;
      const changes = { n: entry.n, v: `u${Math.floor(random() * 1e9)}` };
      const answer = await untilAnswered('PATCH', recordPath(entry.resource, entry.id), changes);
      if (answer.status >= 300) { reject(`update ${entry.resource}/${entry.id}`, answer); continue; }
      entry.rev = answer.body._rev;
      ack(entry.resource, entry.id, entry.rev, 'update');
    } else {
      const pick = Math.floor(random() * live.length);
      const [entry] = live.splice(pick, 1);
      let answer = await untilAnswered('DELETE', recordPath(entry.resource, entry.id));
      let rev = entry.rev + 1;
      if (answer.status === 404 && answer.retried) {
        // The lost attempt deleted it; its change may never have been logged. Write and delete
        // again, so the delete is certainly in the change log.
        summary.deletesRepeated++;
        const record = { id: entry.id, n: entry.n, v: 'again', tag: `t${index}` };
        const again = await untilAnswered('POST', `${recordPath(entry.resource)}?upsert=true`, record);
        if (again.status >= 300) { reject(`rewrite ${entry.resource}/${entry.id}`, again); continue; }
        ack(entry.resource, entry.id, again.body._rev, 'insert');
        rev = again.body._rev + 1;
        answer = await untilAnswered('DELETE', recordPath(entry.resource, entry.id));
      }
      if (answer.status >= 300) { reject(`delete ${entry.resource}/${entry.id}`, answer); continue; }
      ack(entry.resource, entry.id, rev, 'delete');
    }
  }
}

function percentile(sorted, p) {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

const statsTimer = setInterval(() => {
  const sorted = latencies.sort((a, b) => a - b);
  latencies = [];
  statsLines.push([((Date.now() - started) / 1000).toFixed(1), sorted.length,
                   percentile(sorted, 0.5).toFixed(2), percentile(sorted, 0.99).toFixed(2),
                   (sorted[sorted.length - 1] || 0).toFixed(2), windowFailures].join(','));
  windowFailures = 0;
  if (options.stats) {
    fs.writeFileSync(options.stats,
                     'elapsed_s,requests,p50_ms,p99_ms,max_ms,failed_attempts\n' +
                     statsLines.join('\n') + '\n');
  }
}, 5000);

process.on('SIGTERM', () => { stopping = true; });

let failure = null;
try {
  await Promise.all(Array.from({ length: options.workers }, (_, i) => worker(i)));
} catch (error) {
  failure = error;
}
clearInterval(statsTimer);
agent.destroy();
summary.seconds = (Date.now() - started) / 1000;
summary.errors = Object.fromEntries(errorCounts);
if (options.journal) {
  fs.writeFileSync(options.journal, journal.map((line) => JSON.stringify(line)).join('\n') +
                   (journal.length ? '\n' : '') + JSON.stringify({ summary }) + '\n');
}
if (options.errors) fs.writeFileSync(options.errors, JSON.stringify(summary.errors, null, 1) + '\n');
process.stdout.write(JSON.stringify({ acknowledged: summary.acknowledged,
                                      failedAttempts: summary.failedAttempts,
                                      deletesRepeated: summary.deletesRepeated,
                                      rejected: summary.rejected,
                                      seconds: summary.seconds }) + '\n');
if (failure) {
  process.stderr.write(`writer: ${failure.message}\n`);
  process.exit(1);
}
process.exit(summary.rejected > 0 ? 1 : 0);
