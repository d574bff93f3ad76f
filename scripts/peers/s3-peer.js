// S3 test peer for s3db's tests, listening on 127.0.0.1 only.
//
// It runs @20minutes/s3rver, which checks SigV4 header signatures (a wrong secret gives 403
// SignatureDoesNotMatch), and adds the conditional writes that s3rver lacks:
//   If-None-Match: *        412 PreconditionFailed when the key exists
//   If-Match: "<etag>"      412 PreconditionFailed when the etag differs, 404 NoSuchKey if missing
// on PUT of an object and on CompleteMultipartUpload (not on UploadPart).
// The check and the write of one key run under a per-key lock, so of several racing conditional
// writes to a key exactly one wins. The check runs before s3rver's own request handling, so a
// badly signed conditional PUT to an existing key gets 412 rather than 403.
//
// Environment:
//   S3_DIR   folder for the buckets and objects (required)
//   S3_PORT  port (default 4568)
//   S3_LOG   "true" to log every request
// Run with NODE_OPTIONS=--openssl-legacy-provider: s3rver encrypts ListObjectsV2 continuation
// tokens with DES, and paged listings fail with 500 without it.
// Credentials: access key S3RVER, secret S3RVER. Stops on SIGTERM or SIGINT.
'use strict';

const S3rver = require('@20minutes/s3rver');
const S3Error = require('@20minutes/s3rver/lib/models/error');

const directory = process.env.S3_DIR;
if (!directory) {
  console.error('s3-peer: set S3_DIR to the folder that holds the buckets');
  process.exit(2);
}
const port = Number(process.env.S3_PORT || 4568);

const server = new S3rver({
  directory,
  address: '127.0.0.1',
  port,
  silent: process.env.S3_LOG !== 'true',
});

// Per-key serialisation: each caller waits for the previous holder of the key, then runs.
const lockTails = new Map();
async function underKeyLock(lockName, critical) {
  const previous = lockTails.get(lockName) || Promise.resolve();
  let release;
  const released = new Promise((resolve) => { release = resolve; });
  const tail = previous.then(() => released);
  lockTails.set(lockName, tail);
  await previous;
  try {
    return await critical();
  } finally {
    release();
    if (lockTails.get(lockName) === tail) lockTails.delete(lockName);
  }
}

const withoutQuotes = (etag) => String(etag).replace(/"/g, '').trim();

function preconditionFailed(header) {
  return new S3Error('PreconditionFailed',
    'At least one of the pre-conditions you specified did not hold', { Condition: header });
}

async function currentEtag(store, bucket, key) {
  try {
    return (await store.getMetadata(bucket, key)).etag;
  } catch (error) {
    if (error.code === 'ENOENT') return null;
    throw error;
  }
}

async function enforceConditionalWrites(ctx, next) {
  const ifNoneMatch = ctx.get('if-none-match');
  const ifMatch = ctx.get('if-match');
  if (!ifNoneMatch && !ifMatch) return next();

  const isObjectPut = ctx.method === 'PUT' && !('partNumber' in ctx.query);
  const isCompleteMultipart = ctx.method === 'POST' && 'uploadId' in ctx.query;
  const target = /^\/([^/]+)\/(.+)$/.exec(ctx.path);
  if (!(isObjectPut || isCompleteMultipart) || !target) return next();

  const bucket = target[1];
  const key = decodeURIComponent(target[2]);
  return underKeyLock(`${bucket}/${key}`, async () => {
    const etag = await currentEtag(ctx.app.store, bucket, key);
    if (ifNoneMatch === '*' && etag !== null) throw preconditionFailed('If-None-Match');
    if (ifMatch) {
      if (etag === null) {
        throw new S3Error('NoSuchKey', 'The specified key does not exist.', { Key: key });
      }
      if (ifMatch !== '*' && withoutQuotes(ifMatch) !== withoutQuotes(etag)) {
        throw preconditionFailed('If-Match');
      }
    }
    await next();
  });
}

// s3rver is a Koa app whose last middleware is the router: run the check just before it, after
// the middleware that turns errors and plain objects into S3 XML replies.
server.middleware.splice(server.middleware.length - 1, 0, enforceConditionalWrites);

server.run().then(({ address, port: boundPort }) => {
  console.log(`s3-peer listening on http://${address}:${boundPort}`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
