// The "s3db" driver: replicates into another s3db database.
//
// Config (the replicator's "config" object):
//   connectionString   the target database (s3://, http(s)://, file://, memory://); secrets
//                      are redacted in every message. Not needed when the program gives an
//                      open Database (ReplicatorConfig::target_database).
//   createResources    create a missing target resource (default true): from the source
//                      resource's definition, or schema-less when the destination has a
//                      transform. Created targets keep the records' createdAt/updatedAt as
//                      replicated (timestamps off).
// Records of one batch are written in parallel on the target database's thread pool; changes
// of one record stay in order.
//
// Writes are idempotent and guarded by revision: each target record carries the source
// revision in "_sourceRev"; a change whose revision is not newer than the target's is
// acknowledged without writing, so replays and retries never overwrite newer data. A delete
// leaves a marker "plugin=replicator/deleted/resource=<name>/id=<id>" holding the deleted
// revision in the target store, so an older insert or update replayed later cannot bring
// the record back. Changes with revision 0 (unknown) are applied unconditionally.
#pragma once

#include <memory>

#include "s3db/database.h"
#include "s3db/replicator/driver.h"

namespace s3db::replicator {

inline constexpr std::string_view kSourceRevisionField = "_sourceRev";

// `target`: an open database to write into (not owned) or nullptr to open
// config["connectionString"] at Start.
Result<std::unique_ptr<Driver>> NewS3dbDriver(const JsonObject& config,
                                              const DriverContext& context,
                                              Database* target = nullptr);

// Registers "s3db" in the driver registry.
void RegisterS3dbDriver();

}  // namespace s3db::replicator
