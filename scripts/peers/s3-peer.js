// S3 test peer for s3db's tests, listening on 127.0.0.1 only.
//
// It runs @20minutes/s3rver, which checks SigV4 header signatures (a wrong secret gives 403
// SignatureDoesNotMatch), and adds the conditional writes that s3rver lacks:
//   If-None-Match: *        412 PreconditionFailed when the key exists
//   If-Match: "<etag>"      412 PreconditionFailed when the etag differs, 404 NoSuchKey if missing
// on PUT of an object and on CompleteMultipartUpload (not on UploadPart).
// Every request on one key runs under a per-key lock, so of several racing conditional writes
// to a key exactly one wins, and a read never sees half of a write (see
// serializeObjectRequests). The check runs before s3rver's own request handling, so a badly
// signed conditional PUT to an existing key gets 412 rather than 403.
//
// Long key segments: s3rver stores key "a/b/c" as the file a/b/c._S3rver_object, so a segment
// longer than the file system's 255-byte name limit would fail with 500 (S3 itself allows keys of
// 1024 bytes). Segments over 200 bytes are stored under a shortened name instead, and the
// original is kept in S3_DIR/.s3-peer-long-names.jsonl, so GET, HEAD, DELETE and listings still
// show the real key. (Listings of such keys follow the shortened name's order.)
//
// Environment:
//   S3_DIR   folder for the buckets and objects (required)
//   S3_PORT  port (default 4568)
//   S3_LOG   "true" to log every request
// Run with NODE_OPTIONS=--openssl-legacy-provider: s3rver encrypts ListObjectsV2 continuation
// tokens with DES, and paged listings fail with 500 without it.
// Credentials: access key S3RVER, secret S3RVER. Stops on SIGTERM or SIGINT.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const { Transform } = require('stream');
const { pipeline } = require('stream/promises');
const S3rver = require('@20minutes/s3rver');
const S3Error = require('@20minutes/s3rver/lib/models/error');
const FilesystemStore = require('@20minutes/s3rver/lib/stores/filesystem');
const S3Object = require('@20minutes/s3rver/lib/models/object');

const directory = process.env.S3_DIR;
if (!directory) {
  console.error('s3-peer: set S3_DIR to the folder that holds the buckets');
  process.exit(2);
}
const port = Number(process.env.S3_PORT || 4568);

// --- Long key segments -------------------------------------------------------------------------
const kLongestStoredSegmentBytes = 200;  // leaves room for "._S3rver_metadata.json"
const kShortenedHeadBytes = 100;
const kShortenedMarker = '~s3peer~';
const longNamesFile = path.join(directory, '.s3-peer-long-names.jsonl');
const originalOfShortened = new Map();
if (fs.existsSync(longNamesFile)) {
  for (const line of fs.readFileSync(longNamesFile, 'utf8').split('\n')) {
    if (line) originalOfShortened.set(...JSON.parse(line));
  }
}

function headOfAtMostBytes(text, maxBytes) {
  let head = '';
  for (const character of text) {
    if (Buffer.byteLength(head + character) > maxBytes) break;
    head += character;
  }
  return head;
}

function storedSegment(segment) {
  if (Buffer.byteLength(segment) <= kLongestStoredSegmentBytes) return segment;
  const digest = crypto.createHash('sha256').update(segment).digest('hex').slice(0, 40);
  const shortened = headOfAtMostBytes(segment, kShortenedHeadBytes) + kShortenedMarker + digest;
  if (!originalOfShortened.has(shortened)) {
    originalOfShortened.set(shortened, segment);
    fs.appendFileSync(longNamesFile, JSON.stringify([shortened, segment]) + '\n');
  }
  return shortened;
}

const encodeKeyPath = FilesystemStore.encodeKeyPath;
const decodeKeyPath = FilesystemStore.decodeKeyPath;
FilesystemStore.encodeKeyPath = (key) =>
  encodeKeyPath(key).split('/').map(storedSegment).join('/');
FilesystemStore.decodeKeyPath = (keyPath) => decodeKeyPath(
  keyPath.split('/').map((segment) => originalOfShortened.get(segment) ?? segment).join('/'));

