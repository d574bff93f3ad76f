// The s3db.js side of the comparison: one phase, one target, one writer mode, one process.
//   node24 js-side.mjs --phase plain|replicate --target s3db-memory|s3db-file|webhook|postgresql
//                      --mode 1w|16w|paced --records FILE --n N --work DIR --out FILE.json
//                      [--webhook URL] [--pg URL] [--pg-schema S] [--rate 1000]
//                      [--webhook-client recker|fetch] [--timeout-s 600]
// plain: N inserts into a database of the target's source storage with no plugin (write
// throughput without the plugin). replicate: the same writes with s3db.js's ReplicatorPlugin
// and one replicator to the target, then waits until every record is at the target.
// Write -> visible is measured from the moment each insert is issued to: the receiver's arrival
// time (webhook), or the replicator's `plg:replicator:replicated` event, which s3db.js emits
// after the target write resolved (s3db: record stored; PostgreSQL: INSERT committed).
import { mkdirSync, writeFileSync } from 'node:fs';
import { registerHooks } from 'node:module';
import { latencySummary, nowMs, parseArgs, readRecords } from './common.mjs';

// s3db.js logs through pino at `info` by default (also in the databases its s3db replicator
// opens); warnings and errors still show.
process.env.S3DB_LOG_LEVEL ??= 'warn';

const options = parseArgs(process.argv.slice(2), {
  phase: 'replicate', target: 's3db-memory', mode: '1w', records: '', n: 20000, work: '',
  out: '', webhook: '', pg: '', 'pg-schema': 'public', rate: 1000, 'webhook-client': 'recker',
  'timeout-s': 600,
});
for (const required of ['records', 'work', 'out']) {
  if (!options[required]) throw new Error(`--${required} is required`);
}
if (!['recker', 'fetch'].includes(options['webhook-client'])) {
  throw new Error(`--webhook-client must be recker or fetch, got '${options['webhook-client']}'`);
}
// s3db.js's webhook replicator uses recker when `import('recker')` succeeds and its built-in
// fetch client otherwise; failing that one import (from its HTTP client module only) selects
// fetch without touching the rest of s3db.js, which needs recker for its S3 client.
if (options['webhook-client'] === 'fetch') {
  registerHooks({
    resolve(specifier, context, nextResolve) {
      if (specifier === 'recker' && context.parentURL?.endsWith('/s3db.js/dist/concerns/http-client.js')) {
        globalThis.reckerRefusedToHttpClient = (globalThis.reckerRefusedToHttpClient ?? 0) + 1;
        const error = new Error('recker disabled by --webhook-client fetch');
        error.code = 'ERR_MODULE_NOT_FOUND';
        throw error;
      }
      return nextResolve(specifier, context);
    },
  });
}
const { Database, ReplicatorPlugin } = await import('s3db.js');

const records = readRecords(options.records, options.n);
// The harness's own share of the peak: the loaded module and the parsed records.
const rssWithRecordsMb = process.memoryUsage().rss / 1024 / 1024;
const sourceKind = options.target === 's3db-file' ? 'file' : 'memory';
const writers = options.mode === '16w' ? 16 : 1;
mkdirSync(options.work, { recursive: true });

const attributes = {
  name: 'string', email: 'string', age: 'number', phone: 'string', company: 'string',
  score: 'number', active: 'boolean', createdAt: 'string',
  address: { street: 'string', city: 'string', zip: 'string', country: 'string', region: 'string' },
  tags: 'array|items:string', bio: 'string',
};
const tag = `${options.phase}-${options.target}-${options.mode}-${process.pid}`;
function connectionString(role) {
  return sourceKind === 'file'
    ? `file://${options.work}/js-${tag}-${role}`
    : `memory://js-${tag}-${role}/db`;
}

async function openDatabase(role) {
  const database = new Database({ connectionString: connectionString(role), logLevel: 'warn' });
  await database.connect();
  return database;
}

// Writes every record with `writers` concurrent loops (or at `rate` per second when paced);
// returns the issue time of each record and the wall time of the whole write phase.
async function writeAll(resource, issued) {
  let failures = 0;
  let firstError = null;
  const insert = async (index) => {
    issued[index] = nowMs();
    try {
      await resource.insert(records[index]);
    } catch (error) {
      failures++;
      firstError ??= error.message;
    }
  };
  const started = nowMs();
  if (options.mode === 'paced') {
    // Open loop: the i-th insert is issued at started + i / rate, whether or not earlier ones
    // have finished (at most 256 in flight).
    const inFlight = new Set();
    for (let i = 0; i < records.length; i++) {
      const due = started + (i * 1000) / options.rate;
      const wait = due - nowMs();
      if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait - 0.5));
      while (nowMs() < due) await new Promise((resolve) => setImmediate(resolve));
      while (inFlight.size >= 256) await Promise.race(inFlight);
      const promise = insert(i).finally(() => inFlight.delete(promise));
      inFlight.add(promise);
    }
    await Promise.all(inFlight);
  } else {
    let next = 0;
    await Promise.all(Array.from({ length: writers }, async () => {
      for (let i = next++; i < records.length; i = next++) await insert(i);
    }));
  }
  return { started, seconds: (nowMs() - started) / 1000, failures, firstError };
}

function peakRssMb() {
  return process.resourceUsage().maxRSS / 1024;
}

