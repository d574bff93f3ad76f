// Loading this module fails, as loading a package that is not installed would: s3db.js treats
// raffel as optional and goes on without it.
throw new Error('raffel is not available (bench/compare/shims/raffel stands in for a package the registry does not serve)');
