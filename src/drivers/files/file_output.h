// Where the file drivers put their files: a local folder, the source database's own object
// store (under the plugin prefix), or another bucket named by a connection string.
//
// Config key `output` (or the short form `outputPath: <folder>`):
//   {driver: 'filesystem', path}            local folder, created when missing
//   {driver: 's3', path}                    the source database's store, keys
//                                           "plugin=replicator/files/<path>/<file name>"
//   {driver: 's3', connectionString, path}  any store OpenObjectStore accepts (s3://, http(s)://,
//                                           file://, memory://); keys "<path>/<file name>" under
//                                           the connection string's prefix (path optional)
//
// Local files appear by atomic rename; objects appear only as complete uploads (one PUT of the
// whole file), so a reader never sees a partial file. Errors never carry the secret of a
// connection string.
#pragma once

#include <memory>
#include <string>

#include "formats/byte_sink.h"
#include "s3db/replicator/driver.h"
#include "s3db/storage.h"

namespace s3db::replicator::files {

// The key prefix of files written to the source database's own store.
inline constexpr const char* kPluginPrefix = "plugin=replicator/files/";

class FileOutput {
 public:
  virtual ~FileOutput() = default;

  // Reads `output` / `outputPath` (no I/O). Errors name the option.
  static Result<std::unique_ptr<FileOutput>> FromConfig(const JsonObject& config,
                                                        const DriverContext& context);

  // Creates the folder or opens the store. Errors name the option and never hold a secret.
  virtual Status Prepare() = 0;

  // A sink for the file `name`. `publish_each_sync`: every Sync makes the whole file visible
  // (append mode); otherwise only Close does (a file rebuilt from scratch).
  virtual Result<std::unique_ptr<formats::ByteSink>> OpenSink(const std::string& name,
                                                              bool publish_each_sync) = 0;

  // A sink continuing the published file `name` (append mode): its content is the sink's
  // body, and every Sync publishes the whole file. Error kNotFound when there is none. On a
  // store this downloads the object (every Sync uploads it whole anyway).
  virtual Result<std::unique_ptr<formats::ByteSink>> ResumeSink(const std::string& name) = 0;

  // Whether a published file `name` exists (a stat, or a HEAD on the store).
  virtual Result<bool> Exists(const std::string& name) = 0;

  // Where `name` ends up, for messages: a path or "<store>/<key>", without secrets.
  virtual std::string Describe(const std::string& name) const = 0;

  // A local folder (staging may fall back next to it when there is no state folder).
  virtual bool IsLocal() const = 0;
  virtual std::string LocalFolder() const { return {}; }

  // Removes secrets (the connection string's, in any form) from a message.
  virtual std::string Redact(std::string_view text) const { return RedactSecrets(text); }
};

// The Content-Type of an uploaded file, from its name.
std::string ContentTypeForFile(std::string_view name);

}  // namespace s3db::replicator::files