// Deletes an object's files, then its folders while they are empty. Replaces s3rver's version,
// which looks the folders up by their unshortened names and fails on a long folder segment.
FilesystemStore.prototype.deleteObject = async function deleteObjectAndEmptyFolders(bucket, key) {
  await Promise.all(['object', 'object.md5', 'metadata.json'].map((resource) =>
    fs.promises.unlink(this.getResourcePath(bucket, key, resource)).catch((error) => {
      if (error.code !== 'ENOENT') throw error;
    })));
  const folders = FilesystemStore.encodeKeyPath(key).split('/');
  folders.pop();  // the last segment is part of the file names
  const bucketPath = this.getBucketPath(bucket);
  while (folders.length > 0) {
    try {
      await fs.promises.rmdir(path.join(bucketPath, ...folders));  // only when empty
    } catch (error) {
      if (['ENOTEMPTY', 'EEXIST', 'ENOENT'].includes(error.code)) break;
      throw error;
    }
    folders.pop();
  }
};

// --- Whole objects only ---------------------------------------------------------------------
// s3rver keeps an object as three files (body, .md5, metadata.json) and overwrites each in place;
// for a buffer body it even reports the write done before the bytes are written. A peer stopped
// or killed during a PUT then kept a torn body or metadata file: the key answered 500 to every
// GET (metadata.json cut short) or an ETag that is not its body's MD5. Here each file is written
// to a temporary name beside it and renamed over the old one, and the .md5 file is removed before
// the body is replaced and written again after it: s3rver computes a missing one from the body,
// so at any moment of a kill the ETag matches the body that is there. Temporary files end with
// kPartialMarker + a number, which no listing shows, and are deleted at start.
const kPartialMarker = '.s3peer-partial-';
let partialCounter = 0;
const partialPathOf = (finalPath) => `${finalPath}${kPartialMarker}${process.pid}-${++partialCounter}`;

async function unlinkIfPresent(file) {
  try {
    await fs.promises.unlink(file);
  } catch (error) {
    if (error.code !== 'ENOENT') throw error;
  }
}

// Writes `content` (a Buffer, a string or a readable stream) to a temporary file beside
// finalPath; resolves once every byte is written, with the file, its size and MD5.
async function writePartial(finalPath, content) {
  const partial = partialPathOf(finalPath);
  const md5 = crypto.createHash('md5');
  let size = 0;
  try {
    if (Buffer.isBuffer(content) || typeof content === 'string') {
      const bytes = Buffer.from(content);
      md5.update(bytes);
      size = bytes.length;
      await fs.promises.writeFile(partial, bytes);
    } else {
      const hashing = new Transform({
        transform(chunk, encoding, done) {
          md5.update(chunk, encoding);
          size += chunk.length;
          done(null, chunk);
        },
      });
      await pipeline(content, hashing, fs.createWriteStream(partial));
    }
  } catch (error) {
    await unlinkIfPresent(partial);
    throw error;
  }
  return { partial, size, md5: md5.digest('hex') };
}

async function replaceFile(finalPath, content) {
  const { partial } = await writePartial(finalPath, content);
  await fs.promises.rename(partial, finalPath);
}

function storedMetadata(metadata) {
  return Object.fromEntries(Object.entries(metadata || {}).filter(([name]) =>
    S3Object.ALLOWED_METADATA.includes(name) || name.startsWith('x-amz-meta-')));
}

FilesystemStore.prototype.putObject = async function putWholeObject(object) {
  const bodyPath = this.getResourcePath(object.bucket, object.key, 'object');
  const md5Path = this.getResourcePath(object.bucket, object.key, 'object.md5');
  const metadataPath = this.getResourcePath(object.bucket, object.key, 'metadata.json');
  await fs.promises.mkdir(path.dirname(bodyPath), { recursive: true });
  const body = await writePartial(bodyPath, object.content);
  try {
    const metadata = await writePartial(metadataPath,
      JSON.stringify(storedMetadata(object.metadata), null, 2));
    await unlinkIfPresent(md5Path);
    await fs.promises.rename(metadata.partial, metadataPath);
    await fs.promises.rename(body.partial, bodyPath);
  } catch (error) {
    await unlinkIfPresent(body.partial);
    throw error;
  }
  await replaceFile(md5Path, body.md5);
  return { size: body.size, md5: body.md5 };
};

