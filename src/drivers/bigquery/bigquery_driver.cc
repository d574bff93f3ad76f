#include "drivers/bigquery/bigquery_driver.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <set>
#include <thread>

#include "drivers/bigquery/bigquery_api.h"
#include "drivers/source_attributes.h"
#include "net/sigv4.h"
#include "s3db/schema.h"
#include "s3db/storage.h"

namespace s3db::replicator {
namespace bigquery {

// Resource definitions, parsed once per Deliver call.
class DefinitionCache {
 public:
  explicit DefinitionCache(const DriverContext& context) : context_(context) {}

  // The attributes of `resource`, or nullptr when its definition is unknown.
  const std::vector<Attribute>* Attributes(std::string_view resource) {
    auto found = cache_.find(resource);
    if (found == cache_.end()) found = cache_.emplace(std::string(resource), Load(resource)).first;
    return found->second ? &*found->second : nullptr;
  }

 private:
  std::optional<std::vector<Attribute>> Load(std::string_view resource) const {
    return LoadSourceAttributes(context_, resource);
  }

  const DriverContext& context_;
  std::map<std::string, std::optional<std::vector<Attribute>>, std::less<>> cache_;
};

// The changes of one batch that go to one table, in batch order.
struct TableGroup {
  std::string dataset;
  std::string table;
  std::string key;                     // "dataset.table", the cache key
  std::string display;                 // "project:dataset.table", for messages
  std::string sql_name;                // "`project.dataset.table`"
  std::vector<std::size_t> positions;  // batch positions
  std::span<const DeliveryItem> batch;
  DefinitionCache* definitions = nullptr;
};

}  // namespace bigquery

namespace {

using bigquery::ClassifyError;
using bigquery::ClassifyReply;
using bigquery::Deadline;
using bigquery::Encoding;
using bigquery::Field;
using bigquery::FieldType;
using bigquery::TableGroup;

constexpr std::string_view kIdColumn = "id";
constexpr std::string_view kActionColumn = "_action";
constexpr std::string_view kChangedAtColumn = "_changed_at";
constexpr std::string_view kChangeIdColumn = "_change_id";
constexpr std::string_view kRevisionColumn = "_rev";
constexpr std::string_view kDeletedField = "_deleted";
constexpr std::size_t kMaxRowsPerRequestLimit = 10000;
constexpr std::size_t kMaxRequestBytesLimit = 10 * 1000 * 1000;
constexpr std::size_t kRetryStateLimit = 100000;
constexpr int kMaxJobIdAttempts = 8;
constexpr std::chrono::milliseconds kMaxPollInterval{5000};
constexpr std::chrono::seconds kStartTimeout{30};
// How long after a schema patch "no such field" row errors are taken as not yet visible.
constexpr std::chrono::minutes kSchemaPropagation{10};

std::mutex log_observer_mutex;  // guards log_observer
std::function<void(std::string_view)>* log_observer = nullptr;

Error Invalid(std::string option, std::string message) {
  return Error(ErrorCode::kInvalidArgument, "bigquery config: " + option + ": " + message);
}

Result<std::string> GetString(const Json& value, const std::string& option) {
  if (!value.is_string()) return tl::unexpected(Invalid(option, "must be a string"));
  return std::string(value.get_string());
}

Result<bool> GetBool(const Json& value, const std::string& option) {
  if (!value.is_bool()) return tl::unexpected(Invalid(option, "must be true or false"));
  return value.get_bool();
}

Result<std::int64_t> GetInt(const Json& value, const std::string& option, std::int64_t low,
                            std::int64_t high) {
  std::int64_t number = 0;
  if (value.is_int64()) {
    number = value.get_int64();
  } else if (value.is_uint64() && value.get_uint64() <= static_cast<std::uint64_t>(high)) {
    number = static_cast<std::int64_t>(value.get_uint64());
  } else if (value.is_double() &&
             value.get_double() ==
                 static_cast<double>(static_cast<std::int64_t>(value.get_double()))) {
    number = static_cast<std::int64_t>(value.get_double());
  } else {
    return tl::unexpected(Invalid(option, "must be an integer"));
  }
  if (number < low || number > high) {
    return tl::unexpected(Invalid(option, std::to_string(number) + " is outside " +
                                              std::to_string(low) + ".." + std::to_string(high)));
  }
  return number;
}

bool IsValidLocation(std::string_view location) {
  if (location.empty() || location.size() > 64) return false;
  return std::all_of(location.begin(), location.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
  });
}

Status ParseTableOptions(const Json& value, BigqueryOptions& options) {
  if (!value.is_object()) return tl::unexpected(Invalid("tableOptions", "must be an object"));
  for (const auto& [key, item] : value.get_object()) {
    if (key == "timePartitioning") {
      if (!item.is_object()) {
        return tl::unexpected(Invalid("tableOptions.timePartitioning", "must be an object"));
      }
      JsonObject partitioning;
      for (const auto& [name, setting] : item.get_object()) {
        std::string path = "tableOptions.timePartitioning." + std::string(name);
        if (name == "type") {
          S3DB_ASSIGN_OR_RETURN(std::string type, GetString(setting, path));
          if (type != "DAY" && type != "HOUR" && type != "MONTH" && type != "YEAR") {
            return tl::unexpected(
                Invalid(path, "must be \"DAY\", \"HOUR\", \"MONTH\" or \"YEAR\""));
          }
          partitioning["type"] = type;
        } else if (name == "field") {
          S3DB_ASSIGN_OR_RETURN(std::string field, GetString(setting, path));
          if (!bigquery::IsValidColumnName(field)) {
            return tl::unexpected(Invalid(path, "'" + field + "' is not a valid column name"));
          }
          partitioning["field"] = field;
        } else if (name == "expirationMs") {
          S3DB_ASSIGN_OR_RETURN(std::int64_t ms, GetInt(setting, path, 1, INT64_MAX));
          partitioning["expirationMs"] = std::to_string(ms);
        } else {
          return tl::unexpected(Invalid(path,
                                        "unknown option (known: type, field, "
                                        "expirationMs)"));
        }
      }
      if (!partitioning.contains("type")) {
        return tl::unexpected(Invalid("tableOptions.timePartitioning.type", "is required"));
      }
      options.time_partitioning = std::move(partitioning);
    } else if (key == "clustering") {
      const Json* fields = &item;
      if (item.is_object()) fields = item.get_object().if_contains("fields");
      if (fields == nullptr || !fields->is_array()) {
        return tl::unexpected(Invalid("tableOptions.clustering",
                                      "must be an array of field names (or {\"fields\": [...]})"));
      }
      if (fields->get_array().size() > 4) {
        return tl::unexpected(Invalid("tableOptions.clustering", "at most 4 fields"));
      }
      options.clustering.clear();
      for (const Json& field : fields->get_array()) {
        S3DB_ASSIGN_OR_RETURN(std::string name, GetString(field, "tableOptions.clustering[]"));
        if (!bigquery::IsValidColumnName(name)) {
          return tl::unexpected(
              Invalid("tableOptions.clustering", "'" + name + "' is not a valid column name"));
        }
        options.clustering.push_back(std::move(name));
      }
    } else {
      return tl::unexpected(Invalid("tableOptions." + std::string(key),
                                    "unknown option (known: timePartitioning, clustering)"));
    }
  }
  return Ok();
}

std::string Hash(std::string_view text) { return net::Sha256Hex(text); }

std::string TablePath(const std::string& project, const TableGroup& group) {
  return "/bigquery/v2/projects/" + bigquery::EncodeSegment(project) + "/datasets/" +
         bigquery::EncodeSegment(group.dataset) + "/tables/" + bigquery::EncodeSegment(group.table);
}

std::string JobsPath(const std::string& project) {
  return "/bigquery/v2/projects/" + bigquery::EncodeSegment(project) + "/jobs";
}

const JsonObject* ObjectAt(const Json& value, std::string_view key) {
  const JsonObject* object = value.if_object();
  if (object == nullptr) return nullptr;
  const Json* item = object->if_contains(key);
  return item != nullptr ? item->if_object() : nullptr;
}

std::string StringAt(const JsonObject* object, std::string_view key) {
  if (object == nullptr) return "";
  const Json* item = object->if_contains(key);
  return item != nullptr && item->is_string() ? std::string(item->get_string()) : "";
}

Result<std::vector<Field>> SchemaOf(const Json& table) {
  const JsonObject* schema = ObjectAt(table, "schema");
  if (schema == nullptr) return std::vector<Field>{};
  const Json* fields = schema->if_contains("fields");
  if (fields == nullptr) return std::vector<Field>{};
  return bigquery::FieldsFromJson(*fields);
}

// Changes are stored under these column names; record fields of the same name are replaced.
bool IsMetadataColumn(std::string_view name) {
  return name == kIdColumn || name == kActionColumn || name == kChangedAtColumn ||
         name == kChangeIdColumn || name == kRevisionColumn || name == kDeletedField;
}

Field MakeField(std::string_view name, FieldType type) {
  Field field;
  field.name = std::string(name);
  field.type = type;
  return field;
}

std::string RecordId(const DeliveryItem& item) {
  const Json* id = item.data.if_contains(kIdColumn);
  if (id != nullptr && id->is_string() && !id->get_string().empty()) {
    return std::string(id->get_string());
  }
  return item.id;
}

bool IsPermanentRowReason(std::string_view reason) {
  return reason == "invalid" || reason == "invalidQuery";
}

// The outcome of one row listed in insertErrors.
DeliveryResult RowErrorResult(const JsonArray& errors, const std::string& what) {
  std::string retry_reason;
  for (const Json& entry : errors) {
    const JsonObject* error = entry.if_object();
    std::string reason = StringAt(error, "reason");
    std::string message = StringAt(error, "message");
    std::string location = StringAt(error, "location");
    if (IsPermanentRowReason(reason)) {
      std::string text = what + ": row refused (" + reason + ")";
      if (!location.empty()) text += " at " + location;
      if (!message.empty()) text += ": " + message;
      return DeliveryResult::Permanent(reason, text);
    }
    if (retry_reason.empty() || retry_reason == "stopped") {
      retry_reason = reason.empty() ? "unknown" : reason;
      if (!message.empty()) retry_reason += ": " + message;
    }
  }
  if (retry_reason == "stopped") {
    return DeliveryResult::Retryable(what +
                                     ": row not inserted because another row of the "
                                     "request was invalid (stopped)");
  }
  return DeliveryResult::Retryable(what + ": row not inserted (" + retry_reason + ")");
}

// The row index of a load-job error that names "position N" (the byte offset of the row in
// the uploaded file), or nullopt.
std::optional<std::size_t> RowOfPosition(std::string_view message,
                                         const std::vector<std::size_t>& offsets) {
  std::size_t at = message.find("position ");
  if (at == std::string_view::npos) return std::nullopt;
  std::size_t begin = at + 9;
  std::size_t end = begin;
  while (end < message.size() && std::isdigit(static_cast<unsigned char>(message[end]))) ++end;
  if (end == begin) return std::nullopt;
  std::size_t offset = std::stoull(std::string(message.substr(begin, end - begin)));
  auto after = std::upper_bound(offsets.begin(), offsets.end(), offset);
  if (after == offsets.begin()) return std::nullopt;
  return static_cast<std::size_t>(after - offsets.begin() - 1);
}

bool IsRetryableJobReason(std::string_view reason) {
  return reason == "backendError" || reason == "internalError" || reason == "timeout" ||
         reason == "rateLimitExceeded" || reason == "quotaExceeded" ||
         reason == "jobBackendError" || reason == "jobInternalError";
}

std::string JoinIds(const TableGroup& group, const std::vector<std::size_t>& positions,
                    std::size_t begin, std::size_t end) {
  std::string text;
  for (std::size_t i = begin; i < end; ++i) {
    text += group.batch[positions[i]].change_id;
    text += '\n';
  }
  return text;
}

void SetAll(std::vector<DeliveryResult>& results, const std::vector<std::size_t>& positions,
            std::size_t begin, std::size_t end, const DeliveryResult& result) {
  for (std::size_t i = begin; i < end; ++i) results[positions[i]] = result;
}

std::string QuoteIdentifier(std::string_view name) { return "`" + std::string(name) + "`"; }

// The SQL expression that reads column `field` from the JSON text `r`.
std::string ColumnExpression(const Field& field) {
  std::string path = "'$." + field.name + "'";
  switch (field.type) {
    case FieldType::kInt64:
      return "CAST(JSON_VALUE(r, " + path + ") AS INT64)";
    case FieldType::kFloat64:
      return "CAST(JSON_VALUE(r, " + path + ") AS FLOAT64)";
    case FieldType::kNumeric:
      return "CAST(JSON_VALUE(r, " + path + ") AS NUMERIC)";
    case FieldType::kBool:
      return "CAST(JSON_VALUE(r, " + path + ") AS BOOL)";
    case FieldType::kTimestamp:
      return "CAST(JSON_VALUE(r, " + path + ") AS TIMESTAMP)";
    case FieldType::kJson:
      return "PARSE_JSON(JSON_QUERY(r, " + path + "))";
    default:
      return "JSON_VALUE(r, " + path + ")";
  }
}

bool IsMergeColumn(const Field& field) {
  return !field.repeated && field.type != FieldType::kRecord && field.type != FieldType::kOther &&
         field.name != kIdColumn && field.name != kRevisionColumn && field.name != kChangedAtColumn;
}

// One MERGE for a batch of latest record states (@rows: a JSON array of objects).
std::string BuildMergeSql(const std::string& table, const std::vector<Field>& schema) {
  std::vector<const Field*> columns;
  for (const Field& field : schema) {
    if (IsMergeColumn(field)) columns.push_back(&field);
  }
  std::string select =
      "SELECT JSON_VALUE(r, '$.id') AS `id`, "
      "CAST(JSON_VALUE(r, '$._rev') AS INT64) AS `_rev`, "
      "CAST(JSON_VALUE(r, '$._changed_at') AS TIMESTAMP) AS `_changed_at`, "
      "IFNULL(CAST(JSON_VALUE(r, '$._deleted') AS BOOL), FALSE) AS `_deleted`";
  std::string set = "`_rev` = source.`_rev`, `_changed_at` = source.`_changed_at`";
  std::string insert_columns = "`id`, `_rev`, `_changed_at`";
  std::string insert_values = "source.`id`, source.`_rev`, source.`_changed_at`";
  for (const Field* field : columns) {
    std::string name = QuoteIdentifier(field->name);
    select += ", " + ColumnExpression(*field) + " AS " + name;
    set += ", " + name + " = source." + name;
    insert_columns += ", " + name;
    insert_values += ", source." + name;
  }
  return "MERGE " + table + " AS target USING (" + select +
         " FROM UNNEST(JSON_QUERY_ARRAY(@rows)) AS r) AS source ON target.`id` = source.`id` "
         "WHEN MATCHED AND source.`_deleted` AND (target.`_rev` IS NULL OR target.`_rev` < "
         "source.`_rev`) THEN DELETE "
         "WHEN MATCHED AND NOT source.`_deleted` AND (target.`_rev` IS NULL OR target.`_rev` < "
         "source.`_rev`) THEN UPDATE SET " +
         set +
         " "
         "WHEN NOT MATCHED AND NOT source.`_deleted` THEN INSERT (" +
         insert_columns + ") VALUES (" + insert_values + ")";
}

// The job's final error, or nullptr when it succeeded.
const JsonObject* JobErrorResult(const Json& job) {
  const JsonObject* status = ObjectAt(job, "status");
  if (status == nullptr) return nullptr;
  const Json* error = status->if_contains("errorResult");
  return error != nullptr ? error->if_object() : nullptr;
}

std::string JobState(const Json& job) { return StringAt(ObjectAt(job, "status"), "state"); }

// Location names compare without regard to case ("EU" and "eu", "europe-west1").
bool SameLocation(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// BigQuery's answer to a job that runs in another location than its dataset: "Not found:
// Dataset p:d was not found in location US". Permanent until the configuration changes.
bool IsLocationMismatch(std::string_view message) {
  return message.find("was not found in location") != std::string_view::npos;
}

DeliveryResult LocationMismatch(const std::string& error, const std::string& location) {
  return DeliveryResult::Permanent(
      "location_mismatch",
      error + "; the job ran in " + (location.empty() ? "the default location" : location) +
          ": set the location option to the dataset's location (or remove it), then replay the "
          "dead letters");
}

std::string WithLocation(std::string path, const std::string& location) {
  if (location.empty()) return path;
  return path + "?location=" + bigquery::EncodeSegment(location);
}

}  // namespace

void SetBigqueryLogObserver(std::function<void(std::string_view line)> observer) {
  std::lock_guard lock(log_observer_mutex);
  delete log_observer;
  log_observer =
      observer ? new std::function<void(std::string_view)>(std::move(observer)) : nullptr;
}

Result<BigqueryOptions> ParseBigqueryOptions(const JsonObject& config) {
  BigqueryOptions options;
  const Json* credentials = nullptr;
  for (const auto& [key_view, value] : config) {
    std::string key(key_view);
    if (key == "projectId") {
      S3DB_ASSIGN_OR_RETURN(options.project_id, GetString(value, key));
    } else if (key == "datasetId") {
      S3DB_ASSIGN_OR_RETURN(options.dataset_id, GetString(value, key));
    } else if (key == "location") {
      S3DB_ASSIGN_OR_RETURN(options.location, GetString(value, key));
    } else if (key == "credentials") {
      credentials = &value;
    } else if (key == "tokenUri") {
      S3DB_ASSIGN_OR_RETURN(options.token_uri, GetString(value, key));
    } else if (key == "insertMethod") {
      S3DB_ASSIGN_OR_RETURN(std::string method, GetString(value, key));
      if (method == "streaming") {
        options.insert_method = BigqueryInsertMethod::kStreaming;
      } else if (method == "batch") {
        options.insert_method = BigqueryInsertMethod::kBatch;
      } else {
        return tl::unexpected(
            Invalid(key, "must be \"streaming\" or \"batch\", not '" + method + "'"));
      }
    } else if (key == "mode") {
      S3DB_ASSIGN_OR_RETURN(std::string mode, GetString(value, key));
      if (mode == "changelog") {
        options.mode = BigqueryMode::kChangelog;
      } else if (mode == "merge" || mode == "dml") {
        options.mode = BigqueryMode::kMerge;
      } else {
        return tl::unexpected(
            Invalid(key, "must be \"changelog\", \"merge\" or \"dml\", not '" + mode + "'"));
      }
    } else if (key == "ignoreUnknownValues") {
      S3DB_ASSIGN_OR_RETURN(options.ignore_unknown_values, GetBool(value, key));
    } else if (key == "skipInvalidRows") {
      S3DB_ASSIGN_OR_RETURN(options.skip_invalid_rows, GetBool(value, key));
    } else if (key == "maxRetries") {
      if (!value.is_null()) {
        S3DB_ASSIGN_OR_RETURN(std::int64_t retries, GetInt(value, key, 0, 1000));
        options.max_retries = static_cast<int>(retries);
      }
    } else if (key == "endpoint") {
      S3DB_ASSIGN_OR_RETURN(options.endpoint, GetString(value, key));
    } else if (key == "tableOptions") {
      S3DB_RETURN_IF_ERROR(ParseTableOptions(value, options));
    } else if (key == "createTables") {
      S3DB_ASSIGN_OR_RETURN(options.create_tables, GetBool(value, key));
    } else if (key == "exactNumbers") {
      S3DB_ASSIGN_OR_RETURN(options.exact_numbers, GetBool(value, key));
    } else if (key == "attributeColumns") {
      S3DB_ASSIGN_OR_RETURN(std::string columns, GetString(value, key));
      if (columns != "all" && columns != "present") {
        return tl::unexpected(Invalid(key, "must be \"all\" or \"present\""));
      }
      options.create_all_attribute_columns = columns == "all";
    } else if (key == "maxRowsPerRequest") {
      S3DB_ASSIGN_OR_RETURN(std::int64_t rows, GetInt(value, key, 1, kMaxRowsPerRequestLimit));
      options.max_rows_per_request = static_cast<std::size_t>(rows);
    } else if (key == "maxRequestBytes") {
      S3DB_ASSIGN_OR_RETURN(std::int64_t bytes, GetInt(value, key, 1024, kMaxRequestBytesLimit));
      options.max_request_bytes = static_cast<std::size_t>(bytes);
    } else if (key == "jobPollIntervalMs") {
      S3DB_ASSIGN_OR_RETURN(std::int64_t ms, GetInt(value, key, 1, 60000));
      options.job_poll_interval = std::chrono::milliseconds(ms);
    } else {
      return tl::unexpected(
          Invalid(key,
                  "unknown option (known: projectId, datasetId, location, credentials, tokenUri, "
                  "insertMethod, mode, ignoreUnknownValues, skipInvalidRows, maxRetries, endpoint, "
                  "tableOptions, createTables, exactNumbers, attributeColumns, maxRowsPerRequest, "
                  "maxRequestBytes, jobPollIntervalMs)"));
    }
  }

  auto loaded = bigquery::LoadCredentials(credentials);
  if (!loaded)
    return tl::unexpected(Error(loaded.error().code, "bigquery config: " + loaded.error().message));
  options.credentials = std::move(*loaded);
  if (options.project_id.empty()) options.project_id = options.credentials.project_id;
  if (options.project_id.empty()) {
    bool user = options.credentials.type == bigquery::CredentialType::kAuthorizedUser;
    return tl::unexpected(
        Invalid("projectId", std::string("is required: ") +
                                 (user ? "authorized_user credentials (from " +
                                             options.credentials.origin + ") carry no project"
                                       : "the service-account key (from " +
                                             options.credentials.origin + ") has no project_id") +
                                 "; set projectId to the project that holds the dataset (e.g. "
                                 "\"my-analytics-project\")"));
  }
  // Left out, datasetId is required unless every destination names its dataset, which only the
  // driver factory can tell (CheckDatasets); given, it must not be empty.
  if (options.dataset_id.empty() && config.contains("datasetId")) {
    return tl::unexpected(Invalid(
        "datasetId", std::string("is empty") +
                         "; set it to the dataset that holds the tables (create one with `bq mk "
                         "--dataset " +
                         options.project_id +
                         ":DATASET`); a destination may still name another dataset as "
                         "\"dataset.table\""));
  }
  if (!bigquery::IsValidProjectId(options.project_id)) {
    return tl::unexpected(Invalid("projectId", "'" + options.project_id +
                                                   "' is not a valid project id (6-30 lowercase "
                                                   "letters, digits or hyphens)"));
  }
  if (!options.dataset_id.empty() && !bigquery::IsValidDatasetId(options.dataset_id)) {
    return tl::unexpected(Invalid("datasetId", "'" + options.dataset_id +
                                                   "' is not a valid dataset id (letters, digits "
                                                   "and underscores, at most 1024)"));
  }
  if (!options.location.empty() && !IsValidLocation(options.location)) {
    return tl::unexpected(Invalid("location", "'" + options.location +
                                                  "' is not a location name such as US, EU or "
                                                  "europe-west1"));
  }
  for (const std::string* url : {&options.endpoint, &options.token_uri}) {
    if (url->empty()) continue;
    if (url->rfind("http://", 0) != 0 && url->rfind("https://", 0) != 0) {
      return tl::unexpected(Invalid(url == &options.endpoint ? "endpoint" : "tokenUri",
                                    "must be an http:// or https:// URL"));
    }
  }
  while (!options.endpoint.empty() && options.endpoint.back() == '/') options.endpoint.pop_back();
  if (options.endpoint.empty()) {
    return tl::unexpected(Invalid("endpoint", "must not be empty"));
  }
  return options;
}

JsonObject BigqueryChangelogRow(const DeliveryItem& item, const std::vector<Field>& schema,
                                Encoding encoding) {
  JsonObject row = bigquery::EncodeRecord(item.data, schema, encoding);
  row[kIdColumn] = RecordId(item);
  row[kActionColumn] = ActionName(item.action);
  row[kChangedAtColumn] = bigquery::FormatTimestampMillis(item.timestamp_ms);
  row[kChangeIdColumn] = item.change_id;
  row[kRevisionColumn] = static_cast<std::int64_t>(item.revision);
  return row;
}

BigqueryDriver::BigqueryDriver(BigqueryOptions options, DriverContext context,
                               std::unique_ptr<net::HttpClient> http)
    : options_(std::move(options)), context_(std::move(context)), http_(std::move(http)) {
  if (!http_) http_ = net::NewHttpClient();
}

BigqueryDriver::~BigqueryDriver() = default;

void BigqueryDriver::Log(int level, const std::string& line) const {
  std::string text = RedactSecrets("bigquery[" + context_.replicator_id + "]: " + line);
  switch (level) {
    case 0:
      spdlog::debug("{}", text);
      break;
    case 1:
      spdlog::info("{}", text);
      break;
    default:
      spdlog::warn("{}", text);
      break;
  }
  std::lock_guard lock(log_observer_mutex);
  if (log_observer != nullptr) (*log_observer)(text);
}

// The dataset and table a destination names: its "table" and "dataset" keys win over its
// name, and a name "dataset.table" carries its dataset. `dataset` is empty when none is named.
struct NamedTable {
  std::string dataset;
  std::string table;
};

static NamedTable DestinationTable(const std::string& target, const JsonObject* options) {
  NamedTable named{"", target};
  if (options != nullptr) {
    if (const Json* value = options->if_contains("table"); value && value->is_string()) {
      named.table = std::string(value->get_string());
    }
    if (const Json* value = options->if_contains("dataset"); value && value->is_string()) {
      named.dataset = std::string(value->get_string());
    }
  }
  if (named.dataset.empty()) {
    std::size_t dot = named.table.find('.');
    if (dot != std::string::npos && bigquery::IsValidDatasetId(named.table.substr(0, dot))) {
      named.dataset = named.table.substr(0, dot);
      named.table = named.table.substr(dot + 1);
    }
  }
  return named;
}


Status BigqueryDriver::Start() {
  if (started_) return Ok();
  stopping_ = false;
  if (!tokens_) {
    S3DB_ASSIGN_OR_RETURN(
        tokens_, bigquery::TokenSource::Create(options_.credentials, *http_, options_.token_uri,
                                               options_.clock));
    api_ = std::make_unique<bigquery::Api>(*http_, *tokens_, options_.endpoint);
  }
  auto token = tokens_->Token(kStartTimeout);
  if (!token) {
    Log(2, "start: " + token.error().message);
    return tl::unexpected(Error(token.error().code, "bigquery: " + token.error().message));
  }

  // The datasets to check: datasetId, or without it every dataset the destinations name.
  std::set<std::string> datasets;
  if (!options_.dataset_id.empty()) {
    datasets.insert(options_.dataset_id);
  } else {
    for (const auto& destination : context_.destinations) {
      std::string dataset = DestinationTable(destination.target, &destination.options).dataset;
      if (!dataset.empty()) datasets.insert(dataset);
    }
  }
  for (const std::string& dataset_id : datasets) {
    std::string display = options_.project_id + ":" + dataset_id;
    std::string path = "/bigquery/v2/projects/" + bigquery::EncodeSegment(options_.project_id) +
                       "/datasets/" + bigquery::EncodeSegment(dataset_id);
    auto reply = api_->Send("GET", path, "", "", bigquery::SteadyClock::now() + kStartTimeout);
    if (!reply) {
      return tl::unexpected(Error(reply.error().code, "bigquery: checking dataset " + display +
                                                          ": " + reply.error().message));
    }
    if (!reply->ok()) {
      std::string message = "bigquery: dataset " + display + ": " + reply->Describe();
      Log(2, "start: " + message);
      if (reply->status == 404) {
        return MakeError(ErrorCode::kInvalidArgument,
                         message + "; datasetId: create the dataset (bq mk --dataset " + display +
                             ") or fix datasetId and projectId");
      }
      if (reply->status == 401 || reply->status == 403) {
        return MakeError(
            ErrorCode::kUnauthorized,
            message + "; grant " + options_.credentials.Principal() + " access to the dataset");
      }
      if (reply->status == 429 || reply->status >= 500) {
        return MakeError(ErrorCode::kUnavailable, message);
      }
      return MakeError(ErrorCode::kInvalidArgument, message);
    }
    std::string found = StringAt(reply->body.if_object(), "location");
    if (!options_.location.empty() && !found.empty() && !SameLocation(found, options_.location)) {
      std::string message = "bigquery: dataset " + display + " is in location " + found +
                            ", not in " + options_.location +
                            " (the location option); jobs there would fail with \"Not found: "
                            "Dataset " +
                            display + " was not found in location " + options_.location +
                            "\". location: set it to " + found +
                            " or remove it (jobs then run where their dataset is)";
      Log(2, "start: " + message);
      return MakeError(ErrorCode::kInvalidArgument, message);
    }
    if (!found.empty()) {
      std::lock_guard lock(mutex_);
      dataset_locations_[dataset_id] = found;
    }
  }
  started_ = true;
  Log(1, "started: project " + options_.project_id +
             (options_.dataset_id.empty() ? "" : ", dataset " + options_.dataset_id) +
             ", insertMethod " +
             (options_.insert_method == BigqueryInsertMethod::kBatch ? "batch" : "streaming") +
             ", mode " + (options_.mode == BigqueryMode::kMerge ? "merge" : "changelog") +
             (options_.location.empty() ? "" : ", location " + options_.location) + ", " +
             options_.credentials.Principal() + " from " + options_.credentials.origin);
  return Ok();
}

void BigqueryDriver::Stop() {
  stopping_ = true;
  started_ = false;
}

BigqueryDriver::Stats BigqueryDriver::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

std::uint64_t BigqueryDriver::token_fetches() const { return tokens_ ? tokens_->fetches() : 0; }

std::vector<DeliveryResult> BigqueryDriver::Deliver(std::span<const DeliveryItem> batch,
                                                    std::chrono::milliseconds timeout) {
  Deadline deadline = bigquery::SteadyClock::now() + timeout;
  std::vector<DeliveryResult> results(
      batch.size(), DeliveryResult::Retryable("bigquery: the change was not attempted"));
  if (!started_ || !api_) {
    for (auto& result : results) {
      result = DeliveryResult::Retryable("bigquery: the driver is not started");
    }
    return results;
  }

  bigquery::DefinitionCache definitions(context_);
  std::vector<TableGroup> groups;
  std::map<std::string, std::size_t, std::less<>> group_of;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const DeliveryItem& item = batch[i];
    NamedTable named = DestinationTable(item.target, item.destination_options);
    std::string table = std::move(named.table);
    std::string dataset = named.dataset.empty() ? options_.dataset_id : std::move(named.dataset);
    if (dataset.empty()) {
      results[i] = DeliveryResult::Permanent(
          "invalid_identifier", "bigquery: no dataset for destination '" + item.target +
                                    "': set datasetId, a destination \"dataset\" or name it "
                                    "\"dataset.table\"");
      continue;
    }
    if (!bigquery::IsValidDatasetId(dataset)) {
      results[i] = DeliveryResult::Permanent("invalid_identifier",
                                             "bigquery: '" + dataset +
                                                 "' is not a valid dataset id "
                                                 "(letters, digits and underscores, at most 1024)");
      continue;
    }
    if (!bigquery::IsValidTableId(table)) {
      results[i] = DeliveryResult::Permanent(
          "invalid_identifier", "bigquery: destination '" + item.target +
                                    "' is not a valid table id (letters, marks, "
                                    "numbers, connectors, dashes and spaces, at most 1024 bytes)");
      continue;
    }
    std::string key = dataset + "." + table;
    auto found = group_of.find(key);
    if (found == group_of.end()) {
      TableGroup group;
      group.dataset = dataset;
      group.table = table;
      group.key = key;
      group.display = options_.project_id + ":" + key;
      group.sql_name = "`" + options_.project_id + "." + key + "`";
      group.batch = batch;
      group.definitions = &definitions;
      found = group_of.emplace(key, groups.size()).first;
      groups.push_back(std::move(group));
    }
    groups[found->second].positions.push_back(i);
  }

