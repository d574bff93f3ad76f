// RecentRevisions: what a dispatcher remembers to drop superseded changes stays bounded by the
// delivery rate and a count, however many records are written over time.
#include "replicator/recent_revisions.h"

#include <gtest/gtest.h>

#include <string>

namespace s3db::replicator::internal {
namespace {

using namespace std::chrono_literals;
using Clock = RecentRevisions::Clock;

std::string Key(int n) { return "0\x1fitems\x1fw1-" + std::to_string(n); }

TEST(RecentRevisions, RemembersTheHighestDeliveredRevisionOfARecord) {
  RecentRevisions recent(100, 60s);
  const Clock::time_point start{};
  EXPECT_EQ(recent.Last(Key(1)), 0u);
  recent.Remember(Key(1), 3, start);
  recent.Remember(Key(1), 2, start + 1s);  // an older one delivered later does not lower it
  EXPECT_EQ(recent.Last(Key(1)), 3u);
  EXPECT_EQ(recent.Last(Key(2)), 0u);
}

TEST(RecentRevisions, ARevisionIsRememberedForAtLeastTheGenerationAge) {
  RecentRevisions recent(1000, 60s);
  const Clock::time_point start{};
  recent.Remember(Key(1), 5, start);
  // Other records keep being delivered: record 1 is still known 60 s later (previous
  // generation), and forgotten only after two generations.
  for (int second = 1; second <= 119; ++second)
    recent.Remember(Key(100 + second), 1, start + second * 1s);
  EXPECT_EQ(recent.Last(Key(1)), 5u);
  recent.Remember(Key(999), 1, start + 120s);
  EXPECT_EQ(recent.Last(Key(1)), 0u);
}

TEST(RecentRevisions, ARecordDeliveredAgainIsCarriedIntoTheNewGeneration) {
  RecentRevisions recent(1000, 60s);
  const Clock::time_point start{};
  recent.Remember(Key(1), 5, start);
  recent.Remember(Key(1), 4, start + 70s);  // new generation; 5 still wins
  recent.Remember(Key(2), 1, start + 140s);
  EXPECT_EQ(recent.Last(Key(1)), 5u);
}

// The soak's growth: one entry per record ever delivered. Now, after 100,000 distinct records
// delivered at 50 a second (2,000 s), only about two minutes' worth are held.
TEST(RecentRevisions, SizeIsBoundedByTheRateNotByTheRecordsEverDelivered) {
  RecentRevisions recent(25000, 60s);
  const Clock::time_point start{};
  std::size_t largest = 0;
  for (int n = 0; n < 100000; ++n) {
    recent.Remember(Key(n), 1, start + n * 20ms);
    largest = std::max(largest, recent.size());
  }
  EXPECT_LE(largest, 2u * 60 * 50);
  EXPECT_GE(recent.size(), 60u * 50);  // the last minute is always there
}

TEST(RecentRevisions, SizeIsBoundedByTheGenerationLimitAtAnyRate) {
  RecentRevisions recent(1000, 60s);
  const Clock::time_point start{};
  for (int n = 0; n < 100000; ++n) {
    recent.Remember(Key(n), 1, start);  // all at once: only the count bounds it
    ASSERT_LE(recent.size(), 2000u);
  }
  EXPECT_EQ(recent.Last(Key(99999)), 1u);
  EXPECT_EQ(recent.Last(Key(98500)), 1u);  // the previous generation
}

}  // namespace
}  // namespace s3db::replicator::internal
