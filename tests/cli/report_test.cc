// What /metrics and /health serve, from replicator statistics.
#include "cli/report.h"

#include <gtest/gtest.h>

#include <string>

#include "cli/service_state.h"

namespace s3db::cli {
namespace {

using replicator::ReplicatorState;
using replicator::ReplicatorStats;

ReplicatorStats Stats(std::string id, ReplicatorState state) {
  ReplicatorStats stats;
  stats.id = std::move(id);
  stats.driver = "s3db";
  stats.state = state;
  stats.delivered = 7;
  stats.filtered = 2;
  stats.dead_letter_count = 1;
  stats.lag_changes = 3;
  stats.lag_seconds = 0.25;
  stats.latency_p99_ms = 12.5;
  stats.latency_p50_ms = 10;
  stats.head = 12000000;
  return stats;
}

TEST(Prometheus, RendersEveryMetricWithHelpTypeAndLabels) {
  std::string text = RenderPrometheus(
      {Stats("backup", ReplicatorState::kRunning), Stats("we\"ird", ReplicatorState::kPaused)});
  for (const char* expected : {
           "# TYPE s3db_up gauge\ns3db_up 1\n",
           "# TYPE s3db_replicator_delivered_total counter\n",
           "s3db_replicator_delivered_total{replicator=\"backup\",driver=\"s3db\"} 7\n",
           "s3db_replicator_filtered_total{replicator=\"backup\",driver=\"s3db\"} 2\n",
           "s3db_replicator_dead_letters{replicator=\"backup\",driver=\"s3db\"} 1\n",
           "# TYPE s3db_replicator_lag_seconds gauge\n",
           "s3db_replicator_lag_seconds{replicator=\"backup\",driver=\"s3db\"} 0.25\n",
           "s3db_replicator_latency_p99_ms{replicator=\"backup\",driver=\"s3db\"} 12.5\n",
           // Whole numbers in full (the shortest %g form printed 10 as 1e+01).
           "s3db_replicator_latency_p50_ms{replicator=\"backup\",driver=\"s3db\"} 10\n",
           "s3db_replicator_head{replicator=\"backup\",driver=\"s3db\"} 12000000\n",
           "s3db_replicator_state{replicator=\"backup\",driver=\"s3db\",state=\"running\"} 1\n",
           "s3db_replicator_state{replicator=\"backup\",driver=\"s3db\",state=\"paused\"} 0\n",
           "s3db_replicator_state{replicator=\"we\\\"ird\",driver=\"s3db\",state=\"paused\"} 1\n",
       }) {
    EXPECT_NE(text.find(expected), std::string::npos) << expected << "\n" << text;
  }
  // Every sample line is "name{labels} value" or a comment.
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    ASSERT_NE(end, std::string::npos) << "the text must end with a newline";
    std::string line = text.substr(start, end - start);
    if (line[0] != '#') {
      EXPECT_EQ(line.rfind("s3db_", 0), 0u) << line;
      EXPECT_NE(line.find(' '), std::string::npos) << line;
    }
    start = end + 1;
  }
}

TEST(Health, OkOnlyWhenEveryReplicatorRunsOrIsDisabled) {
  Json ok =
      HealthToJson({Stats("a", ReplicatorState::kRunning), Stats("b", ReplicatorState::kDisabled)});
  EXPECT_EQ(ok.get_object().at("status"), Json("ok"));
  Json paused =
      HealthToJson({Stats("a", ReplicatorState::kRunning), Stats("b", ReplicatorState::kPaused)});
  EXPECT_EQ(paused.get_object().at("status"), Json("unhealthy"));
  const JsonArray& replicators = paused.get_object().at("replicators").get_array();
  ASSERT_EQ(replicators.size(), 2u);
  EXPECT_EQ(replicators[1].get_object().at("state"), Json("paused"));
  EXPECT_EQ(replicators[1].get_object().at("healthy"), Json(false));
  EXPECT_EQ(HealthToJson({}).get_object().at("status"), Json("ok"));
}

TEST(Report, StatsAndSummaryLine) {
  ReplicatorStats stats = Stats("backup", ReplicatorState::kRunning);
  Json json = ReplicatorStatsToJson(stats);
  EXPECT_EQ(json.get_object().at("delivered"), Json(7u));
  EXPECT_EQ(json.get_object().at("state"), Json("running"));
  EXPECT_EQ(JsonLine(Json(1.5)), "1.5");
  EXPECT_EQ(ReplicatorSummaryLine(stats),
            "backup (s3db): delivered 7, filtered 2, failed attempts 0 (retried 0), dead "
            "letters 1, latency p50 10.0 ms, p99 12.5 ms");
}

TEST(Report, NoLatencyBeforeTheFirstDelivery) {
  // Before: "latencyP50Ms": 0.0 while nothing had been delivered.
  ReplicatorStats stats = Stats("backup", ReplicatorState::kRunning);
  stats.delivered = 0;
  stats.latency_p50_ms = 0;
  stats.latency_p99_ms = 0;
  Json json = ReplicatorStatsToJson(stats);
  EXPECT_TRUE(json.get_object().at("latencyP50Ms").is_null());
  EXPECT_TRUE(json.get_object().at("latencyP99Ms").is_null());
  EXPECT_NE(ReplicatorSummaryLine(stats).find("latency p50 -, p99 - (nothing delivered yet)"),
            std::string::npos);
}

}  // namespace
}  // namespace s3db::cli

namespace s3db::cli {
namespace {

TEST(ServiceState, LoopbackHostsAreTheOnlyOnesWithoutAWarning) {
  for (const char* host : {"127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]"}) {
    EXPECT_TRUE(IsLoopbackHost(host)) << host;
    EXPECT_EQ(UnauthenticatedListenWarning(host, "http://x", "--listen"), "") << host;
  }
  for (const char* host :
       {"0.0.0.0", "10.0.0.5", "::", "192.168.1.1", "example.com", "128.0.0.1"}) {
    EXPECT_FALSE(IsLoopbackHost(host)) << host;
    EXPECT_NE(UnauthenticatedListenWarning(host, "http://x", "--listen").find("no authentication"),
              std::string::npos)
        << host;
  }
}

}  // namespace
}  // namespace s3db::cli
