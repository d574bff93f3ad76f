// HTTPS receiver for the TLS check of scripts/reliability.sh: answers 200 to every request and
// appends one line per request to COUNT_FILE. Listens on 127.0.0.1, a free port written to
// PORT_FILE. Node.js built-ins only.
//   node https_sink.mjs KEY.pem CERT.pem PORT_FILE COUNT_FILE
import fs from 'node:fs';
import https from 'node:https';

const [key, cert, portFile, countFile] = process.argv.slice(2);
const server = https.createServer({ key: fs.readFileSync(key), cert: fs.readFileSync(cert) },
  (request, response) => {
    request.resume();
    request.on('end', () => {
      fs.appendFileSync(countFile, `${request.method} ${request.url}\n`);
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end('{"ok":true}');
    });
  });
server.listen(0, '127.0.0.1', () => fs.writeFileSync(portFile, String(server.address().port)));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
