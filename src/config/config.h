// The s3db YAML configuration file: connection, resources, replicator options (the spec's
// names) with Lua transforms and filters, and the service's HTTP listener.
//
//   connection: file://./data            # or connectionString
//   stateDir: ./data/.s3db-state         # optional
//   resources:
//     users: { attributes: { name: "string|required" }, timestamps: true, idSize: 22 }
//   replicator: { batchSize: 100, replicators: [ { driver: s3db, resources: [users],
//                 config: { connectionString: file://./backup } } ] }
//   http: { listen: 127.0.0.1:9464 }
//   lua: { instructionLimit: 10000000, memoryLimitMb: 64 }
//
// YAML becomes JSON by the YAML 1.2 core schema: plain true/false are booleans, plain
// null/~/empty are null, plain integers (decimal, 0x hex, 0o octal) stay integers (exact up
// to 64 bits; larger ones are an error), plain floats are doubles, everything quoted or
// written as a block (| or >) is a string. ${VAR} and ${VAR:-default} in any scalar are
// replaced by the environment variable before typing ($${ is a literal ${); an unset
// variable without default is an error. Relative paths are relative to the working
// directory. Errors name the file, line and key path, and say how to fix it.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/lua_sandbox.h"
#include "s3db/error.h"
#include "s3db/json.h"
#include "s3db/replicator/replicator_plugin.h"
#include "s3db/resource.h"

namespace s3db::config {

// Where a value was written: 1-based line and column.
struct SourceMark {
  int line = 0;
  int column = 0;
};

// A YAML document converted to JSON, with the position of every value by its path
// ("replicator.replicators[0].resources.users.transform").
struct YamlDocument {
  Json root;
  std::map<std::string, SourceMark, std::less<>> marks;
};

// Parses YAML text. `source_name` (a file name) starts every error message:
// "config.yaml:12:7: replicator.batchSize: ...". Errors are kInvalidArgument.
Result<YamlDocument> ParseYaml(std::string_view text, const std::string& source_name);

struct HttpSettings {
  std::string host = "127.0.0.1";
  int port = 9464;
  // Request threads of `s3db run`'s HTTP server. A keep-alive connection holds its thread
  // between requests, so this bounds the clients served at once.
  int threads = 64;
  std::string Listen() const { return host + ":" + std::to_string(port); }
};

struct Config {
  std::string source_name;                    // the file name given to the loader
  std::string connection;                     // empty when the file names none
  std::string state_dir;                      // empty: the database's default
  std::vector<ResourceDefinition> resources;  // in file order
  std::optional<JsonObject> replicator;       // the replicator section, as JSON
  HttpSettings http;
  LuaLimits lua;
  YamlDocument document;

  // Builds the plugin options from the replicator section, compiling Lua transforms and
  // filters. Errors name the file, line and path: "config.yaml:14:9: replicator.replicators[0]
  // .driver: unknown driver 'foo' (known: s3db)". Without a replicator section: kNotFound.
  Result<replicator::ReplicatorPluginOptions> BuildReplicatorOptions() const;

  // "config.yaml:12:7: <path>: <message>" using the mark of the longest known prefix of
  // `path` (a path inside the document, e.g. "resources.users.attributes").
  std::string Locate(std::string_view path, std::string_view message) const;
};

// Parses a configuration document; `source_name` is used in messages.
Result<Config> ParseConfig(std::string_view yaml_text, const std::string& source_name);
// Reads and parses a file (kNotFound / kIo when it cannot be read).
Result<Config> LoadConfigFile(const std::string& path);

// Replaces ${VAR} and ${VAR:-default} in `text` ($${ stays a literal ${). Errors
// (kInvalidArgument) name the variable.
Result<std::string> SubstituteEnvironment(std::string_view text);

}  // namespace s3db::config