  for (TableGroup& group : groups) DeliverGroup(group, deadline, results);
  ApplyRetryBudget(results, batch);
  return results;
}

void BigqueryDriver::DeliverGroup(TableGroup& group, Deadline deadline,
                                  std::vector<DeliveryResult>& results) {
  if (options_.mode == BigqueryMode::kMerge) {
    DeliverMerge(group, deadline, results);
  } else {
    DeliverChangelog(group, deadline, results);
  }
}

namespace {

// Fields of a group's records, their invalid names, and which columns a new table gets.
struct ColumnPlan {
  std::vector<Field> wanted;         // metadata + every record's fields
  std::vector<Field> create_fields;  // wanted + the attributes of the sources (when "all")
  std::vector<bool> usable;          // per group position: false when already failed
};

ColumnPlan PlanColumns(const TableGroup& group, const BigqueryOptions& options,
                       const std::vector<Field>& metadata, const bigquery::TypeOptions& types,
                       std::vector<DeliveryResult>& results) {
  static const std::vector<std::string_view> kSkip = {
      kIdColumn, kActionColumn, kChangedAtColumn, kChangeIdColumn, kRevisionColumn, kDeletedField};
  ColumnPlan plan;
  plan.wanted = metadata;
  plan.usable.assign(group.positions.size(), true);
  std::vector<Field> attribute_fields;
  std::vector<std::string> sources_seen;
  for (std::size_t k = 0; k < group.positions.size(); ++k) {
    const DeliveryItem& item = group.batch[group.positions[k]];
    const std::vector<Attribute>* attributes = group.definitions->Attributes(item.source_resource);
    if (options.create_all_attribute_columns && attributes != nullptr &&
        std::find(sources_seen.begin(), sources_seen.end(), item.source_resource) ==
            sources_seen.end()) {
      sources_seen.push_back(item.source_resource);
      std::vector<Field> fields;
      for (const Attribute& attribute : *attributes) {
        if (IsMetadataColumn(attribute.name)) continue;
        fields.push_back(bigquery::FieldFromAttribute(attribute, types));
      }
      bigquery::MergeFields(attribute_fields, fields);
    }
    if (item.action == Action::kDelete && options.mode == BigqueryMode::kMerge) continue;
    std::vector<Field> fields = bigquery::FieldsForRecord(item.data, attributes, types, kSkip);
    std::vector<std::string> invalid = bigquery::InvalidColumnNames(fields);
    if (!invalid.empty() && !options.ignore_unknown_values) {
      results[group.positions[k]] = DeliveryResult::Permanent(
          "invalid_column_name",
          "bigquery: field '" + invalid.front() + "' of record '" + item.id +
              "' cannot be a "
              "column of " +
              group.display +
              " (letters, digits and underscores, starting with a "
              "letter or underscore, at most 300); rename it with a transform");
      plan.usable[k] = false;
      continue;
    }
    if (options.ignore_unknown_values && !invalid.empty()) {
      fields.erase(
          std::remove_if(fields.begin(), fields.end(),
                         [](const Field& f) { return !bigquery::IsValidColumnName(f.name); }),
          fields.end());
    }
    bigquery::MergeFields(plan.wanted, fields);
  }
  std::vector<Field> all = metadata;
  bigquery::MergeFields(all, attribute_fields);
  bigquery::MergeFields(all, plan.wanted);
  plan.create_fields = std::move(all);
  return plan;
}

// Marks changes whose records carry a field the table refused to add.
void FailRefused(const TableGroup& group, const std::vector<std::string>& refused,
                 std::vector<bool>& usable, std::vector<DeliveryResult>& results,
                 const std::string& why) {
  if (refused.empty()) return;
  for (std::size_t k = 0; k < group.positions.size(); ++k) {
    if (!usable[k]) continue;
    const DeliveryItem& item = group.batch[group.positions[k]];
    for (const std::string& name : refused) {
      std::string top = name.substr(0, name.find('.'));
      if (item.data.contains(top)) {
        results[group.positions[k]] = DeliveryResult::Permanent(
            "schema_update_failed",
            "bigquery: adding column '" + name + "' to " + group.display + " failed: " + why);
        usable[k] = false;
        break;
      }
    }
  }
}

}  // namespace

