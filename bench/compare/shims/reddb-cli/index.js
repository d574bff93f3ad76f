// Loading this module fails, as loading a package that is not installed would: s3db.js treats
// reddb-cli as optional and goes on without it.
throw new Error('reddb-cli is not available (bench/compare/shims/reddb-cli stands in for a package the registry does not serve)');
