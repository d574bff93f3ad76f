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
//   1. the next response of the script for the request's path (POST /__script with "path");
//   2. the next response of the global script (POST /__script without "path");
//   3. the query parameter ?status=NNN on the request itself;
//   4. HOOK_STATUS (default 200).
// The reply body is {"received": <seq>} unless a scripted response gives "body".
//
// Parallel tests: the sink is shared, so a test that runs beside others should send to a path of
// its own (e.g. /hooks/<unique token>) and scope its control calls to it with "path". A path
// scope P covers the request paths P and P/...; the longest matching scope wins.
//
// Control endpoints:
//   GET  /__health    200 "ok"
//   GET  /__requests  recorded requests, oldest first, as a JSON array; ?path=P: only those in P
//   POST /__reset     forgets the recorded requests and every script;
//                     ?path=P (or a body {"path":P}): only the requests in P and P's script
//   POST /__script    queues scripted responses, consumed one per recorded request, in order:
//                       {"path":"/hooks/t1",                       (optional, see above)
//                        "responses":[{"status":500},
//                                     {"status":429,"headers":{"Retry-After":"1"}},
//                                     {"status":200,"delayMs":1500,"body":"late"}]}
//                     status (default 200), delayMs (wait before replying, default 0),
//                     headers (added to the reply), body (string, or JSON value to serialise).
//                     A new script replaces what is left of the previous one for the same scope.
//   GET  /__script    the responses not yet consumed, per scope ("" is the global one)
//
// Environment: HOOK_PORT (default 18080), HOOK_STATUS (default 200), HOOK_LOG (optional file).
// Stops on SIGTERM or SIGINT.
import fs from 'node:fs';
import http from 'node:http';

const port = Number(process.env.HOOK_PORT || 18080);
const defaultStatus = Number(process.env.HOOK_STATUS || 200);
const logFile = process.env.HOOK_LOG || '';

let recorded = [];
const scripts = new Map();  // scope path ("" = global) -> responses not yet consumed
let nextSeq = 1;

function normaliseScope(path) {
  if (path === undefined || path === null || path === '') return '';
  if (typeof path !== 'string' || !path.startsWith('/')) {
    throw new Error(`path: expected a string starting with "/", got ${JSON.stringify(path)}`);
  }
  return path.length > 1 ? path.replace(/\/+$/, '') : path;
}

function inScope(requestPath, scope) {
  return scope === '' || scope === '/' || requestPath === scope ||
         requestPath.startsWith(scope + '/');
}

// The longest non-empty scope covering `requestPath` that still has responses, else "".
function scopeFor(requestPath) {
  let best = null;
  for (const [scope, responses] of scripts) {
    if (scope === '' || responses.length === 0 || !inScope(requestPath, scope)) continue;
    if (best === null || scope.length > best.length) best = scope;
  }
  return best ?? '';
}

function sendJson(res, status, value, extraHeaders = {}) {
  res.writeHead(status, { 'content-type': 'application/json', ...extraHeaders });
  res.end(JSON.stringify(value));
}

function parseScript(text) {
  const parsed = JSON.parse(text);
  if (!parsed || !Array.isArray(parsed.responses)) {
    throw new Error('expected {"responses":[...]}');
  }
  const scope = normaliseScope(parsed.path);
  return [scope, parsed.responses.map((response, index) => {
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
  })];
}

// The scope of a control call: ?path=P, else a JSON body's "path", else "" (everything).
function controlScope(url, body) {
  if (url.searchParams.has('path')) return normaliseScope(url.searchParams.get('path'));
  const text = body.toString('utf8').trim();
  if (!text) return '';
  const parsed = JSON.parse(text);
  return normaliseScope(parsed && typeof parsed === 'object' ? parsed.path : undefined);
}

function handleControl(req, res, url, body) {
  const path = url.pathname;
  try {
    if (path === '/__health') {
      res.end('ok');
    } else if (path === '/__requests' && req.method === 'GET') {
      const scope = controlScope(url, Buffer.alloc(0));
      sendJson(res, 200, recorded.filter((entry) => inScope(entry.path, scope)));
    } else if (path === '/__reset' && req.method === 'POST') {
      const scope = controlScope(url, body);
      recorded = recorded.filter((entry) => !inScope(entry.path, scope));
      if (scope === '') scripts.clear();
      else scripts.delete(scope);
      sendJson(res, 200, { reset: true, path: scope });
    } else if (path === '/__script' && req.method === 'POST') {
      const [scope, responses] = parseScript(body.toString('utf8'));
      scripts.set(scope, responses);
      sendJson(res, 200, { queued: responses.length, path: scope });
    } else if (path === '/__script' && req.method === 'GET') {
      sendJson(res, 200, Object.fromEntries(scripts));
    } else {
      sendJson(res, 404, { error: `no control endpoint ${req.method} ${path}` });
    }
  } catch (error) {
    sendJson(res, 400, { error: `bad ${path} request: ${error.message}` });
  }
}

function chooseReply(url) {
  const scripted = scripts.get(scopeFor(url.pathname));
  if (scripted && scripted.length > 0) return scripted.shift();
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
      handleControl(req, res, url, body);
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
