// SQS test peer for s3db's tests: local-aws-sqs on 127.0.0.1 only, in memory.
//
// Speaks both SQS protocols on POST /: AWS JSON 1.0 (X-Amz-Target: AmazonSQS.<Action>) and the
// query protocol (form body Action=...&QueueUrl=...). Queue URLs look like
// http://127.0.0.1:<port>/123456789012/<name>; queues are found by the name in QueueUrl.
// Signatures are not checked. FIFO queues deduplicate as AWS does.
// A deleted queue's name can be created again at once (AWS makes you wait 60 s).
//
// Environment: SQS_PORT (default 4576). Stops on SIGTERM or SIGINT.
import { createSqsServer } from 'local-aws-sqs';

const port = Number(process.env.SQS_PORT || 4576);
const server = await createSqsServer({
  port,
  hostname: '127.0.0.1',
  emulateQueueCreationLifecycle: false,
});
console.log(`sqs-local listening on http://127.0.0.1:${port}`);

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close();
    process.exit(0);
  });
}
