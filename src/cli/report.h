// What the CLI and the `s3db run` service print and serve: JSON forms of replicator state,
// dead letters and changes, the Prometheus text of /metrics and the body of /health.
#pragma once

#include <string>
#include <vector>

#include "s3db/json.h"
#include "s3db/plugin.h"
#include "s3db/replicator/replicator_plugin.h"

namespace s3db::cli {

// Compact JSON with doubles in their shortest form (1.5, not 1.5E0).
std::string JsonLine(const Json& value);

Json ReplicatorInfoToJson(const replicator::ReplicatorInfo& info);
// {"id","driver","state","pauseReason","delivered","filtered","retried","failed",
//  "deadLettered","deadLetterCount","checkpoint","head","lagChanges","lagSeconds",
//  "latencyP50Ms","latencyP99Ms","lastError"}
Json ReplicatorStatsToJson(const replicator::ReplicatorStats& stats);
Json DeadLetterToJson(const replicator::DeadLetter& letter);
// {"seq","changeId","resource","id","revision","action","timestamp","before","after"}
Json ChangeToJson(const Change& change, std::uint64_t sequence);

// Prometheus text exposition format 0.0.4: s3db_up, and per replicator (labels replicator
// and driver) the counters s3db_replicator_{delivered,filtered,retried,failed,dead_lettered}
// _total and the gauges s3db_replicator_{dead_letters,lag_changes,lag_seconds,checkpoint,
// head,latency_p50_ms,latency_p99_ms} and s3db_replicator_state{state=…} (1 for the current
// state, 0 for the others).
std::string RenderPrometheus(const std::vector<replicator::ReplicatorStats>& stats);

// A replicator is healthy when running, or disabled on purpose; paused or stopped is not.
bool IsHealthy(const replicator::ReplicatorStats& stats);
// {"status":"ok"|"unhealthy","replicators":[{"id","driver","state",…}]}
Json HealthToJson(const std::vector<replicator::ReplicatorStats>& stats);

// "backup (s3db): delivered 250, filtered 0, failed attempts 2 (retried 2), dead letters 0,
//  latency p50 3.1 ms, p99 9.8 ms": failed attempts count every attempt that did not
// deliver (most are retried); dead letters are the changes that failed for good.
std::string ReplicatorSummaryLine(const replicator::ReplicatorStats& stats);

}  // namespace s3db::cli