void BigqueryDriver::DeliverChangelog(TableGroup& group, Deadline deadline,
                                      std::vector<DeliveryResult>& results) {
  bigquery::TypeOptions types{options_.exact_numbers, false};
  std::vector<Field> metadata = {MakeField(kIdColumn, FieldType::kString),
                                 MakeField(kActionColumn, FieldType::kString),
                                 MakeField(kChangedAtColumn, FieldType::kTimestamp),
                                 MakeField(kChangeIdColumn, FieldType::kString),
                                 MakeField(kRevisionColumn, FieldType::kInt64)};
  ColumnPlan plan = PlanColumns(group, options_, metadata, types, results);

  std::vector<Field> schema;
  std::vector<std::string> refused;
  if (auto failure =
          EnsureTable(group, plan.create_fields, plan.wanted, deadline, schema, refused)) {
    for (std::size_t k = 0; k < group.positions.size(); ++k) {
      if (plan.usable[k]) results[group.positions[k]] = *failure;
    }
    return;
  }
  FailRefused(group, refused, plan.usable, results, "the service refused the schema update");

  bool streaming = options_.insert_method == BigqueryInsertMethod::kStreaming;
  Encoding encoding = streaming ? Encoding::kStreaming : Encoding::kLoad;
  std::vector<std::size_t> positions;
  std::vector<std::string> rows;
  positions.reserve(group.positions.size());
  rows.reserve(group.positions.size());
  for (std::size_t k = 0; k < group.positions.size(); ++k) {
    if (!plan.usable[k]) continue;
    const DeliveryItem& item = group.batch[group.positions[k]];
    JsonObject row = BigqueryChangelogRow(item, schema, encoding);
    if (streaming) {
      JsonObject wrapper;
      wrapper["insertId"] = item.change_id;
      wrapper["json"] = std::move(row);
      rows.push_back(ToJson(wrapper));
    } else {
      rows.push_back(ToJson(row));
    }
    positions.push_back(group.positions[k]);
  }
  if (rows.empty()) return;
  if (streaming) {
    StreamRows(group, positions, rows, deadline, results);
  } else {
    LoadRows(group, positions, rows, deadline, results);
  }
}

