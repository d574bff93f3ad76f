// The change log interface is public (a program may supply its own through
// ReplicatorPluginOptions::change_log); this header keeps the engine's includes short.
#pragma once

#include "s3db/replicator/change_log.h"
