// Everything a user of the s3db library needs.
#pragma once

#include "s3db/database.h"
#include "s3db/error.h"
#include "s3db/json.h"
#include "s3db/plugin.h"
#include "s3db/replicator/change_log.h"
#include "s3db/replicator/driver.h"
#include "s3db/replicator/replicator_plugin.h"
#include "s3db/resource.h"
#include "s3db/schema.h"
#include "s3db/storage.h"