void BigqueryDriver::DeliverMerge(TableGroup& group, Deadline deadline,
                                  std::vector<DeliveryResult>& results) {
  bigquery::TypeOptions types{options_.exact_numbers, true};
  std::vector<Field> metadata = {MakeField(kIdColumn, FieldType::kString),
                                 MakeField(kRevisionColumn, FieldType::kInt64),
                                 MakeField(kChangedAtColumn, FieldType::kTimestamp)};
  ColumnPlan plan = PlanColumns(group, options_, metadata, types, results);

  std::vector<Field> schema;
  std::vector<std::string> refused;
  if (auto failure =
          EnsureTable(group, plan.create_fields, plan.wanted, deadline, schema, refused)) {
    for (std::size_t k = 0; k < group.positions.size(); ++k) {
      if (plan.usable[k]) results[group.positions[k]] = *failure;
    }
    return;
  }
  FailRefused(group, refused, plan.usable, results, "the service refused the schema update");

  // Several changes of one record collapse to the latest; the earlier ones share its outcome.
  std::map<std::string, std::size_t> latest;  // record id -> group position
  for (std::size_t k = 0; k < group.positions.size(); ++k) {
    if (plan.usable[k]) latest[RecordId(group.batch[group.positions[k]])] = k;
  }
  std::vector<std::size_t> positions;
  std::vector<std::string> rows;
  for (std::size_t k = 0; k < group.positions.size(); ++k) {
    if (!plan.usable[k]) continue;
    const DeliveryItem& item = group.batch[group.positions[k]];
    if (latest[RecordId(item)] != k) continue;
    JsonObject row;
    if (item.action != Action::kDelete) {
      row = bigquery::EncodeRecord(item.data, schema, Encoding::kQuery);
    }
    row[kIdColumn] = RecordId(item);
    row[kRevisionColumn] = static_cast<std::int64_t>(item.revision);
    row[kChangedAtColumn] = bigquery::FormatTimestampMillis(item.timestamp_ms);
    if (item.action == Action::kDelete) row[kDeletedField] = true;
    rows.push_back(ToJson(row));
    positions.push_back(group.positions[k]);
  }
  if (!rows.empty()) {
    MergeRows(group, positions, rows, deadline, results);
  }
  for (std::size_t k = 0; k < group.positions.size(); ++k) {
    if (!plan.usable[k]) continue;
    std::size_t last = latest[RecordId(group.batch[group.positions[k]])];
    if (last != k) results[group.positions[k]] = results[group.positions[last]];
  }
}

