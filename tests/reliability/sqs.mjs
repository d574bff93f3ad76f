// SQS helper for scripts/reliability.sh, AWS JSON 1.0 protocol, unsigned (the local peer
// accepts that). Node.js built-ins only.
//
//   node sqs.mjs create ENDPOINT NAME             creates queue NAME (".fifo": a FIFO queue),
//                                                 prints its URL
//   node sqs.mjs drain ENDPOINT QUEUE_URL OUT     receives and deletes messages, appending each
//                                                 as a JSON line to OUT, until SIGTERM; then
//                                                 keeps going until the queue has been empty
//                                                 for 3 s
import fs from 'node:fs';

const [command, endpoint, ...rest] = process.argv.slice(2);

async function call(action, body) {
  const response = await fetch(`${endpoint}/`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-amz-json-1.0', 'x-amz-target': `AmazonSQS.${action}` },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${action}: HTTP ${response.status}: ${text}`);
  return text ? JSON.parse(text) : {};
}

if (command === 'create') {
  const [name] = rest;
  const body = { QueueName: name };
  if (name.endsWith('.fifo')) body.Attributes = { FifoQueue: 'true' };
  const reply = await call('CreateQueue', body);
  process.stdout.write(`${reply.QueueUrl}\n`);
} else if (command === 'drain') {
  const [queueUrl, out] = rest;
  let stopping = false;
  let idleSince = Date.now();
  process.on('SIGTERM', () => { stopping = true; idleSince = Date.now(); });
  while (!stopping || Date.now() - idleSince < 3000) {
    let reply;
    try {
      reply = await call('ReceiveMessage', { QueueUrl: queueUrl, MaxNumberOfMessages: 10,
                                             WaitTimeSeconds: 1, AttributeNames: ['All'] });
    } catch {
      // the server is down (an outage test) or the queue is not there yet
      await new Promise((resolve) => setTimeout(resolve, 200));
      continue;
    }
    const messages = reply.Messages || [];
    if (messages.length === 0) continue;
    idleSince = Date.now();
    fs.appendFileSync(out, messages.map((m) => JSON.stringify({ Body: m.Body })).join('\n') + '\n');
    await call('DeleteMessageBatch', {
      QueueUrl: queueUrl,
      Entries: messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle })),
    }).catch(() => {});
  }
} else {
  process.stderr.write('usage: sqs.mjs create ENDPOINT NAME | drain ENDPOINT QUEUE_URL OUT\n');
  process.exit(2);
}
