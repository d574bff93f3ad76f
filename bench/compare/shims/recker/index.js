// recker as s3db.js 21.6.2 expects it: everything recker 1.0.56 exports, plus the one name it
// lacks. createRedDbClient is reached only when a database is opened on a RedDB connection
// string, which the benchmark never does, so the stand-in refuses with a message saying why.
export * from 'recker-served';

export function createRedDbClient() {
  throw new Error(
    'createRedDbClient: recker 1.0.56 (the newest served version) has no RedDB client; ' +
      'bench/compare/shims/recker only lets s3db.js load');
}