std::optional<std::vector<Field>> BigqueryDriver::CachedSchema(const std::string& table_key) {
  std::lock_guard lock(mutex_);
  auto found = tables_.find(table_key);
  if (found == tables_.end()) return std::nullopt;
  return found->second;
}

void BigqueryDriver::CacheSchema(const std::string& table_key, std::vector<Field> schema) {
  std::lock_guard lock(mutex_);
  tables_[table_key] = std::move(schema);
}

void BigqueryDriver::ForgetTable(const std::string& table_key) {
  std::lock_guard lock(mutex_);
  tables_.erase(table_key);
}

std::optional<DeliveryResult> BigqueryDriver::EnsureTable(
    TableGroup& group, const std::vector<Field>& create_fields, const std::vector<Field>& wanted,
    Deadline deadline, std::vector<Field>& schema, std::vector<std::string>& refused) {
  std::string path = TablePath(options_.project_id, group);
  std::optional<std::vector<Field>> cached = CachedSchema(group.key);
  if (cached) {
    schema = std::move(*cached);
  } else {
    auto reply = api_->Send("GET", path, "", "", deadline);
    if (!reply) return ClassifyError(reply.error(), "bigquery: reading table " + group.display);
    if (reply->status == 404) {
      if (!options_.create_tables) {
        return DeliveryResult::Permanent(
            "table_not_found", "bigquery: table " + group.display +
                                   " does not exist and "
                                   "createTables is false; create it or set createTables");
      }
      JsonObject table;
      JsonObject reference;
      reference["projectId"] = options_.project_id;
      reference["datasetId"] = group.dataset;
      reference["tableId"] = group.table;
      table["tableReference"] = std::move(reference);
      JsonObject table_schema;
      table_schema["fields"] = bigquery::FieldsToJson(create_fields);
      table["schema"] = std::move(table_schema);
      if (options_.time_partitioning) table["timePartitioning"] = *options_.time_partitioning;
      if (!options_.clustering.empty()) {
        JsonArray fields;
        for (const std::string& field : options_.clustering) fields.emplace_back(field);
        JsonObject clustering;
        clustering["fields"] = std::move(fields);
        table["clustering"] = std::move(clustering);
      }
      std::string create_path = "/bigquery/v2/projects/" +
                                bigquery::EncodeSegment(options_.project_id) + "/datasets/" +
                                bigquery::EncodeSegment(group.dataset) + "/tables";
      auto created = api_->Send("POST", create_path, ToJson(table), "application/json", deadline);
      if (!created) {
        return ClassifyError(created.error(), "bigquery: creating table " + group.display);
      }
      if (created->status == 409) {
        reply = api_->Send("GET", path, "", "", deadline);
        if (!reply) return ClassifyError(reply.error(), "bigquery: reading table " + group.display);
      } else if (created->status == 404) {
        return DeliveryResult::Permanent("dataset_not_found",
                                         "bigquery: creating table " + group.display + ": " +
                                             created->Describe() + "; create the dataset first");
      } else if (!created->ok()) {
        return ClassifyReply(*created, "bigquery: creating table " + group.display);
      } else {
        {
          std::lock_guard lock(mutex_);
          ++stats_.tables_created;
        }
        Log(1, "created table " + group.display + " with " + std::to_string(create_fields.size()) +
                   " columns");
        reply = std::move(created);
      }
    }
    if (!reply->ok()) return ClassifyReply(*reply, "bigquery: reading table " + group.display);
    auto fields = SchemaOf(reply->body);
    if (!fields) {
      return DeliveryResult::Retryable("bigquery: table " + group.display + ": " +
                                       fields.error().message);
    }
    schema = std::move(*fields);
    CacheSchema(group.key, schema);
  }

  if (options_.ignore_unknown_values) return std::nullopt;
  // Two tries: a refused patch may come from a stale cached schema (another writer added
  // columns); the second try starts from the table as the service has it now.
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::vector<Field> merged = schema;
    std::vector<std::string> added = bigquery::MergeFields(merged, wanted);
    if (added.empty()) return std::nullopt;

    JsonObject patch;
    JsonObject patch_schema;
    patch_schema["fields"] = bigquery::FieldsToJson(merged);
    patch["schema"] = std::move(patch_schema);
    auto reply = api_->Send("PATCH", path, ToJson(patch), "application/json", deadline);
    std::string names;
    for (const std::string& name : added) names += (names.empty() ? "" : ", ") + name;
    if (!reply) {
      return ClassifyError(reply.error(), "bigquery: adding columns to " + group.display);
    }
    if (reply->status == 404) {
      ForgetTable(group.key);
      return DeliveryResult::Retryable("bigquery: table " + group.display +
                                       " disappeared; it is created again on the next attempt");
    }
    if (reply->status == 400 && attempt == 0) {
      auto fresh = api_->Send("GET", path, "", "", deadline);
      if (!fresh) return ClassifyError(fresh.error(), "bigquery: reading table " + group.display);
      if (!fresh->ok()) return ClassifyReply(*fresh, "bigquery: reading table " + group.display);
      auto fields = SchemaOf(fresh->body);
      if (!fields) {
        return DeliveryResult::Retryable("bigquery: table " + group.display + ": " +
                                         fields.error().message);
      }
      schema = std::move(*fields);
      CacheSchema(group.key, schema);
      continue;
    }
    if (reply->status == 400) {
      Log(2, "adding columns " + names + " to " + group.display + " failed: " + reply->Describe());
      refused = added;
      return std::nullopt;
    }
    if (!reply->ok()) {
      if (reply->status == 412 || reply->status == 409) ForgetTable(group.key);
      return ClassifyReply(*reply, "bigquery: adding columns to " + group.display);
    }
    auto fields = SchemaOf(reply->body);
    schema = fields && !fields->empty() ? std::move(*fields) : std::move(merged);
    CacheSchema(group.key, schema);
    {
      std::lock_guard lock(mutex_);
      ++stats_.tables_patched;
      patched_at_[group.key] = std::chrono::steady_clock::now();
    }
    Log(1, "added columns " + names + " to " + group.display);
    return std::nullopt;
  }
  return std::nullopt;
}

