#include "cli/report.h"

#include <charconv>
#include <cmath>
#include <cstdio>

#include "formats/json_text.h"

namespace s3db::cli {
namespace {

using replicator::ReplicatorState;
using replicator::ReplicatorStats;

std::string LabelValue(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string Number(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  // Whole numbers (counters) in full: 12000000, not 1.2e+07.
  if (std::trunc(value) == value && std::fabs(value) < 9007199254740992.0) {
    return std::to_string(static_cast<long long>(value));
  }
  // Others: the shortest text that reads back the same.
  char text[64];
  auto [end, error] = std::to_chars(text, text + sizeof text, value);
  return std::string(text, error == std::errc() ? end : text);
}

struct Metric {
  const char* name;
  const char* type;
  const char* help;
  double (*value)(const ReplicatorStats&);
};

const Metric kMetrics[] = {
    {"s3db_replicator_delivered_total", "counter", "Deliveries confirmed by the target.",
     [](const ReplicatorStats& s) { return double(s.delivered); }},
    {"s3db_replicator_filtered_total", "counter",
     "Changes skipped by actions, shouldReplicate or a transform returning nil.",
     [](const ReplicatorStats& s) { return double(s.filtered); }},
    {"s3db_replicator_retried_total", "counter", "Attempts scheduled again after a failure.",
     [](const ReplicatorStats& s) { return double(s.retried); }},
    {"s3db_replicator_failed_total", "counter", "Failed delivery attempts.",
     [](const ReplicatorStats& s) { return double(s.failed); }},
    {"s3db_replicator_dead_lettered_total", "counter",
     "Changes sent to the dead-letter queue since start.",
     [](const ReplicatorStats& s) { return double(s.dead_lettered); }},
    {"s3db_replicator_dead_letters", "gauge", "Entries in the dead-letter queue now.",
     [](const ReplicatorStats& s) { return double(s.dead_letter_count); }},
    {"s3db_replicator_lag_changes", "gauge", "Changes appended but not yet settled.",
     [](const ReplicatorStats& s) { return double(s.lag_changes); }},
    {"s3db_replicator_lag_seconds", "gauge", "Age of the oldest unsettled change.",
     [](const ReplicatorStats& s) { return s.lag_seconds; }},
    {"s3db_replicator_checkpoint", "gauge", "Every change at or below it is settled.",
     [](const ReplicatorStats& s) { return double(s.checkpoint); }},
    {"s3db_replicator_head", "gauge", "Last change appended to the change log.",
     [](const ReplicatorStats& s) { return double(s.head); }},
    {"s3db_replicator_latency_p50_ms", "gauge", "Write to delivered latency, median.",
     [](const ReplicatorStats& s) { return s.latency_p50_ms; }},
    {"s3db_replicator_latency_p99_ms", "gauge", "Write to delivered latency, 99th percentile.",
     [](const ReplicatorStats& s) { return s.latency_p99_ms; }},
};

}  // namespace

std::string JsonLine(const Json& value) {
  std::string out;
  if (formats::CheckExportable(value, "")) {
    formats::AppendJsonText(value, out);
  } else {
    out = ToJson(value);  // not exportable as is (a NaN?): Boost's form says what it is
  }
  return out;
}

Json ReplicatorInfoToJson(const replicator::ReplicatorInfo& info) {
  JsonObject out;
  out["id"] = info.id;
  out["driver"] = info.driver;
  out["enabled"] = info.enabled;
  out["state"] = replicator::ReplicatorStateName(info.state);
  JsonArray resources;
  for (const auto& name : info.resources) resources.emplace_back(name);
  out["resources"] = std::move(resources);
  return out;
}

Json ReplicatorStatsToJson(const ReplicatorStats& stats) {
  JsonObject out;
  out["id"] = stats.id;
  out["driver"] = stats.driver;
  out["state"] = replicator::ReplicatorStateName(stats.state);
  out["pauseReason"] = stats.pause_reason;
  out["delivered"] = stats.delivered;
  out["filtered"] = stats.filtered;
  out["retried"] = stats.retried;
  out["failed"] = stats.failed;
  out["deadLettered"] = stats.dead_lettered;
  out["deadLetterCount"] = stats.dead_letter_count;
  out["checkpoint"] = stats.checkpoint;
  out["head"] = stats.head;
  out["lagChanges"] = stats.lag_changes;
  out["lagSeconds"] = stats.lag_seconds;
  // No latency before the first delivery: null, not a median of 0 ms.
  out["latencyP50Ms"] = stats.delivered > 0 ? Json(stats.latency_p50_ms) : Json(nullptr);
  out["latencyP99Ms"] = stats.delivered > 0 ? Json(stats.latency_p99_ms) : Json(nullptr);
  out["lastError"] = stats.last_error ? stats.last_error->ToJson() : Json(nullptr);
  return out;
}

Json ChangeToJson(const Change& change, std::uint64_t sequence) {
  JsonObject out;
  if (sequence > 0) out["seq"] = sequence;
  out["changeId"] = change.ChangeId();
  out["resource"] = change.resource;
  out["id"] = change.id;
  out["revision"] = change.revision;
  out["action"] = ActionName(change.action);
  out["timestamp"] = change.timestamp_ms;
  out["before"] = change.before ? Json(*change.before) : Json(nullptr);
  out["after"] = change.after ? Json(*change.after) : Json(nullptr);
  return out;
}

Json DeadLetterToJson(const replicator::DeadLetter& letter) {
  JsonObject out;
  out["id"] = letter.id;
  out["replicator"] = letter.replicator;
  out["sequence"] = letter.sequence;
  out["destination"] = letter.destination;
  out["reason"] = letter.reason;
  out["error"] = letter.error;
  out["attempts"] = letter.attempts;
  out["failedAt"] = letter.failed_at_ms;
  out["change"] = ChangeToJson(letter.change, 0);
  return out;
}

std::string RenderPrometheus(const std::vector<ReplicatorStats>& stats) {
  std::string out;
  out += "# HELP s3db_up 1 while the s3db service runs.\n# TYPE s3db_up gauge\ns3db_up 1\n";
  out += "# HELP s3db_replicators Replicators configured.\n# TYPE s3db_replicators gauge\n";
  out += "s3db_replicators " + std::to_string(stats.size()) + "\n";
  for (const Metric& metric : kMetrics) {
    out += std::string("# HELP ") + metric.name + " " + metric.help + "\n";
    out += std::string("# TYPE ") + metric.name + " " + metric.type + "\n";
    for (const ReplicatorStats& s : stats) {
      out += std::string(metric.name) + "{replicator=\"" + LabelValue(s.id) + "\",driver=\"" +
             LabelValue(s.driver) + "\"} " + Number(metric.value(s)) + "\n";
    }
  }
  out += "# HELP s3db_replicator_state 1 for the replicator's current state.\n";
  out += "# TYPE s3db_replicator_state gauge\n";
  for (const ReplicatorStats& s : stats) {
    for (ReplicatorState state : {ReplicatorState::kRunning, ReplicatorState::kPaused,
                                  ReplicatorState::kDisabled, ReplicatorState::kStopped}) {
      out += "s3db_replicator_state{replicator=\"" + LabelValue(s.id) + "\",driver=\"" +
             LabelValue(s.driver) + "\",state=\"" +
             std::string(replicator::ReplicatorStateName(state)) + "\"} " +
             (s.state == state ? "1" : "0") + "\n";
    }
  }
  return out;
}

bool IsHealthy(const ReplicatorStats& stats) {
  return stats.state == ReplicatorState::kRunning || stats.state == ReplicatorState::kDisabled;
}

Json HealthToJson(const std::vector<ReplicatorStats>& stats) {
  bool healthy = true;
  JsonArray replicators;
  for (const ReplicatorStats& s : stats) {
    healthy = healthy && IsHealthy(s);
    JsonObject entry;
    entry["id"] = s.id;
    entry["driver"] = s.driver;
    entry["state"] = replicator::ReplicatorStateName(s.state);
    entry["healthy"] = IsHealthy(s);
    if (!s.pause_reason.empty()) entry["pauseReason"] = s.pause_reason;
    entry["lagChanges"] = s.lag_changes;
    entry["lagSeconds"] = s.lag_seconds;
    entry["deadLetters"] = s.dead_letter_count;
    if (s.last_error) entry["lastError"] = s.last_error->message;
    replicators.push_back(std::move(entry));
  }
  JsonObject out;
  out["status"] = healthy ? "ok" : "unhealthy";
  out["replicators"] = std::move(replicators);
  return out;
}

std::string ReplicatorSummaryLine(const ReplicatorStats& stats) {
  char latency[96] = "latency p50 -, p99 - (nothing delivered yet)";
  if (stats.delivered > 0) {
    std::snprintf(latency, sizeof latency, "latency p50 %.1f ms, p99 %.1f ms", stats.latency_p50_ms,
                  stats.latency_p99_ms);
  }
  char text[320];
  std::snprintf(
      text, sizeof text,
      "%s (%s): delivered %llu, filtered %llu, failed attempts %llu (retried "
      "%llu), dead letters %llu, %s",
      stats.id.c_str(), stats.driver.c_str(), static_cast<unsigned long long>(stats.delivered),
      static_cast<unsigned long long>(stats.filtered),
      static_cast<unsigned long long>(stats.failed), static_cast<unsigned long long>(stats.retried),
      static_cast<unsigned long long>(stats.dead_letter_count), latency);
  return text;
}

}  // namespace s3db::cli
