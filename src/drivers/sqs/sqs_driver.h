// The SQS driver ("sqs"): sends each change as one message, body
//   {"resource", "action", "timestamp", "source": "s3db-replicator", "before"?, "data"}
// with SendMessageBatch over the AWS JSON 1.0 protocol, signed with SigV4 (service "sqs").
//
// Routing: queues[<destination>] (or queues[<source resource>]), else queueUrl, else
// defaultQueueUrl; a destination option "queueUrl" overrides all three. Requests go to
// `endpoint` (default https://sqs.<region>.amazonaws.com); the queue URL travels in the body
// only, so a local server's URLs need not resolve.
//
// Limits: at most 10 entries and maxBatchBytes per request; a message over maxMessageBytes (or
// over a queue's MaximumMessageSize read at Start) fails for good with "payload_too_large".
// FIFO queues (URL ending ".fifo"): MessageGroupId is messageGroupId or "<resource>:<id>";
// MessageDeduplicationId is the change id, so a retried send is never duplicated and two
// updates of one record are never collapsed.
//
// Outcomes: per entry of the reply; a failed entry with SenderFault is permanent
// ("sqs_<Code>"), any other failed entry retryable; only those entries are retried. A
// request refused as a whole for a sender fault is split into single-entry requests so that
// only the bad entries fail. Throttling, 5xx and transport errors are retryable; refused
// credentials and a missing queue are unauthorized (the engine pauses and probes). See
// docs/drivers/sqs.md.
//
// Thread safety: all methods may be called from any thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "net/http_client.h"
#include "net/sigv4.h"
#include "s3db/replicator/driver.h"

namespace s3db {
class ThreadPool;
}

namespace s3db::replicator {

// Registers the driver as "sqs". Idempotent.
void RegisterSqsDriver();

inline constexpr std::size_t kSqsMaxEntriesPerBatch = 10;
inline constexpr std::size_t kSqsMaxBytes = 1024 * 1024;  // AWS's limit since 2025: 1 MiB

// The replicator's "config" object. Unknown keys are refused.
struct SqsOptions {
  // "region": config, else AWS_REGION, else AWS_DEFAULT_REGION, else the region in an
  // amazonaws.com queue URL, else "us-east-1".
  std::string region;
  // "credentials": {"accessKeyId", "secretAccessKey", "sessionToken"?}, else the environment
  // (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN). Without either, requests
  // are sent unsigned, which only a local server (with `endpoint`) accepts.
  net::AwsCredentials credentials;
  // "endpoint": where requests go, e.g. "http://127.0.0.1:4576"; default
  // "https://sqs.<region>.amazonaws.com".
  std::string endpoint;
  std::string queue_url;                                   // "queueUrl"
  std::map<std::string, std::string, std::less<>> queues;  // "queues": resource -> URL
  std::string default_queue_url;                           // "defaultQueueUrl"
  std::optional<std::string> message_group_id;             // "messageGroupId": FIFO group for all
  bool deduplication_id = true;   // "deduplicationId": send the change id (FIFO only)
  JsonObject message_attributes;  // "messageAttributes": {name: {DataType, StringValue}}
  std::size_t max_message_bytes = kSqsMaxBytes;  // "maxMessageBytes": 1024 .. 1 MiB
  std::size_t max_batch_bytes = kSqsMaxBytes;    // "maxBatchBytes": 1024 .. 1 MiB
  int concurrency = 4;                           // "concurrency": requests in flight at once
  bool check_queues = true;  // "checkQueues": read each configured queue's attributes
  bool verify_tls = true;    // "verifyTls"
  std::string ca_file;       // "caFile"
};

// Validates the config; errors (kInvalidArgument) name the option and the fix. Reads the AWS
// environment variables for what the config leaves out.
Result<SqsOptions> ParseSqsOptions(const JsonObject& config);

class SqsDriver final : public Driver {
 public:
  struct Stats {
    std::uint64_t requests = 0;        // SendMessageBatch requests sent
    std::uint64_t messages_sent = 0;   // entries carried by those requests
    std::uint64_t delivered = 0;       // entries the server accepted
    std::uint64_t split_requests = 0;  // refused batches resent entry by entry
  };

  // `client`: the HTTP client to use; nullptr makes a libcurl client.
  SqsDriver(SqsOptions options, DriverContext context,
            std::shared_ptr<net::HttpClient> client = nullptr);
  ~SqsDriver() override;

  // With checkQueues, reads FifoQueue and MaximumMessageSize of every configured queue URL.
  // Errors: kInvalidArgument (a queue does not exist; names the option), kUnauthorized
  // (credentials refused), kUnavailable (endpoint unreachable). A policy that denies
  // GetQueueAttributes only skips the check.
  Status Start() override;

  std::vector<DeliveryResult> Deliver(std::span<const DeliveryItem> batch,
                                      std::chrono::milliseconds timeout) override;

  Stats stats() const;

  // The MessageGroupId / MessageDeduplicationId for a value: itself when SQS accepts it
  // (1..128 characters of letters, digits and punctuation), else "h-" + a SHA-256 prefix.
  static std::string SafeMessageToken(std::string_view value);

 private:
  using Clock = std::chrono::steady_clock;
  struct Entry;  // one message of a Deliver call

  // The queue URL for an item, or "" when none is configured.
  std::string QueueFor(const DeliveryItem& item) const;
  std::size_t MessageLimit(const std::string& queue_url) const;
  // One SendMessageBatch; fills the results of `entries`. Splits a refused batch.
  void SendBatch(const std::string& queue_url, std::span<Entry* const> entries,
                 Clock::time_point deadline);
  Result<net::HttpResponse> Call(std::string_view action, std::string body,
                                 std::chrono::milliseconds timeout);

  const SqsOptions options_;
  const DriverContext context_;
  const std::vector<std::string> secrets_;
  std::string endpoint_url_;   // scheme://authority/path as requests are sent
  std::string endpoint_host_;  // the Host header
  std::string endpoint_path_;  // the path (decoded) for signing
  std::shared_ptr<net::HttpClient> client_;
  std::unique_ptr<ThreadPool> pool_;

  mutable std::mutex limits_mutex_;                  // guards queue_limits_
  std::map<std::string, std::size_t> queue_limits_;  // URL -> its MaximumMessageSize

  mutable std::mutex stats_mutex_;  // guards stats_
  Stats stats_;
};

}  // namespace s3db::replicator