bool BigqueryDriver::RecentlyPatched(const std::string& table_key) const {
  std::lock_guard lock(mutex_);
  auto found = patched_at_.find(table_key);
  return found != patched_at_.end() &&
         std::chrono::steady_clock::now() - found->second < kSchemaPropagation;
}

void BigqueryDriver::StreamRows(TableGroup& group, const std::vector<std::size_t>& positions,
                                const std::vector<std::string>& rows, Deadline deadline,
                                std::vector<DeliveryResult>& results) {
  std::string prefix =
      std::string("{\"kind\":\"bigquery#tableDataInsertAllRequest\",") +
      "\"skipInvalidRows\":" + (options_.skip_invalid_rows ? "true" : "false") +
      ",\"ignoreUnknownValues\":" + (options_.ignore_unknown_values ? "true" : "false") +
      ",\"rows\":[";
  const std::string suffix = "]}";
  const std::size_t overhead = prefix.size() + suffix.size();
  std::string path = TablePath(options_.project_id, group) + "/insertAll";
  std::string what = "bigquery: insertAll into " + group.display;

  std::size_t begin = 0;
  std::optional<DeliveryResult> stop;  // set when the target refuses the credentials
  while (begin < rows.size()) {
    if (overhead + rows[begin].size() > options_.max_request_bytes) {
      results[positions[begin]] = DeliveryResult::Permanent(
          "payload_too_large",
          what + ": the row of change " + group.batch[positions[begin]].change_id + " needs " +
              std::to_string(overhead + rows[begin].size()) +
              " bytes, more than the request "
              "limit of " +
              std::to_string(options_.max_request_bytes) + " (maxRequestBytes)");
      ++begin;
      continue;
    }
    std::size_t end = begin;
    std::size_t bytes = overhead;
    while (end < rows.size() && end - begin < options_.max_rows_per_request) {
      std::size_t next = bytes + rows[end].size() + (end > begin ? 1 : 0);
      if (next > options_.max_request_bytes) break;
      bytes = next;
      ++end;
    }
    if (stop) {
      SetAll(results, positions, begin, end, *stop);
      begin = end;
      continue;
    }

    std::string body;
    body.reserve(bytes);
    body += prefix;
    for (std::size_t i = begin; i < end; ++i) {
      if (i > begin) body += ',';
      body += rows[i];
    }
    body += suffix;
    {
      std::lock_guard lock(mutex_);
      ++stats_.insert_requests;
      stats_.rows_sent += end - begin;
    }
    auto reply = api_->Send("POST", path, std::move(body), "application/json", deadline);
    if (!reply) {
      DeliveryResult failure = ClassifyError(reply.error(), what);
      if (failure.outcome == Outcome::kUnauthorized) stop = failure;
      SetAll(results, positions, begin, end, failure);
    } else if (reply->ok()) {
      SetAll(results, positions, begin, end, DeliveryResult::Delivered());
      const JsonObject* object = reply->body.if_object();
      const Json* errors = object ? object->if_contains("insertErrors") : nullptr;
      if (errors != nullptr && errors->is_array()) {
        for (const Json& entry : errors->get_array()) {
          const JsonObject* row_error = entry.if_object();
          const Json* index = row_error ? row_error->if_contains("index") : nullptr;
          const Json* list = row_error ? row_error->if_contains("errors") : nullptr;
          if (index == nullptr || !index->is_number() || list == nullptr || !list->is_array()) {
            continue;
          }
          auto at = static_cast<std::size_t>(index->to_number<double>());
          if (at >= end - begin) continue;
          DeliveryResult row = RowErrorResult(list->get_array(), what);
          // Streaming sees new columns only some time after a schema update: until then
          // "no such field" is not the row's fault.
          if (row.outcome == Outcome::kPermanent &&
              row.error.find("no such field") != std::string::npos && RecentlyPatched(group.key)) {
            row = DeliveryResult::Retryable(row.error +
                                            " (the table's schema was just "
                                            "updated; streaming may not see it yet)");
          }
          results[positions[begin + at]] = std::move(row);
        }
      }
    } else if (reply->status == 404) {
      ForgetTable(group.key);
      SetAll(results, positions, begin, end,
             DeliveryResult::Retryable(what + ": " + reply->Describe() +
                                       "; the table is created again on the next attempt"));
    } else {
      DeliveryResult failure = ClassifyReply(*reply, what);
      if (failure.outcome == Outcome::kUnauthorized) stop = failure;
      if (failure.outcome != Outcome::kDelivered) {
        Log(2, failure.error + " (" + std::to_string(end - begin) + " rows)");
      }
      SetAll(results, positions, begin, end, failure);
    }
    begin = end;
  }
}