const result = {
  system: 's3db.js', version: '21.6.2', node: process.version, phase: options.phase,
  target: options.target, mode: options.mode, n: options.n, writers,
  webhookClient: options.target === 'webhook' ? options['webhook-client'] : undefined,
  rssWithRecordsMb,
};

if (options.phase === 'plain') {
  const database = await openDatabase('plain');
  const resource = await database.createResource({ name: 'customers', attributes });
  const issued = new Float64Array(records.length);
  const written = await writeAll(resource, issued);
  Object.assign(result, {
    writeSeconds: written.seconds, writesPerSecond: records.length / written.seconds,
    writeFailures: written.failures, firstError: written.firstError, peakRssMb: peakRssMb(),
  });
} else {
  const source = await openDatabase('source');
  const resource = await source.createResource({ name: 'customers', attributes });
  const arrivals = new Map();  // id -> first visible time (ms)
  let duplicates = 0;
  let replicatorErrors = 0;
  let firstReplicatorError = null;
  let target = null;
  let replicator;
  if (options.target.startsWith('s3db')) {
    // The target database exists (with its resource) before the plugin connects to it.
    target = await openDatabase('target');
    await target.createResource({ name: 'customers', attributes });
    replicator = { driver: 's3db', resources: { customers: 'customers' }, config: { connectionString: connectionString('target') } };
  } else if (options.target === 'webhook') {
    if (!options.webhook) throw new Error('--webhook URL is required for the webhook target');
    replicator = { driver: 'webhook', resources: ['customers'], config: { url: options.webhook } };
  } else if (options.target === 'postgresql') {
    if (!options.pg) throw new Error('--pg URL is required for the postgresql target');
    const table = `${options['pg-schema']}.js_customers`;
    replicator = {
      driver: 'postgres', resources: { customers: [{ table, actions: ['insert'] }] },
      config: { connectionString: options.pg },
    };
  } else {
    throw new Error(`unknown --target '${options.target}' (s3db-memory, s3db-file, webhook, postgresql)`);
  }
  const plugin = new ReplicatorPlugin({ replicators: [replicator] });
  plugin.on('plg:replicator:replicated', (event) => {
    if (options.target === 'webhook') return;  // the receiver's clock is the one that counts
    const at = nowMs();
    if (arrivals.has(event.recordId)) duplicates++;
    else arrivals.set(event.recordId, at);
  });
  plugin.on('plg:replicator:error', (event) => {
    replicatorErrors++;
    firstReplicatorError ??= event.error;
  });
  await source.usePlugin(plugin);

  const issued = new Float64Array(records.length);
  const written = await writeAll(resource, issued);
  const writesDone = nowMs();

  // The receiver's control endpoints. Under a burst (s3db.js sends one request per write, all at
  // once) a poll can fail to connect; it is tried again, for up to a minute.
  async function receiverJson(path) {
    for (let attempt = 0; ; attempt++) {
      try {
        return await (await fetch(new URL(path, options.webhook))).json();
      } catch (error) {
        if (attempt >= 600) throw new Error(`receiver ${path}: ${error.message}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  }

  // Wait until every record is at the target (or nothing has arrived for 30 s, or the timeout).
  const deadline = writesDone + options['timeout-s'] * 1000;
  let receiver = null;
  let lastProgress = nowMs();
  let lastCount = -1;
  while (nowMs() < deadline && nowMs() - lastProgress < 30000) {
    let count = arrivals.size;
    if (options.target === 'webhook') {
      receiver = await receiverJson('/__summary');
      count = receiver.unique;
    }
    if (count >= records.length) break;
    if (count !== lastCount) {
      lastCount = count;
      lastProgress = nowMs();
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const pollDone = nowMs();
  if (options.target === 'webhook') {
    // Anything resent after the last first arrival: give retries a moment to land, then count.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    receiver = await receiverJson('/__summary');
    const times = await receiverJson('/__arrivals');
    for (const [id, at] of Object.entries(times)) arrivals.set(id, at);
    duplicates = receiver.duplicates;
  }
  const latencies = [];
  let lastVisible = written.started;
  records.forEach((record, index) => {
    const at = arrivals.get(record.id);
    if (at === undefined) return;
    latencies.push(at - issued[index]);
    lastVisible = Math.max(lastVisible, at);
  });
  let atTarget = null;
  if (target) atTarget = await target.resources.customers.count();
  const allVisibleSeconds = (lastVisible - written.started) / 1000;
  Object.assign(result, {
    writeSeconds: written.seconds, writesPerSecond: records.length / written.seconds,
    writeFailures: written.failures, firstError: written.firstError,
    allVisibleSeconds: arrivals.size === records.length ? allVisibleSeconds : null,
    replicationPerSecond: arrivals.size / allVisibleSeconds,
    visible: arrivals.size, missing: records.length - arrivals.size, duplicates,
    atTarget, receiver, replicatorErrors,
    reckerRefusedToHttpClient: globalThis.reckerRefusedToHttpClient ?? 0, firstReplicatorError,
    waitedSeconds: (pollDone - writesDone) / 1000,
    latencyMs: latencySummary(latencies), peakRssMb: peakRssMb(),
  });
  writeFileSync(options.out.replace(/\.json$/, '') + '.latencies', latencies.map((v) => v.toFixed(3)).join('\n') + '\n');
}
writeFileSync(options.out, JSON.stringify(result, null, 2) + '\n');
console.log(JSON.stringify({ ...result, receiver: undefined }));
process.exit(0);
