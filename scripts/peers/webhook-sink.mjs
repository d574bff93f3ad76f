// Webhook sink for s3db's tests: an HTTP server on 127.0.0.1 that records every request and
// answers as the test tells it to. Node.js built-ins only.
//
// Recording: every request whose path does not start with /__ is recorded as
//   {"seq":1, "time":"2024-...Z", "method":"POST", "path":"/hooks", "query":{"a":"1"},
//    "headers":{...lower-case names...}, "body":"<utf-8 text>", "bodyBase64":"...",
//    "status":200}
// ("status" is the reply it got; a query parameter given twice keeps its last value) and, when
// HOOK_LOG names a file, appended to it as one JSON line.
//
// Choosing the reply, first rule that applies:
//   1. the next scripted response, if any is left (see POST /__script);
//   2. the query parameter ?status=NNN on the request itself;
//   3. HOOK_STATUS (default 200).
// The reply body is {"received": <seq>} unless a scripted response gives "body".
//
// Control endpoints:
//   GET  /__health    200 "ok"
//   GET  /__requests  every recorded request, oldest first, as a JSON array
//   POST /__reset     forgets the recorded requests and the remaining script
//   POST /__script    queues scripted responses, consumed one per recorded request, in order:
//                       {"responses":[{"status":500},
//                                     {"status":429,"headers":{"Retry-After":"1"}},
//                                     {"status":200,"delayMs":1500,"body":"late"}]}
//                     status (default 200), delayMs (wait before replying, default 0),
//                     headers (added to the reply), body (string, or JSON value to serialise).
//                     A new script replaces what is left of the previous one.
//   GET  /__script    the responses not yet consumed
//
// Environment: HOOK_PORT (default 18080), HOOK_STATUS (default 200), HOOK_LOG (optional file).
// Stops on SIGTERM or SIGINT.
import fs from 'node:fs';
import http from 'node:http';

const port = Number(process.env.HOOK_PORT || 18080);
const defaultStatus = Number(process.env.HOOK_STATUS || 200);
const logFile = process.env.HOOK_LOG || '';

let recorded = [];
let script = [];
let nextSeq = 1;

function sendJson(res, status, value, extraHeaders = {}) {
  res.writeHead(status, { 'content-type': 'application/json', ...extraHeaders });
  res.end(JSON.stringify(value));
}

function parseScript(text) {
  const parsed = JSON.parse(text);
  if (!parsed || !Array.isArray(parsed.responses)) {
    throw new Error('expected {"responses":[...]}');
  }
  return parsed.responses.map((response, index) => {
    if (!response || typeof response !== 'object') throw new Error(`responses[${index}]: object`);
    const status = Number(response.status ?? 200);
    if (!Number.isInteger(status) || status < 100 || status > 599) {
      throw new Error(`responses[${index}].status: ${response.status} is not an HTTP status`);
    }
    return {
      status,
      delayMs: Math.max(0, Number(response.delayMs ?? 0)),
      headers: response.headers ?? {},
      body: response.body,
    };
  });
}

function handleControl(req, res, path, body) {
  if (path === '/__health') {
    res.end('ok');
  } else if (path === '/__requests' && req.method === 'GET') {
    sendJson(res, 200, recorded);
  } else if (path === '/__reset' && req.method === 'POST') {
    recorded = [];
    script = [];
    sendJson(res, 200, { reset: true });
  } else if (path === '/__script' && req.method === 'POST') {
    try {
      script = parseScript(body.toString('utf8'));
      sendJson(res, 200, { queued: script.length });
    } catch (error) {
      sendJson(res, 400, { error: `bad script: ${error.message}` });
    }
  } else if (path === '/__script' && req.method === 'GET') {
    sendJson(res, 200, { responses: script });
  } else {
    sendJson(res, 404, { error: `no control endpoint ${req.method} ${path}` });
  }
}

function chooseReply(url) {
  if (script.length > 0) return script.shift();
  const fromQuery = Number(url.searchParams.get('status'));
  const status = Number.isInteger(fromQuery) && fromQuery >= 100 && fromQuery <= 599
    ? fromQuery : defaultStatus;
  return { status, delayMs: 0, headers: {}, body: undefined };
}

function record(req, url, body, status) {
  const entry = {
    seq: nextSeq++,
    time: new Date().toISOString(),
    method: req.method,
    path: url.pathname,
    query: Object.fromEntries(url.searchParams),
    headers: req.headers,
    body: body.toString('utf8'),
    bodyBase64: body.toString('base64'),
    status,
  };
  recorded.push(entry);
  if (logFile) fs.appendFileSync(logFile, JSON.stringify(entry) + '\n');
  return entry;
}

function reply(res, entry, response) {
  const send = () => {
    if (res.destroyed) return;  // the client gave up (e.g. its timeout fired)
    if (response.body === undefined) {
      sendJson(res, response.status, { received: entry.seq }, response.headers);
    } else if (typeof response.body === 'string') {
      res.writeHead(response.status, { 'content-type': 'text/plain', ...response.headers });
      res.end(response.body);
    } else {
      sendJson(res, response.status, response.body, response.headers);
    }
  };
  if (response.delayMs > 0) setTimeout(send, response.delayMs);
  else send();
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk));
  req.on('end', () => {
    const url = new URL(req.url, 'http://127.0.0.1');
    const body = Buffer.concat(chunks);
    if (url.pathname.startsWith('/__')) {
      handleControl(req, res, url.pathname, body);
      return;
    }
    const response = chooseReply(url);
    reply(res, record(req, url, body, response.status), response);
  });
});
// A reply cut short by the client is the client's business, not a reason to stop.
server.on('clientError', (error, socket) => socket.destroy());

server.listen(port, '127.0.0.1', () => {
  console.log(`webhook-sink listening on http://127.0.0.1:${port}`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  });
}