void BigqueryDriver::LoadRows(TableGroup& group, const std::vector<std::size_t>& positions,
                              const std::vector<std::string>& rows, Deadline deadline,
                              std::vector<DeliveryResult>& results) {
  std::string what = "bigquery: load job into " + group.display;
  const std::size_t overhead = 2048;  // multipart headers and the job configuration
  const std::string location = JobLocation(group.dataset, deadline);
  std::size_t begin = 0;
  while (begin < rows.size()) {
    if (overhead + rows[begin].size() + 1 > options_.max_request_bytes) {
      results[positions[begin]] = DeliveryResult::Permanent(
          "payload_too_large",
          what + ": the row of change " + group.batch[positions[begin]].change_id + " needs " +
              std::to_string(rows[begin].size()) + " bytes, more than maxRequestBytes allows");
      ++begin;
      continue;
    }
    std::size_t end = begin;
    std::size_t bytes = overhead;
    while (end < rows.size() && end - begin < options_.max_rows_per_request &&
           bytes + rows[end].size() + 1 <= options_.max_request_bytes) {
      bytes += rows[end].size() + 1;
      ++end;
    }

    // The data and the offset of each row in it (load errors name rows by byte offset).
    std::string data;
    data.reserve(bytes);
    std::vector<std::size_t> offsets;
    std::vector<std::size_t> chunk(positions.begin() + begin, positions.begin() + end);
    for (std::size_t i = begin; i < end; ++i) {
      offsets.push_back(data.size());
      data += rows[i];
      data += '\n';
    }
    std::string base_id = "s3db_" + Hash(context_.replicator_id + "\n" + group.key + "\n" +
                                         JoinIds(group, positions, begin, end))
                                        .substr(0, 40);

    // Bisects a failed load that does not say which rows were invalid.
    auto bisect = [&](const DeliveryResult& failure) {
      if (chunk.size() <= 1) {
        SetAll(results, chunk, 0, chunk.size(), failure);
        return;
      }
      std::size_t half = (end - begin) / 2;
      std::vector<std::size_t> left(positions.begin() + begin, positions.begin() + begin + half);
      std::vector<std::string> left_rows(rows.begin() + begin, rows.begin() + begin + half);
      std::vector<std::size_t> right(positions.begin() + begin + half, positions.begin() + end);
      std::vector<std::string> right_rows(rows.begin() + begin + half, rows.begin() + end);
      LoadRows(group, left, left_rows, deadline, results);
      LoadRows(group, right, right_rows, deadline, results);
    };

    SetAll(results, chunk, 0, chunk.size(),
           DeliveryResult::Retryable(what +
                                     ": every job id of these changes was used by a "
                                     "failed job (" +
                                     base_id + "_*)"));
    for (int attempt = 0; attempt < kMaxJobIdAttempts; ++attempt) {
      std::string job_id = attempt == 0 ? base_id : base_id + "_" + std::to_string(attempt);
      JsonObject load;
      JsonObject destination;
      destination["projectId"] = options_.project_id;
      destination["datasetId"] = group.dataset;
      destination["tableId"] = group.table;
      load["destinationTable"] = std::move(destination);
      load["sourceFormat"] = "NEWLINE_DELIMITED_JSON";
      load["writeDisposition"] = "WRITE_APPEND";
      load["createDisposition"] = "CREATE_NEVER";
      load["ignoreUnknownValues"] = options_.ignore_unknown_values;
      load["maxBadRecords"] =
          options_.skip_invalid_rows ? static_cast<std::int64_t>(end - begin) : 0;
      JsonObject configuration;
      configuration["load"] = std::move(load);
      JsonObject reference;
      reference["projectId"] = options_.project_id;
      reference["jobId"] = job_id;
      if (!location.empty()) reference["location"] = location;
      JsonObject job;
      job["jobReference"] = std::move(reference);
      job["configuration"] = std::move(configuration);

      std::string boundary = "s3db_" + Hash(data).substr(0, 32);
      std::string body;
      body.reserve(data.size() + 1024);
      body += "--" + boundary + "\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n";
      body += ToJson(job);
      body += "\r\n--" + boundary + "\r\nContent-Type: application/octet-stream\r\n\r\n";
      body += data;
      body += "\r\n--" + boundary + "--\r\n";
      {
        std::lock_guard lock(mutex_);
        ++stats_.load_jobs;
        stats_.rows_sent += end - begin;
      }
      std::string upload = "/upload" + JobsPath(options_.project_id) + "?uploadType=multipart";
      auto reply = api_->Send("POST", upload, std::move(body),
                              "multipart/related; boundary=" + boundary, deadline);
      if (!reply) {
        SetAll(results, chunk, 0, chunk.size(), ClassifyError(reply.error(), what));
        break;
      }
      bool existing = false;
      Json current;
      std::string job_path = WithLocation(
          JobsPath(options_.project_id) + "/" + bigquery::EncodeSegment(job_id), location);
      if (reply->status == 404 && IsLocationMismatch(reply->message)) {
        SetAll(results, chunk, 0, chunk.size(),
               LocationMismatch(what + ": " + reply->Describe(), location));
        break;
      }
      if (reply->status == 409) {
        // A job with this id ran before (an earlier attempt of the same changes).
        existing = true;
        auto fetched = api_->Send("GET", job_path, "", "", deadline);
        if (!fetched) {
          SetAll(results, chunk, 0, chunk.size(), ClassifyError(fetched.error(), what));
          break;
        }
        if (!fetched->ok()) {
          SetAll(results, chunk, 0, chunk.size(), ClassifyReply(*fetched, what));
          break;
        }
        current = std::move(fetched->body);
      } else if (reply->status == 404) {
        ForgetTable(group.key);
        SetAll(results, chunk, 0, chunk.size(),
               DeliveryResult::Retryable(what + ": " + reply->Describe()));
        break;
      } else if (!reply->ok()) {
        SetAll(results, chunk, 0, chunk.size(), ClassifyReply(*reply, what));
        break;
      } else {
        current = std::move(reply->body);
        // Poll where the service says the job is (it may have chosen the location).
        std::string job_location = StringAt(ObjectAt(current, "jobReference"), "location");
        if (!job_location.empty()) {
          job_path = WithLocation(
              JobsPath(options_.project_id) + "/" + bigquery::EncodeSegment(job_id), job_location);
        }
      }

      // Polls until the job is done or the deadline comes.
      std::chrono::milliseconds interval = options_.job_poll_interval;
      bool failed_poll = false;
      while (JobState(current) != "DONE") {
        std::chrono::milliseconds remaining = bigquery::Remaining(deadline);
        if (remaining <= interval || stopping_) {
          SetAll(results, chunk, 0, chunk.size(),
                 DeliveryResult::Retryable(what + ": job " + job_id + " is still " +
                                           JobState(current) +
                                           "; it is checked again on the "
                                           "next attempt"));
          failed_poll = true;
          break;
        }
        std::this_thread::sleep_for(interval);
        interval = std::min(interval * 2, kMaxPollInterval);
        auto fetched = api_->Send("GET", job_path, "", "", deadline);
        if (!fetched) {
          SetAll(results, chunk, 0, chunk.size(), ClassifyError(fetched.error(), what));
          failed_poll = true;
          break;
        }
        if (!fetched->ok()) {
          SetAll(results, chunk, 0, chunk.size(), ClassifyReply(*fetched, what));
          failed_poll = true;
          break;
        }
        current = std::move(fetched->body);
      }
      if (failed_poll) break;

      // Which rows the job names as invalid.
      std::map<std::size_t, std::string> invalid_rows;
      if (const JsonObject* status = ObjectAt(current, "status")) {
        const Json* errors = status->if_contains("errors");
        if (errors != nullptr && errors->is_array()) {
          for (const Json& entry : errors->get_array()) {
            std::string message = StringAt(entry.if_object(), "message");
            if (auto row = RowOfPosition(message, offsets)) invalid_rows.emplace(*row, message);
          }
        }
      }
      const JsonObject* error = JobErrorResult(current);
      std::string reason = StringAt(error, "reason");
      std::string message = StringAt(error, "message");
      std::string described = what + ": job " + job_id + " failed (" + reason + "): " + message;
      // An earlier attempt's job that failed says nothing about now: load again, new job id.
      if (error != nullptr && existing) continue;
      if (error != nullptr && IsRetryableJobReason(reason)) {
        SetAll(results, chunk, 0, chunk.size(), DeliveryResult::Retryable(described));
        break;
      }
      if (error != nullptr && reason == "accessDenied") {
        SetAll(results, chunk, 0, chunk.size(), DeliveryResult::Unauthorized(described));
        break;
      }
      if (error != nullptr && IsLocationMismatch(message)) {
        SetAll(results, chunk, 0, chunk.size(), LocationMismatch(described, location));
        break;
      }
      if (error != nullptr && reason == "notFound") {
        ForgetTable(group.key);
        SetAll(results, chunk, 0, chunk.size(), DeliveryResult::Retryable(described));
        break;
      }
      if (error != nullptr && invalid_rows.empty()) {
        if (reason == "invalid" || reason == "invalidQuery") {
          bisect(DeliveryResult::Permanent(reason, described));
        } else {
          SetAll(results, chunk, 0, chunk.size(),
                 DeliveryResult::Permanent(reason.empty() ? "load_failed" : reason, described));
        }
        break;
      }
      // Done: attributed rows are invalid; the others were loaded, or, when the job failed,
      // were not loaded only because of those rows.
      DeliveryResult others = error == nullptr
                                  ? DeliveryResult::Delivered()
                                  : DeliveryResult::Retryable(what + ": job " + job_id +
                                                              " loaded nothing because "
                                                              "other rows were invalid");
      SetAll(results, chunk, 0, chunk.size(), others);
      for (const auto& [row, row_message] : invalid_rows) {
        results[chunk[row]] =
            DeliveryResult::Permanent("invalid", what + ": row refused (invalid): " + row_message);
      }
      break;
    }
    begin = end;
  }
}

