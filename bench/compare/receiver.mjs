// The webhook receiver both systems send to: answers every POST with 200 at once and notes,
// per record id, when it first arrived and how many times. Run with `node receiver.mjs PORT`.
//   POST /__reset               forget everything
//   GET  /__summary             {requests, records, unique, duplicates}
//   GET  /__arrivals            {id: first arrival, wall-clock ms}
// Bodies may be one change ({..., data: {id}}) or a batch ({batch: [change, ...]}); other
// paths and shapes are counted as requests only.
import { createServer } from 'node:http';
import { nowMs } from './common.mjs';

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  console.error('usage: node receiver.mjs PORT');
  process.exit(2);
}

let arrivals = new Map();
let counts = new Map();
let requests = 0;
let records = 0;

function note(entry, at) {
  const id = entry?.data?.id ?? entry?.id;
  if (typeof id !== 'string') return;
  records++;
  const seen = counts.get(id);
  if (seen === undefined) {
    counts.set(id, 1);
    arrivals.set(id, at);
  } else {
    counts.set(id, seen + 1);
  }
}

function reply(response, status, body) {
  const text = JSON.stringify(body);
  response.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  response.end(text);
}

const server = createServer((request, response) => {
  if (request.method === 'GET' && request.url === '/__summary') {
    let duplicates = 0;
    for (const count of counts.values()) duplicates += count - 1;
    return reply(response, 200, { requests, records, unique: counts.size, duplicates });
  }
  if (request.method === 'GET' && request.url === '/__arrivals') {
    return reply(response, 200, Object.fromEntries(arrivals));
  }
  const chunks = [];
  request.on('data', (chunk) => chunks.push(chunk));
  request.on('end', () => {
    if (request.url === '/__reset') {
      arrivals = new Map();
      counts = new Map();
      requests = 0;
      records = 0;
      return reply(response, 200, { reset: true });
    }
    const at = nowMs();
    requests++;
    if (request.method === 'POST' && chunks.length) {
      try {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        if (Array.isArray(body?.batch)) body.batch.forEach((entry) => note(entry, at));
        else note(body, at);
      } catch {
        // wrk's fixed body, or anything that is not JSON: counted as a request only
      }
    }
    reply(response, 200, { ok: true });
  });
});
server.keepAliveTimeout = 60000;
server.listen(port, '127.0.0.1', () => console.log(`receiver listening on 127.0.0.1:${port}`));