// A copy is a whole write of the source's body and metadata (or the replacement metadata).
FilesystemStore.prototype.copyObject = async function copyWholeObject(
  sourceBucket, sourceKey, bucket, key, replacementMetadata) {
  const sourceMetadata = await this.getMetadata(sourceBucket, sourceKey);
  const content = await fs.promises.readFile(this.getResourcePath(sourceBucket, sourceKey, 'object'));
  await this.putObject({ bucket, key, content, metadata: replacementMetadata || sourceMetadata });
  return this.getMetadata(bucket, key);
};

// s3rver writes a missing .md5 file in place when it reads an object. Here a missing one is
// computed and not kept: listings read objects outside the key's lock, and a kept MD5 of the
// body being replaced could outlive the new body's.
FilesystemStore.prototype.getMetadata = async function getMetadataOfWholeObject(bucket, key) {
  const bodyPath = this.getResourcePath(bucket, key, 'object');
  const md5Path = this.getResourcePath(bucket, key, 'object.md5');
  const metadataPath = this.getResourcePath(bucket, key, 'metadata.json');
  const stat = await fs.promises.stat(bodyPath);  // ENOENT: no such object
  let metadata;
  try {
    metadata = JSON.parse(await fs.promises.readFile(metadataPath, 'utf8'));
  } catch (error) {
    if (error.code !== 'ENOENT') throw error;
  }
  let md5;
  try {
    md5 = await fs.promises.readFile(md5Path, 'utf8');
  } catch (error) {
    if (error.code !== 'ENOENT') throw error;
    md5 = crypto.createHash('md5').update(await fs.promises.readFile(bodyPath)).digest('hex');
  }
  return {
    ...metadata,
    etag: JSON.stringify(md5),
    'last-modified': stat.mtime.toUTCString(),
    'content-length': stat.size,
  };
};

// Partial files of a peer that was killed are not objects: delete them before serving.
function deletePartialFiles(folder) {
  for (const entry of fs.readdirSync(folder, { withFileTypes: true })) {
    const entryPath = path.join(folder, entry.name);
    if (entry.isDirectory()) deletePartialFiles(entryPath);
    else if (entry.name.includes(kPartialMarker)) fs.unlinkSync(entryPath);
  }
}
deletePartialFiles(directory);

const server = new S3rver({
  directory,
  address: '127.0.0.1',
  port,
  silent: process.env.S3_LOG !== 'true',
});

// --- Conditional writes ------------------------------------------------------------------------
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

// Throws PreconditionFailed / NoSuchKey when the request's If-None-Match / If-Match fails.
async function checkConditions(ctx, bucket, key) {
  const ifNoneMatch = ctx.get('if-none-match');
  const ifMatch = ctx.get('if-match');
  const isObjectPut = ctx.method === 'PUT' && !('partNumber' in ctx.query);
  const isCompleteMultipart = ctx.method === 'POST' && 'uploadId' in ctx.query;
  if ((!ifNoneMatch && !ifMatch) || !(isObjectPut || isCompleteMultipart)) return;
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
}

async function readAll(stream) {
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  return Buffer.concat(chunks);
}

// Every request on one object (GET, HEAD, PUT, DELETE, CompleteMultipartUpload) runs under the
// key's lock, as S3 replaces objects atomically. s3rver alone writes an object's body, ETag and
// metadata as separate files, so a GET racing a PUT could answer with the body of one version
// and the ETag of the other, or send fewer bytes than its Content-Length and leave the client
// waiting for its timeout. A GET's body is read whole before the lock is released.
async function serializeObjectRequests(ctx, next) {
  const target = /^\/([^/]+)\/(.+)$/.exec(ctx.path);
  const onObject = ['GET', 'HEAD', 'PUT', 'DELETE'].includes(ctx.method) ||
                   (ctx.method === 'POST' && 'uploadId' in ctx.query);
  if (!target || !onObject || 'partNumber' in ctx.query) return next();
  const bucket = target[1];
  const key = decodeURIComponent(target[2]);
  return underKeyLock(`${bucket}/${key}`, async () => {
    await checkConditions(ctx, bucket, key);
    await next();
    if (ctx.body && typeof ctx.body.pipe === 'function') ctx.body = await readAll(ctx.body);
  });
}

// s3rver is a Koa app whose last middleware is the router: run the check just before it, after
// the middleware that turns errors and plain objects into S3 XML replies.
server.middleware.splice(server.middleware.length - 1, 0, serializeObjectRequests);

server.run().then(({ address, port: boundPort }) => {
  console.log(`s3-peer listening on http://${address}:${boundPort}`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
