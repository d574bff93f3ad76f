// Stand-in for cli-args-parser (see package.json): anything that calls it is s3db.js's CLI,
// which the benchmark does not run, so every entry point says so instead of parsing.
function unavailable() {
  throw new Error('cli-args-parser is a stand-in in bench/compare/shims: s3db.js\'s CLI is not available here');
}
export const createCLI = unavailable;
export const parse = unavailable;
export default { createCLI, parse };
