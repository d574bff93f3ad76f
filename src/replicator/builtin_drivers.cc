// Registers every driver compiled into the library. A driver folder that is not (yet) in the
// tree is left out, so this file always compiles.
#include "drivers/s3db/s3db_driver.h"
#include "s3db/replicator/replicator_plugin.h"

#if __has_include("drivers/postgresql/postgresql_driver.h")
#include "drivers/postgresql/postgresql_driver.h"
#define S3DB_HAS_POSTGRESQL_DRIVER 1
#endif
#if __has_include("drivers/webhook/webhook_driver.h")
#include "drivers/webhook/webhook_driver.h"
#define S3DB_HAS_WEBHOOK_DRIVER 1
#endif
#if __has_include("drivers/sqs/sqs_driver.h")
#include "drivers/sqs/sqs_driver.h"
#define S3DB_HAS_SQS_DRIVER 1
#endif
#if __has_include("drivers/files/file_driver.h")
#include "drivers/files/file_driver.h"
#define S3DB_HAS_FILE_DRIVERS 1
#endif
#if __has_include("drivers/bigquery/bigquery_driver.h")
#include "drivers/bigquery/bigquery_driver.h"
#define S3DB_HAS_BIGQUERY_DRIVER 1
#endif

namespace s3db::replicator {

void RegisterBuiltinDrivers() {
  RegisterS3dbDriver();
#ifdef S3DB_HAS_POSTGRESQL_DRIVER
  RegisterPostgresqlDriver();
  // The destination keys each driver reads from DeliveryItem::destination_options.
  DeclareDestinationKeys("postgresql", {"table", "schema"});
  DeclareDestinationKeys("postgres", {"table", "schema"});
#endif
#ifdef S3DB_HAS_WEBHOOK_DRIVER
  RegisterWebhookDriver();
#endif
#ifdef S3DB_HAS_SQS_DRIVER
  RegisterSqsDriver();
  DeclareDestinationKeys("sqs", {"queueUrl"});
#endif
#ifdef S3DB_HAS_FILE_DRIVERS
  RegisterFileDrivers();
#endif
#ifdef S3DB_HAS_BIGQUERY_DRIVER
  RegisterBigqueryDriver();
  DeclareDestinationKeys("bigquery", {"table", "dataset"});
#endif
}

}  // namespace s3db::replicator
