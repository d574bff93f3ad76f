// The fuzz targets link only part of the library, not the drivers. Configuration parsing only
// asks whether a driver name is known, so the built-in names are registered here with
// factories that refuse to make a driver.
#include "s3db/replicator/driver.h"
#include "s3db/replicator/replicator_plugin.h"

namespace s3db::replicator {

void RegisterBuiltinDrivers() {
  for (const char* name : {"s3db", "postgresql", "postgres", "webhook", "sqs", "csv", "jsonl",
                           "parquet", "bigquery"}) {
    RegisterDriver(name, [](const JsonObject&, const DriverContext&)
                             -> Result<std::unique_ptr<Driver>> {
      return MakeError(ErrorCode::kInternal, "drivers are not linked into fuzz targets");
    });
  }
}

}  // namespace s3db::replicator