void BigqueryDriver::MergeRows(TableGroup& group, const std::vector<std::size_t>& positions,
                               const std::vector<std::string>& rows, Deadline deadline,
                               std::vector<DeliveryResult>& results) {
  std::string what = "bigquery: MERGE into " + group.display;
  const std::string location = JobLocation(group.dataset, deadline);
  std::vector<Field> schema = CachedSchema(group.key).value_or(std::vector<Field>{});
  std::string sql = BuildMergeSql(group.sql_name, schema);
  const std::size_t overhead = sql.size() + 1024;

  std::size_t begin = 0;
  while (begin < rows.size()) {
    if (overhead + rows[begin].size() > options_.max_request_bytes) {
      results[positions[begin]] = DeliveryResult::Permanent(
          "payload_too_large", what + ": the record of change " +
                                   group.batch[positions[begin]].change_id +
                                   " is larger than maxRequestBytes allows");
      ++begin;
      continue;
    }
    std::size_t end = begin;
    std::size_t bytes = overhead;
    while (end < rows.size() && end - begin < options_.max_rows_per_request &&
           bytes + rows[end].size() + 1 <= options_.max_request_bytes) {
      bytes += rows[end].size() + 1;
      ++end;
    }
    std::vector<std::size_t> chunk(positions.begin() + begin, positions.begin() + end);
    std::string parameter = "[";
    for (std::size_t i = begin; i < end; ++i) {
      if (i > begin) parameter += ',';
      parameter += rows[i];
    }
    parameter += ']';

    JsonObject request;
    request["query"] = sql;
    request["useLegacySql"] = false;
    request["parameterMode"] = "NAMED";
    JsonObject type;
    type["type"] = "STRING";
    JsonObject value;
    value["value"] = parameter;
    JsonObject rows_parameter;
    rows_parameter["name"] = "rows";
    rows_parameter["parameterType"] = std::move(type);
    rows_parameter["parameterValue"] = std::move(value);
    JsonArray parameters;
    parameters.push_back(std::move(rows_parameter));
    request["queryParameters"] = std::move(parameters);
    if (!location.empty()) request["location"] = location;
    auto wait = std::clamp<std::int64_t>(bigquery::Remaining(deadline).count(), 1, 10000);
    // No requestId: the statement is idempotent (guarded by _rev), and a cached failure
    // would be handed back to every retry within the id's window.
    request["timeoutMs"] = wait;
    {
      std::lock_guard lock(mutex_);
      ++stats_.queries;
      stats_.rows_sent += end - begin;
    }
    auto reply = api_->Send(
        "POST",
        "/bigquery/v2/projects/" + bigquery::EncodeSegment(options_.project_id) + "/queries",
        ToJson(request), "application/json", deadline);

    auto bisect = [&](const DeliveryResult& failure) {
      if (chunk.size() <= 1) {
        SetAll(results, chunk, 0, chunk.size(), failure);
        return;
      }
      std::size_t half = (end - begin) / 2;
      std::vector<std::size_t> left(positions.begin() + begin, positions.begin() + begin + half);
      std::vector<std::string> left_rows(rows.begin() + begin, rows.begin() + begin + half);
      std::vector<std::size_t> right(positions.begin() + begin + half, positions.begin() + end);
      std::vector<std::string> right_rows(rows.begin() + begin + half, rows.begin() + end);
      MergeRows(group, left, left_rows, deadline, results);
      MergeRows(group, right, right_rows, deadline, results);
    };

    if (!reply) {
      SetAll(results, chunk, 0, chunk.size(), ClassifyError(reply.error(), what));
    } else if (reply->status == 400 &&
               (reply->reason == "invalidQuery" || reply->reason == "invalid")) {
      bisect(DeliveryResult::Permanent(reply->reason, what + ": " + reply->Describe()));
    } else if (reply->status == 404 && IsLocationMismatch(reply->message)) {
      SetAll(results, chunk, 0, chunk.size(),
             LocationMismatch(what + ": " + reply->Describe(), location));
    } else if (reply->status == 404) {
      ForgetTable(group.key);
      SetAll(results, chunk, 0, chunk.size(),
             DeliveryResult::Retryable(what + ": " + reply->Describe()));
    } else if (!reply->ok()) {
      SetAll(results, chunk, 0, chunk.size(), ClassifyReply(*reply, what));
    } else {
      Json current = std::move(reply->body);
      const JsonObject* object = current.if_object();
      const Json* complete = object ? object->if_contains("jobComplete") : nullptr;
      bool done = complete != nullptr && complete->is_bool() && complete->get_bool();
      std::optional<DeliveryResult> outcome;
      if (!done) {
        const JsonObject* job_reference = ObjectAt(current, "jobReference");
        std::string job_id = StringAt(job_reference, "jobId");
        std::string job_location = StringAt(job_reference, "location");
        if (job_location.empty()) job_location = location;
        std::string job_path = WithLocation(
            JobsPath(options_.project_id) + "/" + bigquery::EncodeSegment(job_id), job_location);
        std::chrono::milliseconds interval = options_.job_poll_interval;
        while (!outcome) {
          if (job_id.empty()) {
            outcome = DeliveryResult::Retryable(what + ": the query reply has no job id");
            break;
          }
          if (bigquery::Remaining(deadline) <= interval || stopping_) {
            // The statement may still apply; repeating it is harmless (guarded by _rev).
            outcome = DeliveryResult::Retryable(what + ": job " + job_id + " is still running");
            break;
          }
          std::this_thread::sleep_for(interval);
          interval = std::min(interval * 2, kMaxPollInterval);
          auto fetched = api_->Send("GET", job_path, "", "", deadline);
          if (!fetched) {
            outcome = ClassifyError(fetched.error(), what);
          } else if (!fetched->ok()) {
            outcome = ClassifyReply(*fetched, what);
          } else if (JobState(fetched->body) == "DONE") {
            current = std::move(fetched->body);
            break;
          }
        }
      }
      if (!outcome) {
        const JsonObject* error = JobErrorResult(current);
        if (error == nullptr) {
          outcome = DeliveryResult::Delivered();
        } else {
          std::string reason = StringAt(error, "reason");
          std::string described = what + ": " + reason + ": " + StringAt(error, "message");
          if (IsLocationMismatch(described)) {
            SetAll(results, chunk, 0, chunk.size(), LocationMismatch(described, location));
            begin = end;
            continue;
          }
          if (reason == "invalidQuery" || reason == "invalid") {
            bisect(DeliveryResult::Permanent(reason, described));
            begin = end;
            continue;
          }
          outcome = IsRetryableJobReason(reason) || reason.empty()
                        ? DeliveryResult::Retryable(described)
                        : DeliveryResult::Permanent(reason, described);
        }
      }
      SetAll(results, chunk, 0, chunk.size(), *outcome);
    }
    begin = end;
  }
}

std::string BigqueryDriver::JobLocation(const std::string& dataset, Deadline deadline) {
  if (!options_.location.empty()) return options_.location;
  {
    std::lock_guard lock(mutex_);
    auto found = dataset_locations_.find(dataset);
    if (found != dataset_locations_.end()) return found->second;
  }
  auto reply = api_->Send("GET",
                          "/bigquery/v2/projects/" + bigquery::EncodeSegment(options_.project_id) +
                              "/datasets/" + bigquery::EncodeSegment(dataset),
                          "", "", deadline);
  if (!reply || !reply->ok()) return "";  // the job's own errors will say what is wrong
  std::string location = StringAt(reply->body.if_object(), "location");
  if (!location.empty()) {
    std::lock_guard lock(mutex_);
    dataset_locations_[dataset] = location;
  }
  return location;
}

void BigqueryDriver::ApplyRetryBudget(std::vector<DeliveryResult>& results,
                                      std::span<const DeliveryItem> batch) {
  auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(mutex_);
  bool any_delivered = std::any_of(results.begin(), results.end(), [](const DeliveryResult& r) {
    return r.outcome == Outcome::kDelivered;
  });
  if (any_delivered) last_success_ = now;
  if (!options_.max_retries) return;
  if (retries_.size() > kRetryStateLimit) retries_.clear();
  for (std::size_t i = 0; i < results.size(); ++i) {
    DeliveryResult& result = results[i];
    const std::string& id = batch[i].change_id;
    if (result.outcome == Outcome::kDelivered || result.outcome == Outcome::kPermanent) {
      retries_.erase(id);
      continue;
    }
    if (result.outcome != Outcome::kRetryable || result.pause_replicator) continue;
    RetryState& state = retries_[id];
    if (state.attempts == 0) state.first_failure = now;
    ++state.attempts;
    bool target_up = last_success_ != std::chrono::steady_clock::time_point{} &&
                     last_success_ >= state.first_failure;
    if (state.attempts > *options_.max_retries && target_up) {
      std::string error = result.error;
      result = DeliveryResult::Permanent(
          "max_retries", "bigquery: gave up after " + std::to_string(state.attempts) +
                             " failed attempts (driver maxRetries " +
                             std::to_string(*options_.max_retries) + "): " + error);
      retries_.erase(id);
    }
  }
}

Status CheckDatasets(const BigqueryOptions& options, const DriverContext& context) {
  if (!options.dataset_id.empty()) return Ok();
  std::string missing;
  if (context.every_resource || context.destinations.empty()) {
    missing = "the replicator takes every resource, each to a table of its own name";
  } else {
    for (const auto& destination : context.destinations) {
      if (DestinationTable(destination.target, &destination.options).dataset.empty()) {
        missing = "destination '" + destination.target + "' (of resource '" + destination.source +
                  "') names no dataset";
        break;
      }
    }
  }
  if (missing.empty()) return Ok();
  return tl::unexpected(Invalid(
      "datasetId", "is required: " + missing +
                       "; set datasetId to the dataset that holds the tables (create one with "
                       "`bq mk --dataset " +
                       options.project_id +
                       ":DATASET`), or name every destination \"dataset.table\" or give it "
                       "a \"dataset\""));
}

void RegisterBigqueryDriver() {
  RegisterDriver("bigquery",
                 [](const JsonObject& config,
                    const DriverContext& context) -> Result<std::unique_ptr<Driver>> {
                   S3DB_ASSIGN_OR_RETURN(BigqueryOptions options, ParseBigqueryOptions(config));
                   S3DB_RETURN_IF_ERROR(CheckDatasets(options, context));
                   return std::unique_ptr<Driver>(new BigqueryDriver(std::move(options), context));
                 });
}

}  // namespace s3db::replicator
