#include "drivers/source_attributes.h"
#include "drivers/postgresql/postgresql_driver.h"

#include <libpq-fe.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <optional>
#include <unordered_map>
#include <vector>

#include "drivers/postgresql/postgresql_connection.h"
#include "drivers/postgresql/postgresql_redact.h"
#include "s3db/schema.h"

namespace s3db::replicator {
namespace postgresql {

// One upsert: the latest write of a record in the batch.
struct Upsert {
  std::string_view id;
  std::size_t item = 0;
  std::uint64_t revision = 0;
  std::unique_ptr<JsonObject> cleaned;  // a copy without NUL characters (strip policy)
  // The record's fields without "id" and the revision column, pointing into the batch or
  // into `cleaned`.
  std::vector<std::pair<std::string_view, const Json*>> fields;
  // Encoded for the table's columns, sorted by column name; nullopt is SQL NULL.
  std::vector<std::pair<std::string, std::optional<std::string>>> columns;
};

// Every change of one record in the batch, applied as one: an optional delete (a final delete,
// or a delete before a re-insert), then an optional upsert.
struct Chain {
  std::string_view id;
  std::vector<std::size_t> items;  // batch positions
  std::optional<std::uint64_t> delete_revision;
  std::optional<Upsert> upsert;
  std::optional<DeliveryResult> failure;  // set when the chain must not be (or was not) written

  bool writable() const { return !failure; }
};

struct TablePlan {
  std::string schema;
  std::string table;
  std::vector<Chain> chains;
  // Source resources whose definitions describe the records (those without a transform: a
  // transformed record need not match its source's attributes), in order of appearance.
  std::vector<std::string> sources;
};

// Resource definitions, parsed once per batch.
class DefinitionCache {
 public:
  explicit DefinitionCache(const DriverContext& context) : context_(context) {}

  // The attributes of `resource`, or nullptr when the resource has no known definition.
  const std::vector<Attribute>* Attributes(std::string_view resource) {
    auto found = cache_.find(resource);
    if (found == cache_.end()) found = cache_.emplace(std::string(resource), Load(resource)).first;
    return found->second ? &*found->second : nullptr;
  }

  const Attribute* Find(std::string_view resource, std::string_view field) {
    const std::vector<Attribute>* attributes = Attributes(resource);
    if (attributes == nullptr) return nullptr;
    for (const Attribute& attribute : *attributes) {
      if (attribute.name == field) return &attribute;
    }
    return nullptr;
  }

 private:
  std::optional<std::vector<Attribute>> Load(std::string_view resource) const {
    return LoadSourceAttributes(context_, resource);
  }

  const DriverContext& context_;
  std::map<std::string, std::optional<std::vector<Attribute>>, std::less<>> cache_;
};

namespace {

constexpr std::string_view kTombstoneTable = "_s3db_tombstones";
constexpr std::string_view kIdColumn = "id";
constexpr std::chrono::milliseconds kDefaultTimeout{30000};

// A name for messages: itself when printable, else only its size.
std::string Printable(std::string_view name) {
  bool printable = name.size() <= 100 && IsValidUtf8(name) &&
                   std::none_of(name.begin(), name.end(),
                                [](char c) { return static_cast<unsigned char>(c) < 0x20; });
  if (printable) return "'" + std::string(name) + "'";
  return "(a name of " + std::to_string(name.size()) + " bytes)";
}

std::string Describe(const TablePlan& plan) { return QualifiedName(plan.schema, plan.table); }

std::string WithState(const Failure& failure) {
  std::string text = failure.message;
  if (!failure.sqlstate.empty()) text += " (SQLSTATE " + failure.sqlstate + ")";
  if (!failure.column.empty()) text += " in column " + Printable(failure.column);
  return text;
}

// The answer for a failure that concerns the whole batch: never permanent, because a data
// error is only ever blamed on the change that caused it.
DeliveryResult BatchResult(const Failure& failure, std::string_view context) {
  std::string message = "postgresql: " + std::string(context) + ": " + WithState(failure);
  switch (failure.kind) {
    case FailureKind::kAuthentication:
    case FailureKind::kConfiguration:
      return DeliveryResult::Unauthorized(std::move(message));
    case FailureKind::kConnection:
    case FailureKind::kTimeout:
      return DeliveryResult::Unreachable(std::move(message));
    case FailureKind::kServer:
      break;
  }
  if (ClassifySqlState(failure.sqlstate) == SqlStateClass::kUnauthorized) {
    return DeliveryResult::Unauthorized(message +
                                        "; grant the connecting role the privileges "
                                        "it needs (see docs/drivers/postgresql.md)");
  }
  return DeliveryResult::Retryable(std::move(message));
}

// The answer for a failure of one change or one table: data errors are permanent.
DeliveryResult ChangeResult(const Failure& failure, std::string_view context) {
  if (failure.kind != FailureKind::kServer ||
      ClassifySqlState(failure.sqlstate) != SqlStateClass::kData) {
    return BatchResult(failure, context);
  }
  std::string reason =
      failure.sqlstate.substr(0, 2) == "23" ? "constraint_violation" : "schema_mismatch";
  return DeliveryResult::Permanent(
      std::move(reason), "postgresql: " + std::string(context) + ": " + WithState(failure));
}

std::string CatalogSql() {
  return "SELECT a.attname, t.typname, format_type(a.atttypid, a.atttypmod), "
         "format_type(a.atttypid, NULL), a.atttypmod, "
         "EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisunique "
         "AND i.indnkeyatts = 1 AND i.indkey[0] = a.attnum AND i.indpred IS NULL "
         "AND i.indexprs IS NULL) "
         "FROM pg_class c "
         "JOIN pg_namespace n ON n.oid = c.relnamespace "
         "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
         "JOIN pg_type t ON t.oid = a.atttypid "
         "WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p') "
         "ORDER BY a.attnum";
}

bool LooksLikeInstant(std::string_view text) {
  if (text.size() <= 16 || !IsIsoTimestamp(text)) return false;
  char last = text.back();
  return last == 'Z' || last == 'z' || text.find_last_of("+-") > 10;
}

// COPY text format: backslash escapes for the characters that frame rows and fields.
void AppendCopyField(std::string& out, const std::optional<std::string>& value) {
  if (!value) {
    out += "\\N";
    return;
  }
  for (char c : *value) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        out += c;
    }
  }
}

struct UpsertGroup {
  std::vector<std::string> columns;  // sorted
  std::vector<const Upsert*> rows;
};

bool SameColumns(const UpsertGroup& group, const Upsert& row) {
  if (group.columns.size() != row.columns.size()) return false;
  for (std::size_t c = 0; c < row.columns.size(); ++c) {
    if (group.columns[c] != row.columns[c].first) return false;
  }
  return true;
}

// Groups rows by their (sorted) column lists. Records of one resource mostly share one list,
// so each row is first compared with the group of the row before it.
std::vector<UpsertGroup> GroupUpserts(const std::vector<const Chain*>& chains) {
  std::vector<UpsertGroup> groups;
  std::size_t last = 0;
  for (const Chain* chain : chains) {
    if (!chain->upsert) continue;
    const Upsert& row = *chain->upsert;
    if (groups.empty() || !SameColumns(groups[last], row)) {
      auto found = std::find_if(groups.begin(), groups.end(),
                                [&](const UpsertGroup& group) { return SameColumns(group, row); });
      if (found == groups.end()) {
        UpsertGroup group;
        for (const auto& column : row.columns) group.columns.push_back(column.first);
        groups.push_back(std::move(group));
        found = groups.end() - 1;
      }
      last = static_cast<std::size_t>(found - groups.begin());
    }
    groups[last].rows.push_back(&row);
  }
  return groups;
}

Statement Sql(std::string sql) { return Statement{std::move(sql), {}}; }

// Builds the statements that apply a list of chains to one table.
class StatementBuilder {
 public:
  StatementBuilder(const PostgresqlOptions& options, const TablePlan& plan,
                   const std::map<std::string, ColumnType, std::less<>>& columns, bool exists)
      : options_(options), plan_(plan), columns_(columns), table_exists_(exists) {}

  // DELETE of the rows and the tombstones, for every chain that deletes.
  void AppendDeletes(const std::vector<const Chain*>& chains, std::vector<Statement>& out) const {
    BinaryArray ids(BinaryArray::Element::kText);
    BinaryArray revisions(BinaryArray::Element::kBigint);
    std::size_t count = 0;
    for (const Chain* chain : chains) {
      if (!chain->delete_revision) continue;
      ids.Add(chain->id);
      revisions.Add(static_cast<std::int64_t>(*chain->delete_revision));
      ++count;
    }
    if (count == 0) return;
    std::string id_list = std::move(ids).Finish();
    std::string revision_list = std::move(revisions).Finish();
    std::string revision = QuoteIdentifier(options_.revision_column);
    if (table_exists_) {
      out.push_back(
          Statement{"DELETE FROM " + QualifiedName(plan_.schema, plan_.table) +
                        " AS t USING unnest($1::text[], $2::bigint[]) AS d(k_id, k_rev) WHERE t." +
                        QuoteIdentifier(kIdColumn) + " = " + IdCast("d.k_id") + " AND (t." +
                        revision + " IS NULL OR t." + revision + " < d.k_rev)",
                    {id_list, revision_list},
                    {1, 1}});
    }
    if (options_.tombstones) {
      out.push_back(Statement{"INSERT INTO " + TombstoneTable() +
                                  " AS x (table_name, id, rev) SELECT $3, d.k_id, d.k_rev FROM "
                                  "unnest($1::text[], $2::bigint[]) AS d(k_id, k_rev) "
                                  "ON CONFLICT (table_name, id) DO UPDATE SET rev = EXCLUDED.rev, "
                                  "deleted_at = now() WHERE x.rev < EXCLUDED.rev",
                              {std::move(id_list), std::move(revision_list), plan_.table},
                              {1, 1, 0}});
    }
  }

  // One INSERT … ON CONFLICT per group of rows carrying the same columns, reading its rows
  // from unnest() of array parameters.
  void AppendUpserts(const std::vector<UpsertGroup>& groups, std::vector<Statement>& out) const {
    for (const UpsertGroup& group : groups) {
      std::vector<std::string> params;
      BinaryArray ids(BinaryArray::Element::kText);
      BinaryArray revisions(BinaryArray::Element::kBigint);
      std::vector<BinaryArray> values(group.columns.size(),
                                      BinaryArray(BinaryArray::Element::kText));
      for (const Upsert* row : group.rows) {
        ids.Add(row->id);
        revisions.Add(static_cast<std::int64_t>(row->revision));
        for (std::size_t c = 0; c < row->columns.size(); ++c) {
          if (row->columns[c].second) {
            values[c].Add(*row->columns[c].second);
          } else {
            values[c].AddNull();
          }
        }
      }
      params.push_back(std::move(ids).Finish());
      params.push_back(std::move(revisions).Finish());
      std::string from = "unnest($1::text[], $2::bigint[]";
      std::string names = "k_id, k_rev";
      for (std::size_t c = 0; c < values.size(); ++c) {
        params.push_back(std::move(values[c]).Finish());
        from += ", $" + std::to_string(c + 3) + "::text[]";
        names += ", k" + std::to_string(c);
      }
      from += ") AS u(" + names + ")";
      out.push_back(UpsertFrom(group.columns, from, std::move(params)));
      out.back().formats.assign(out.back().params.size(), 1);
      if (options_.tombstones) out.back().formats.back() = 0;  // the table name
    }
  }

  // The INSERT … SELECT … ON CONFLICT statement reading rows from `from` (which names its
  // columns k_id, k_rev, k0, k1…).
  Statement UpsertFrom(const std::vector<std::string>& columns, const std::string& from,
                       std::vector<std::string> params) const {
    std::string revision = QuoteIdentifier(options_.revision_column);
    std::string insert = "INSERT INTO " + QualifiedName(plan_.schema, plan_.table) + " AS t (" +
                         QuoteIdentifier(kIdColumn) + ", " + revision;
    std::string select = " SELECT " + IdCast("u.k_id") + ", u.k_rev";
    std::string update = " ON CONFLICT (" + QuoteIdentifier(kIdColumn) + ") DO UPDATE SET " +
                         revision + " = EXCLUDED." + revision;
    for (std::size_t c = 0; c < columns.size(); ++c) {
      std::string column = QuoteIdentifier(columns[c]);
      insert += ", " + column;
      select += ", " + CastExpression("u.k" + std::to_string(c), columns_.at(columns[c]));
      update += ", " + column + " = EXCLUDED." + column;
    }
    std::string sql = insert + ")" + select + " FROM " + from;
    if (options_.tombstones) {
      params.push_back(plan_.table);
      sql += " WHERE NOT EXISTS (SELECT 1 FROM " + TombstoneTable() + " d WHERE d.table_name = $" +
             std::to_string(params.size()) + " AND d.id = u.k_id AND d.rev >= u.k_rev)";
    }
    sql +=
        update + " WHERE t." + revision + " IS NULL OR t." + revision + " < EXCLUDED." + revision;
    return Statement{std::move(sql), std::move(params)};
  }

 private:
  std::string IdCast(const std::string& operand) const {
    auto id = columns_.find(kIdColumn);
    if (id == columns_.end()) return operand;
    return CastExpression(operand, id->second);
  }
  std::string TombstoneTable() const { return QualifiedName(plan_.schema, kTombstoneTable); }

  const PostgresqlOptions& options_;
  const TablePlan& plan_;
  const std::map<std::string, ColumnType, std::less<>>& columns_;
  bool table_exists_;
};

}  // namespace
}  // namespace postgresql

namespace postgresql {
namespace {

bool IsCreationRace(std::string_view sqlstate) {
  // Two writers creating the same table, schema or column at once.
  return sqlstate == "23505" || sqlstate == "42P07" || sqlstate == "42P06" || sqlstate == "42701";
}

TableInfo ParseCatalog(const QueryResult& result) {
  TableInfo info;
  info.exists = result.rows() > 0;
  for (int row = 0; row < result.rows(); ++row) {
    std::string name(result.Get(row, 0));
    int modifier = std::atoi(std::string(result.Get(row, 4)).c_str());
    info.columns[name] =
        ColumnTypeFromCatalog(result.Get(row, 1), result.Get(row, 2), result.Get(row, 3), modifier);
    if (name == kIdColumn && result.Get(row, 5) == "t") info.id_unique = true;
  }
  return info;
}

// The type for a new column: the attribute's when a definition names the field, else the
// narrowest kind that holds every value of the batch; nullopt when every value is null.
std::optional<ColumnType> ColumnTypeForField(const TablePlan& plan, std::string_view name,
                                             DefinitionCache& definitions, bool exact_numbers) {
  for (const std::string& source : plan.sources) {
    const Attribute* attribute = definitions.Find(source, name);
    if (attribute == nullptr) continue;
    if (auto type = ColumnTypeForAttribute(*attribute, exact_numbers)) return type;
    break;  // type any: the values decide
  }
  std::optional<ColumnKind> kind;
  bool all_instants = true;
  for (const Chain& chain : plan.chains) {
    if (!chain.writable() || !chain.upsert) continue;
    for (const auto& [field, value] : chain.upsert->fields) {
      if (field != name || value->is_null()) continue;
      ColumnKind seen = *InferColumnKind(*value);
      kind = kind ? WidenInferredKind(*kind, seen) : seen;
      all_instants = all_instants && value->is_string() && LooksLikeInstant(value->get_string());
    }
  }
  if (!kind) return std::nullopt;
  if (*kind == ColumnKind::kText && all_instants) return MakeColumnType(ColumnKind::kTimestamptz);
  return MakeColumnType(*kind);
}

// Checks names and values of the latest write of a record; fills `upsert`. Returns the
// permanent failure when the change can never be stored.
std::optional<DeliveryResult> PrepareUpsert(const DeliveryItem& item, std::size_t position,
                                            const PostgresqlOptions& options, Upsert& upsert,
                                            std::uint64_t& stripped) {
  upsert.id = item.id;
  upsert.item = position;
  upsert.revision = item.revision;
  auto skipped = [&](std::string_view key) {
    return key == kIdColumn || key == options.revision_column;
  };
  bool needs_strip = false;
  for (const auto& member : item.data) {
    if (skipped(member.key())) continue;
    if (auto problem = IdentifierProblem(member.key())) {
      return DeliveryResult::Permanent(
          "invalid_identifier", "postgresql: field " + Printable(member.key()) + ": " + *problem);
    }
    ValueCheck check = CheckValue(member.value(), options.nul_policy);
    if (check.problem) {
      return DeliveryResult::Permanent(
          "invalid_value", "postgresql: field " + Printable(member.key()) + ": " + *check.problem);
    }
    needs_strip = needs_strip || check.has_nul;
  }
  const JsonObject* data = &item.data;
  if (needs_strip) {
    upsert.cleaned = std::make_unique<JsonObject>(item.data);
    for (auto& member : *upsert.cleaned) stripped += StripNul(member.value());
    data = upsert.cleaned.get();
  }
  for (const auto& member : *data) {
    if (!skipped(member.key())) upsert.fields.emplace_back(member.key(), &member.value());
  }
  return std::nullopt;
}

std::vector<const Chain*> WritableChains(const TablePlan& plan) {
  std::vector<const Chain*> chains;
  for (const Chain& chain : plan.chains) {
    if (chain.writable() && (chain.upsert || chain.delete_revision)) chains.push_back(&chain);
  }
  return chains;
}

// libpq's PQconninfoParse checks only the syntax of a connection string; the values are read
// when connecting, so "port=abc" would only show at the first connection, as a replicator
// paused for good. These are the values libpq itself refuses, checked at start-up. Returns
// what is wrong, or nullopt.
std::optional<std::string> ConninfoValueProblem(const PQconninfoOption* options) {
  auto value_of = [&](std::string_view keyword) -> std::optional<std::string> {
    for (const PQconninfoOption* option = options; option->keyword != nullptr; ++option) {
      if (keyword == option->keyword && option->val != nullptr) return std::string(option->val);
    }
    return std::nullopt;
  };
  auto split = [](const std::string& list) {
    std::vector<std::string> parts;
    std::size_t start = 0;
    while (true) {
      std::size_t comma = list.find(',', start);
      parts.push_back(list.substr(start, comma - start));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    return parts;
  };
  auto is_integer = [](const std::string& text, long min, long max) {
    std::string trimmed = text;
    while (!trimmed.empty() && trimmed.front() == ' ') trimmed.erase(trimmed.begin());
    while (!trimmed.empty() && trimmed.back() == ' ') trimmed.pop_back();
    if (trimmed.empty() || trimmed.size() > 10) return false;
    std::size_t digits = trimmed.front() == '-' ? 1 : 0;
    if (digits == trimmed.size()) return false;
    for (std::size_t i = digits; i < trimmed.size(); ++i) {
      if (trimmed[i] < '0' || trimmed[i] > '9') return false;
    }
    long number = std::stol(trimmed);
    return number >= min && number <= max;
  };
  if (auto port = value_of("port"); port && !port->empty()) {
    std::vector<std::string> ports = split(*port);
    for (const std::string& one : ports) {
      if (!one.empty() && !is_integer(one, 1, 65535)) {
        return "invalid port number \"" + one + "\" (a whole number from 1 to 65535)";
      }
    }
    std::size_t hosts = 1;
    if (auto host = value_of("host"); host && !host->empty()) hosts = split(*host).size();
    if (auto address = value_of("hostaddr"); address && !address->empty()) {
      hosts = split(*address).size();
    }
    if (ports.size() > 1 && ports.size() != hosts) {
      return "could not match " + std::to_string(ports.size()) + " port numbers to " +
             std::to_string(hosts) + " hosts (give one port, or one per host)";
    }
  }
  for (std::string_view keyword : {"connect_timeout", "keepalives", "keepalives_idle",
                                   "keepalives_interval", "keepalives_count", "tcp_user_timeout"}) {
    auto value = value_of(keyword);
    if (value && !value->empty() && !is_integer(*value, INT32_MIN, INT32_MAX)) {
      return "invalid integer value \"" + *value + "\" for connection option \"" +
             std::string(keyword) + "\"";
    }
  }
  struct Choice {
    std::string_view keyword;
    std::vector<std::string_view> allowed;
  };
  const Choice choices[] = {
      {"sslmode", {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}},
      {"gssencmode", {"disable", "prefer", "require"}},
      {"channel_binding", {"disable", "prefer", "require"}},
      {"target_session_attrs",
       {"any", "read-write", "read-only", "primary", "standby", "prefer-standby"}},
  };
  for (const Choice& choice : choices) {
    auto value = value_of(choice.keyword);
    if (!value || value->empty()) continue;
    if (std::find(choice.allowed.begin(), choice.allowed.end(), *value) != choice.allowed.end()) {
      continue;
    }
    std::string list;
    for (std::string_view allowed : choice.allowed) {
      list += (list.empty() ? "" : ", ") + std::string(allowed);
    }
    return "invalid " + std::string(choice.keyword) + " value \"" + *value + "\" (one of " + list +
           ")";
  }
  for (std::string_view keyword : {"sslrootcert", "sslcert", "sslkey", "sslcrl"}) {
    auto value = value_of(keyword);
    if (!value || value->empty() || *value == "system") continue;
    std::FILE* file = std::fopen(value->c_str(), "rb");
    if (file == nullptr) {
      return std::string(keyword) + " file \"" + *value + "\" cannot be read: " +
             std::strerror(errno);
    }
    std::fclose(file);
  }
  return std::nullopt;
}

}  // namespace
}  // namespace postgresql

using postgresql::Chain;
using postgresql::ClassifySqlState;
using postgresql::Clock;
using postgresql::ColumnType;
using postgresql::Connection;
using postgresql::FailureKind;
using postgresql::IdentifierProblem;
using postgresql::kDefaultTimeout;
using postgresql::kIdColumn;
using postgresql::Printable;
using postgresql::QualifiedName;
using postgresql::QuoteIdentifier;
using postgresql::SqlStateClass;
using postgresql::Statement;
using postgresql::StatementBuilder;

Result<PostgresqlOptions> ParsePostgresqlOptions(const JsonObject& config) {
  PostgresqlOptions options;
  auto invalid = [](std::string_view option, std::string_view fix) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "postgresql: config." + std::string(option) + ": " + std::string(fix));
  };
  auto string_of = [](const Json& value) -> std::optional<std::string> {
    if (!value.is_string()) return std::nullopt;
    return std::string(value.get_string());
  };
  for (const auto& member : config) {
    std::string_view key = member.key();
    const Json& value = member.value();
    if (key == "connectionString") {
      auto text = string_of(value);
      if (!text || text->empty()) {
        return invalid(key, "must be a non-empty string (postgresql://user:password@host/db)");
      }
      char* parse_error = nullptr;
      PQconninfoOption* parsed = PQconninfoParse(text->c_str(), &parse_error);
      if (parsed == nullptr) {
        std::string reason = parse_error != nullptr ? parse_error : "cannot be parsed";
        if (parse_error != nullptr) PQfreemem(parse_error);
        while (!reason.empty() && reason.back() == '\n') reason.pop_back();
        reason = postgresql::ScrubSecrets(reason, postgresql::ConnectionSecrets(*text));
        return invalid(key, reason + " in " + postgresql::RedactConnectionString(*text) +
                                "; use a libpq URI (postgresql://user:password@host:5432/db)"
                                " or key=value pairs");
      }
      std::optional<std::string> problem = postgresql::ConninfoValueProblem(parsed);
      PQconninfoFree(parsed);
      if (problem) {
        *problem = postgresql::ScrubSecrets(*problem, postgresql::ConnectionSecrets(*text));
        return invalid(key, *problem + " in " + postgresql::RedactConnectionString(*text));
      }
      options.connection_string = std::move(*text);
    } else if (key == "schema" || key == "revisionColumn") {
      auto text = string_of(value);
      if (!text) return invalid(key, "must be a string");
      if (auto problem = IdentifierProblem(*text)) return invalid(key, *problem);
      if (key == "revisionColumn" && *text == kIdColumn) {
        return invalid(key, "cannot be \"id\", the key column");
      }
      (key == "schema" ? options.schema : options.revision_column) = std::move(*text);
    } else if (key == "nulCharacters") {
      auto text = string_of(value);
      if (text == "reject") {
        options.nul_policy = postgresql::NulPolicy::kReject;
      } else if (text == "strip") {
        options.nul_policy = postgresql::NulPolicy::kStrip;
      } else {
        return invalid(key, "must be \"reject\" or \"strip\"");
      }
    } else if (key == "exactNumbers" || key == "tombstones") {
      if (!value.is_bool()) return invalid(key, "must be true or false");
      (key == "exactNumbers" ? options.exact_numbers : options.tombstones) = value.get_bool();
    } else if (key == "attributeColumns") {
      auto text = string_of(value);
      if (text != "all" && text != "present") return invalid(key, "must be \"all\" or \"present\"");
      options.create_all_attribute_columns = text == "all";
    } else if (key == "writeMode") {
      auto text = string_of(value);
      if (text != "unnest" && text != "copy") return invalid(key, "must be \"unnest\" or \"copy\"");
      options.write_mode =
          text == "copy" ? PostgresqlWriteMode::kCopy : PostgresqlWriteMode::kUnnest;
    } else if (key == "connectTimeoutMs") {
      if (!value.is_int64() && !value.is_uint64()) return invalid(key, "must be an integer");
      std::int64_t milliseconds = value.is_int64() ? value.get_int64() : INT64_MAX;
      if (milliseconds <= 0 || milliseconds > 3600000) {
        return invalid(key, "must be between 1 and 3600000");
      }
      options.connect_timeout = std::chrono::milliseconds(milliseconds);
    } else {
      return invalid(key,
                     "unknown option; the postgresql driver knows connectionString, "
                     "schema, revisionColumn, nulCharacters, exactNumbers, tombstones, "
                     "attributeColumns, writeMode and connectTimeoutMs");
    }
  }
  if (options.connection_string.empty()) {
    return invalid("connectionString",
                   "is required: a libpq URI "
                   "(postgresql://user:password@host:5432/db) or key=value "
                   "string");
  }
  return options;
}

PostgresqlDriver::PostgresqlDriver(PostgresqlOptions options, DriverContext context)
    : options_(std::move(options)),
      context_(std::move(context)),
      redacted_connection_string_(postgresql::RedactConnectionString(options_.connection_string)),
      secrets_(postgresql::RegisteredConnectionSecrets(options_.connection_string)) {}

PostgresqlDriver::~PostgresqlDriver() = default;

tl::expected<void, postgresql::Failure> PostgresqlDriver::Connect(Deadline deadline) {
  if (connection_ && connection_->usable()) return {};
  connection_.reset();
  Deadline limit = std::min(deadline, Clock::now() + options_.connect_timeout);
  auto opened = Connection::Open(options_.connection_string, secrets_, limit);
  if (!opened) return tl::unexpected(opened.error());
  connection_ = std::move(*opened);
  connection_fresh_ = true;
  if (default_schema_.empty()) default_schema_ = connection_->current_schema();
  std::lock_guard stats_lock(stats_mutex_);
  ++stats_.connections_opened;
  return {};
}

DeliveryResult PostgresqlDriver::ConnectFailureResult(const Failure& failure) const {
  std::string where = "postgresql: " + redacted_connection_string_ + ": " + failure.message;
  switch (failure.kind) {
    case FailureKind::kAuthentication:
      return DeliveryResult::Unauthorized(
          where +
          " (the server refused the login: fix the user or password in "
          "config.connectionString, or the server's pg_hba.conf)");
    case FailureKind::kConfiguration:
      return DeliveryResult::Unauthorized(where + " (fix config.connectionString)");
    case FailureKind::kConnection:
    case FailureKind::kTimeout:
      return DeliveryResult::Unreachable("postgresql: cannot connect to " +
                                         redacted_connection_string_ + ": " + failure.message);
    case FailureKind::kServer:
      break;
  }
  return postgresql::BatchResult(failure, "setting up the session");
}

Status PostgresqlDriver::Start() {
  std::lock_guard lock(mutex_);
  Deadline deadline = Clock::now() + options_.connect_timeout + kDefaultTimeout;
  auto error_code = [](const DeliveryResult& result) {
    switch (result.outcome) {
      case Outcome::kUnauthorized:
        return ErrorCode::kUnauthorized;
      case Outcome::kPermanent:
        return ErrorCode::kInvalidArgument;
      default:
        return ErrorCode::kUnavailable;
    }
  };
  if (auto connected = Connect(deadline); !connected) {
    DeliveryResult result = ConnectFailureResult(connected.error());
    ErrorCode code = connected.error().kind == FailureKind::kConfiguration
                         ? ErrorCode::kInvalidArgument
                         : error_code(result);
    return MakeError(code, result.error);
  }
  std::string schema = options_.schema.empty() ? default_schema_ : options_.schema;
  if (schema.empty()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "postgresql: the server has no current schema (check search_path); set "
                     "config.schema");
  }
  if (auto failure = EnsureSchema(schema, deadline)) {
    return MakeError(error_code(*failure), failure->error);
  }
  spdlog::info("postgresql [{}]: connected to {} (server {}), schema {}", context_.replicator_id,
               redacted_connection_string_, connection_->server_version(), Printable(schema));
  return Ok();
}

void PostgresqlDriver::Stop() {
  std::lock_guard lock(mutex_);
  connection_.reset();
}

PostgresqlDriver::Stats PostgresqlDriver::stats() const {
  std::lock_guard lock(stats_mutex_);
  return stats_;
}

std::map<std::string, std::uint64_t> PostgresqlDriver::Counters() const {
  Stats stats = this->stats();
  return {{"batches", stats.batches},
          {"rows_upserted", stats.rows_upserted},
          {"rows_deleted", stats.rows_deleted},
          {"changes_collapsed", stats.changes_collapsed},
          {"nul_characters_stripped", stats.nul_characters_stripped},
          {"row_by_row_fallbacks", stats.row_by_row_fallbacks},
          {"connections_opened", stats.connections_opened},
          {"columns_added", stats.columns_added},
          {"tables_created", stats.tables_created}};
}

std::optional<DeliveryResult> PostgresqlDriver::EnsureSchema(const std::string& schema,
                                                             Deadline deadline) {
  if (ready_schemas_.count(schema) != 0) return std::nullopt;
  std::string context = "schema " + Printable(schema);
  // Probe first: CREATE … IF NOT EXISTS checks privileges before existence.
  auto probe = connection_->Execute(
      Statement{"SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1), "
                "to_regclass(format('%I.%I', $1::text, $2::text)) IS NOT NULL",
                {schema, std::string(postgresql::kTombstoneTable)}},
      deadline);
  if (!probe) return postgresql::BatchResult(probe.error(), "reading " + context);
  bool schema_exists = probe->Get(0, 0) == "t";
  bool tombstones_exist = probe->Get(0, 1) == "t";

  std::vector<Statement> ddl;
  if (!schema_exists) {
    ddl.push_back(postgresql::Sql("CREATE SCHEMA IF NOT EXISTS " + QuoteIdentifier(schema)));
  }
  if (options_.tombstones && !tombstones_exist) {
    ddl.push_back(postgresql::Sql(
        "CREATE TABLE IF NOT EXISTS " + QualifiedName(schema, postgresql::kTombstoneTable) +
        " (table_name text NOT NULL, id text NOT NULL, rev bigint NOT NULL, "
        "deleted_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (table_name, id))"));
  }
  for (int attempt = 0; !ddl.empty(); ++attempt) {
    auto done = connection_->Pipeline(ddl, deadline);
    if (done) break;
    if (attempt == 0 && postgresql::IsCreationRace(done.error().failure.sqlstate)) continue;
    return postgresql::BatchResult(done.error().failure, "creating " + context);
  }
  ready_schemas_.insert(schema);
  return std::nullopt;
}

std::vector<PostgresqlDriver::TablePlan> PostgresqlDriver::PlanBatch(
    std::span<const DeliveryItem> batch, std::vector<DeliveryResult>& results) {
  std::vector<TablePlan> plans;
  std::map<TableKey, std::size_t> plan_of;
  std::vector<std::unordered_map<std::string_view, std::size_t>> chain_of;

  for (std::size_t i = 0; i < batch.size(); ++i) {
    const DeliveryItem& item = batch[i];
    std::string table = item.target;
    std::string schema = options_.schema.empty() ? default_schema_ : options_.schema;
    bool transformed = false;
    if (item.destination_options != nullptr) {
      const Json* value = item.destination_options->if_contains("table");
      if (value != nullptr && value->is_string()) table = value->get_string();
      value = item.destination_options->if_contains("schema");
      if (value != nullptr && value->is_string()) schema = value->get_string();
      value = item.destination_options->if_contains("hasTransform");
      transformed = value != nullptr && value->is_bool() && value->get_bool();
    }
    if (auto problem = IdentifierProblem(table)) {
      results[i] = DeliveryResult::Permanent(
          "invalid_identifier", "postgresql: table name " + Printable(table) + ": " + *problem);
      continue;
    }
    if (table == postgresql::kTombstoneTable) {
      results[i] = DeliveryResult::Permanent(
          "invalid_identifier", "postgresql: the table name _s3db_tombstones is reserved");
      continue;
    }
    if (schema.empty()) {
      results[i] = DeliveryResult::Permanent(
          "invalid_identifier",
          "postgresql: the server has no current schema (check search_path); set config.schema");
      continue;
    }
    if (auto problem = IdentifierProblem(schema)) {
      results[i] = DeliveryResult::Permanent(
          "invalid_identifier", "postgresql: schema name " + Printable(schema) + ": " + *problem);
      continue;
    }
    if (item.id.empty() || !IsValidUtf8(item.id) || item.id.find('\0') != std::string::npos) {
      results[i] = DeliveryResult::Permanent(
          "invalid_value", "postgresql: the record id is empty, invalid UTF-8 or holds a NUL");
      continue;
    }
    if (item.revision > static_cast<std::uint64_t>(INT64_MAX)) {
      results[i] = DeliveryResult::Permanent("invalid_value",
                                             "postgresql: the revision does not fit a bigint");
      continue;
    }
    auto [plan_entry, new_plan] = plan_of.emplace(TableKey{schema, table}, plans.size());
    if (new_plan) {
      plans.push_back(TablePlan{schema, table, {}, {}});
      chain_of.emplace_back();
    }
    TablePlan& plan = plans[plan_entry->second];
    if (!transformed && std::find(plan.sources.begin(), plan.sources.end(), item.source_resource) ==
                            plan.sources.end()) {
      plan.sources.push_back(item.source_resource);
    }
    auto [chain_entry, new_chain] =
        chain_of[plan_entry->second].emplace(item.id, plan.chains.size());
    if (new_chain) {
      plan.chains.emplace_back();
      plan.chains.back().id = item.id;
    }
    plan.chains[chain_entry->second].items.push_back(i);
  }

  std::uint64_t collapsed = 0;
  std::uint64_t stripped = 0;
  for (TablePlan& plan : plans) {
    for (Chain& chain : plan.chains) {
      std::stable_sort(chain.items.begin(), chain.items.end(), [&](std::size_t a, std::size_t b) {
        return batch[a].revision < batch[b].revision;
      });
      collapsed += chain.items.size() - 1;
      const DeliveryItem& last = batch[chain.items.back()];
      if (last.action == Action::kDelete) {
        chain.delete_revision = last.revision;
        continue;
      }
      // A delete before the final write: delete first, so that fields the new record lacks
      // do not survive from the old row.
      for (std::size_t position : chain.items) {
        const DeliveryItem& earlier = batch[position];
        if (earlier.action == Action::kDelete && earlier.revision < last.revision) {
          chain.delete_revision = std::max(chain.delete_revision.value_or(0), earlier.revision);
        }
      }
      chain.upsert.emplace();
      chain.failure =
          postgresql::PrepareUpsert(last, chain.items.back(), options_, *chain.upsert, stripped);
    }
  }
  std::lock_guard stats_lock(stats_mutex_);
  stats_.changes_collapsed += collapsed;
  stats_.nul_characters_stripped += stripped;
  return plans;
}

tl::expected<PostgresqlDriver::TableInfo, postgresql::Failure> PostgresqlDriver::LoadTable(
    const TableKey& key, Deadline deadline) {
  auto loaded =
      connection_->Execute(Statement{postgresql::CatalogSql(), {key.first, key.second}}, deadline);
  if (!loaded) return tl::unexpected(loaded.error());
  return postgresql::ParseCatalog(*loaded);
}

std::optional<DeliveryResult> PostgresqlDriver::EnsureTable(TablePlan& plan,
                                                            DefinitionCache& definitions,
                                                            Deadline deadline, bool& whole_batch) {
  whole_batch = false;
  std::string context = "table " + postgresql::Describe(plan);
  if (auto failure = EnsureSchema(plan.schema, deadline)) {
    whole_batch = failure->outcome != Outcome::kPermanent;
    return failure;
  }
  TableKey key{plan.schema, plan.table};
  auto cached = tables_.find(key);
  // A table seen missing is looked up again: someone may have created it since, and a delete
  // must not skip a row that exists.
  if (cached == tables_.end() || !cached->second.exists) {
    auto loaded = LoadTable(key, deadline);
    if (!loaded) {
      whole_batch = true;
      return postgresql::BatchResult(loaded.error(), "reading " + context);
    }
    cached = tables_.insert_or_assign(key, std::move(*loaded)).first;
  }
  TableInfo& info = cached->second;

  bool has_upserts = std::any_of(plan.chains.begin(), plan.chains.end(), [](const Chain& chain) {
    return chain.writable() && chain.upsert;
  });
  if (!has_upserts && !info.exists) return std::nullopt;  // only deletes: tombstones suffice

  // The columns the batch needs that the table lacks.
  std::vector<std::pair<std::string, ColumnType>> missing;
  std::set<std::string, std::less<>> planned;
  auto need = [&](std::string_view name) {
    if (info.columns.count(name) != 0 || planned.count(name) != 0) return;
    auto type = postgresql::ColumnTypeForField(plan, name, definitions, options_.exact_numbers);
    if (!type) return;
    planned.emplace(name);
    missing.emplace_back(std::string(name), std::move(*type));
  };
  if (has_upserts && !info.exists && options_.create_all_attribute_columns) {
    for (const std::string& source : plan.sources) {
      const std::vector<Attribute>* attributes = definitions.Attributes(source);
      if (attributes == nullptr) continue;
      for (const Attribute& attribute : *attributes) {
        if (attribute.name == postgresql::kIdColumn || attribute.name == options_.revision_column ||
            IdentifierProblem(attribute.name)) {
          continue;
        }
        need(attribute.name);
      }
    }
  }
  for (const Chain& chain : plan.chains) {
    if (!chain.writable() || !chain.upsert) continue;
    for (const auto& field : chain.upsert->fields) need(field.first);
  }
  bool add_revision = info.exists && info.columns.count(options_.revision_column) == 0;

  if (!info.exists || !missing.empty() || add_revision) {
    std::string table = QualifiedName(plan.schema, plan.table);
    std::string revision = QuoteIdentifier(options_.revision_column);
    std::vector<Statement> ddl;
    if (!info.exists) {
      ddl.push_back(postgresql::Sql("CREATE TABLE IF NOT EXISTS " + table + " (" +
                                    QuoteIdentifier(postgresql::kIdColumn) + " text PRIMARY KEY, " +
                                    revision + " bigint NOT NULL)"));
    }
    if (add_revision) {
      ddl.push_back(postgresql::Sql("ALTER TABLE " + table + " ADD COLUMN IF NOT EXISTS " +
                                    revision + " bigint"));
    }
    if (!missing.empty()) {
      std::string alter = "ALTER TABLE " + table;
      for (std::size_t i = 0; i < missing.size(); ++i) {
        alter += std::string(i == 0 ? "" : ",") + " ADD COLUMN IF NOT EXISTS " +
                 QuoteIdentifier(missing[i].first) + " " + missing[i].second.sql_name;
      }
      ddl.push_back(postgresql::Sql(std::move(alter)));
    }
    ddl.push_back(Statement{postgresql::CatalogSql(), {plan.schema, plan.table}});

    for (int attempt = 0;; ++attempt) {
      auto done = connection_->Pipeline(ddl, deadline);
      if (done) {
        bool created = !info.exists;
        info = postgresql::ParseCatalog(done->back());
        spdlog::info("postgresql [{}]: {} {} ({} new columns)", context_.replicator_id,
                     created ? "created" : "widened", context, missing.size());
        std::lock_guard stats_lock(stats_mutex_);
        stats_.tables_created += created ? 1 : 0;
        stats_.columns_added += missing.size();
        break;
      }
      const Failure& failure = done.error().failure;
      if (attempt == 0 && postgresql::IsCreationRace(failure.sqlstate)) continue;
      DeliveryResult result = postgresql::ChangeResult(failure, "changing " + context);
      whole_batch = result.outcome != Outcome::kPermanent;
      tables_.erase(key);
      return result;
    }
  }

  if (!info.exists) {
    return DeliveryResult::Permanent("schema_mismatch",
                                     "postgresql: " + context +
                                         " is not a table (a view or "
                                         "another kind of relation has that name)");
  }
  if (info.columns.count(postgresql::kIdColumn) == 0 || !info.id_unique) {
    return DeliveryResult::Permanent(
        "schema_mismatch", "postgresql: " + context +
                               " needs an \"id\" column with a primary "
                               "key or unique index on it alone (ON CONFLICT (id) relies on it)");
  }
  return std::nullopt;
}

void PostgresqlDriver::EncodeRows(TablePlan& plan) {
  auto found = tables_.find(TableKey{plan.schema, plan.table});
  for (Chain& chain : plan.chains) {
    if (!chain.writable() || !chain.upsert) continue;
    if (found == tables_.end()) {
      chain.failure = DeliveryResult::Retryable("postgresql: table information missing");
      continue;
    }
    const TableInfo& info = found->second;
    postgresql::Upsert& upsert = *chain.upsert;
    upsert.columns.clear();
    for (const auto& [name, value] : upsert.fields) {
      auto column = info.columns.find(name);
      if (column == info.columns.end()) {
        if (value->is_null()) continue;  // an unknown column is null already
        chain.failure = DeliveryResult::Retryable("postgresql: column " + Printable(name) +
                                                  " is missing from " + postgresql::Describe(plan));
        break;
      }
      auto encoded = postgresql::EncodeValue(*value, column->second);
      if (!encoded) {
        chain.failure = DeliveryResult::Permanent(
            "schema_mismatch", "postgresql: " + postgresql::Describe(plan) + ", field " +
                                   Printable(name) + ": " + encoded.error());
        break;
      }
      upsert.columns.emplace_back(std::string(name), std::move(*encoded));
    }
    std::sort(upsert.columns.begin(), upsert.columns.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
  }
}

tl::expected<void, postgresql::Failure> PostgresqlDriver::WriteAll(std::vector<TablePlan>& plans,
                                                                   Deadline deadline) {
  std::vector<Statement> statements;
  statements.push_back(postgresql::Sql("BEGIN"));
  for (const TablePlan& plan : plans) {
    std::vector<const Chain*> chains = postgresql::WritableChains(plan);
    if (chains.empty()) continue;
    const TableInfo& info = tables_.at(TableKey{plan.schema, plan.table});
    StatementBuilder builder(options_, plan, info.columns, info.exists);
    builder.AppendDeletes(chains, statements);
    builder.AppendUpserts(postgresql::GroupUpserts(chains), statements);
  }
  if (statements.size() == 1) return {};
  statements.push_back(postgresql::Sql("COMMIT"));
  auto done = connection_->Pipeline(statements, deadline);
  if (!done) return tl::unexpected(std::move(done.error().failure));
  return {};
}

tl::expected<void, postgresql::Failure> PostgresqlDriver::WriteWithCopy(
    std::vector<TablePlan>& plans, Deadline deadline) {
  struct Staged {
    const TablePlan* plan;
    postgresql::UpsertGroup group;
    std::string stage;
  };
  std::vector<Statement> head;
  head.push_back(postgresql::Sql("BEGIN"));
  std::vector<Staged> staged;
  std::map<std::size_t, int> stages_of_width;
  for (const TablePlan& plan : plans) {
    std::vector<const Chain*> chains = postgresql::WritableChains(plan);
    if (chains.empty()) continue;
    const TableInfo& info = tables_.at(TableKey{plan.schema, plan.table});
    StatementBuilder(options_, plan, info.columns, info.exists).AppendDeletes(chains, head);
    for (postgresql::UpsertGroup& group : postgresql::GroupUpserts(chains)) {
      std::size_t width = group.columns.size();
      std::string stage = "pg_temp.s3db_stage_" + std::to_string(width) + "_" +
                          std::to_string(stages_of_width[width]++);
      std::string columns = "k_id text, k_rev bigint";
      for (std::size_t c = 0; c < width; ++c) columns += ", k" + std::to_string(c) + " text";
      head.push_back(postgresql::Sql("CREATE TEMP TABLE IF NOT EXISTS " + stage + " (" + columns +
                                     ") ON COMMIT DELETE ROWS"));
      staged.push_back(Staged{&plan, std::move(group), std::move(stage)});
    }
  }
  if (head.size() == 1) return {};
  if (auto done = connection_->Pipeline(head, deadline); !done) {
    return tl::unexpected(std::move(done.error().failure));
  }
  for (const Staged& entry : staged) {
    std::string data;
    for (const postgresql::Upsert* row : entry.group.rows) {
      postgresql::AppendCopyField(data, std::string(row->id));
      data += '\t';
      data += std::to_string(row->revision);
      for (const auto& column : row->columns) {
        data += '\t';
        postgresql::AppendCopyField(data, column.second);
      }
      data += '\n';
    }
    if (auto copied = connection_->CopyIn("COPY " + entry.stage + " FROM STDIN", data, deadline);
        !copied) {
      return copied;
    }
    const TableInfo& info = tables_.at(TableKey{entry.plan->schema, entry.plan->table});
    StatementBuilder builder(options_, *entry.plan, info.columns, info.exists);
    auto inserted = connection_->Execute(
        builder.UpsertFrom(entry.group.columns, entry.stage + " AS u", {}), deadline);
    if (!inserted) return tl::unexpected(inserted.error());
  }
  auto committed = connection_->Execute(postgresql::Sql("COMMIT"), deadline);
  if (!committed) return tl::unexpected(committed.error());
  return {};
}

std::optional<DeliveryResult> PostgresqlDriver::WriteChangeByChange(std::vector<TablePlan>& plans,
                                                                    Deadline deadline) {
  {
    std::lock_guard stats_lock(stats_mutex_);
    ++stats_.row_by_row_fallbacks;
  }
  auto begun = connection_->Execute(postgresql::Sql("BEGIN"), deadline);
  if (!begun) return postgresql::BatchResult(begun.error(), "writing change by change");

  std::size_t refused = 0;
  for (TablePlan& plan : plans) {
    const TableInfo* info = nullptr;
    for (Chain& chain : plan.chains) {
      if (!chain.writable() || (!chain.upsert && !chain.delete_revision)) continue;
      if (info == nullptr) info = &tables_.at(TableKey{plan.schema, plan.table});
      std::vector<const Chain*> one{&chain};
      std::vector<Statement> statements;
      statements.push_back(postgresql::Sql("SAVEPOINT s3db_change"));
      StatementBuilder builder(options_, plan, info->columns, info->exists);
      builder.AppendDeletes(one, statements);
      builder.AppendUpserts(postgresql::GroupUpserts(one), statements);
      statements.push_back(postgresql::Sql("RELEASE SAVEPOINT s3db_change"));
      auto done = connection_->Pipeline(statements, deadline);
      if (done) continue;

      const Failure& failure = done.error().failure;
      bool data_error = failure.kind == FailureKind::kServer &&
                        ClassifySqlState(failure.sqlstate) == SqlStateClass::kData;
      if (!data_error) {
        DeliveryResult result = postgresql::BatchResult(failure, "writing change by change");
        RollbackIfNeeded(deadline);
        return result;
      }
      chain.failure = postgresql::ChangeResult(failure, postgresql::Describe(plan));
      ++refused;
      auto back =
          connection_->Execute(postgresql::Sql("ROLLBACK TO SAVEPOINT s3db_change"), deadline);
      if (!back) {
        RollbackIfNeeded(deadline);
        return postgresql::BatchResult(back.error(), "writing change by change");
      }
    }
  }
  auto committed = connection_->Execute(postgresql::Sql("COMMIT"), deadline);
  if (!committed) {
    RollbackIfNeeded(deadline);
    return postgresql::BatchResult(committed.error(), "committing change by change");
  }
  spdlog::warn(
      "postgresql [{}]: a batch hit a data error; wrote it change by change, {} "
      "change(s) refused",
      context_.replicator_id, refused);
  return std::nullopt;
}

void PostgresqlDriver::RollbackIfNeeded(Deadline deadline) {
  if (!connection_ || !connection_->usable() || !connection_->InTransaction()) return;
  // Past the deadline the connection is dropped instead, which rolls back just as well.
  if (!connection_->Execute(postgresql::Sql("ROLLBACK"), deadline)) connection_.reset();
}

void PostgresqlDriver::InvalidateTables(const std::vector<TablePlan>& plans) {
  for (const TablePlan& plan : plans) {
    tables_.erase(TableKey{plan.schema, plan.table});
    ready_schemas_.erase(plan.schema);
  }
}

std::vector<DeliveryResult> PostgresqlDriver::Deliver(std::span<const DeliveryItem> batch,
                                                      std::chrono::milliseconds timeout) {
  std::lock_guard lock(mutex_);
  std::vector<DeliveryResult> results(batch.size());
  if (batch.empty()) return results;
  Deadline deadline = Clock::now() + (timeout.count() > 0 ? timeout : kDefaultTimeout);
  connection_fresh_ = false;

  if (auto connected = Connect(deadline); !connected) {
    std::fill(results.begin(), results.end(), ConnectFailureResult(connected.error()));
    return results;
  }
  std::vector<TablePlan> plans = PlanBatch(batch, results);
  DefinitionCache definitions(context_);
  std::optional<DeliveryResult> batch_failure;

  for (int attempt = 0;; ++attempt) {
    for (TablePlan& plan : plans) {
      bool whole_batch = false;
      auto failure = EnsureTable(plan, definitions, deadline, whole_batch);
      if (!failure) continue;
      if (whole_batch) {
        batch_failure = std::move(failure);
        break;
      }
      for (Chain& chain : plan.chains) {
        if (chain.writable()) chain.failure = *failure;
      }
    }
    if (batch_failure) break;

    for (TablePlan& plan : plans) EncodeRows(plan);
    auto written = options_.write_mode == PostgresqlWriteMode::kCopy
                       ? WriteWithCopy(plans, deadline)
                       : WriteAll(plans, deadline);
    if (written) break;

    Failure failure = std::move(written.error());
    RollbackIfNeeded(deadline);
    SqlStateClass state = ClassifySqlState(failure.sqlstate);
    if (failure.kind == FailureKind::kConnection && !connection_fresh_ && attempt == 0 &&
        Clock::now() < deadline) {
      // The connection died while idle (server restart, idle timeout): one fresh try.
      spdlog::warn("postgresql [{}]: connection lost ({}); reconnecting", context_.replicator_id,
                   failure.message);
      connection_.reset();
      if (auto connected = Connect(deadline); !connected) {
        batch_failure = ConnectFailureResult(connected.error());
        break;
      }
      continue;
    }
    if (failure.kind == FailureKind::kServer && state == SqlStateClass::kData) {
      batch_failure = WriteChangeByChange(plans, deadline);
      break;
    }
    if (failure.kind == FailureKind::kServer && state == SqlStateClass::kSchemaChanged &&
        attempt == 0) {
      InvalidateTables(plans);  // someone changed the tables: read them again, once
      continue;
    }
    batch_failure = postgresql::BatchResult(failure, "writing the batch");
    break;
  }

  std::uint64_t upserted = 0;
  std::uint64_t deleted = 0;
  for (const TablePlan& plan : plans) {
    for (const Chain& chain : plan.chains) {
      const DeliveryResult& result =
          chain.failure ? *chain.failure : (batch_failure ? *batch_failure : DeliveryResult{});
      for (std::size_t position : chain.items) results[position] = result;
      if (!chain.failure && !batch_failure) {
        upserted += chain.upsert ? 1 : 0;
        deleted += chain.delete_revision ? 1 : 0;
      }
    }
  }
  std::lock_guard stats_lock(stats_mutex_);
  ++stats_.batches;
  stats_.rows_upserted += upserted;
  stats_.rows_deleted += deleted;
  return results;
}

void RegisterPostgresqlDriver() {
  DriverFactory factory = [](const JsonObject& config,
                             const DriverContext& context) -> Result<std::unique_ptr<Driver>> {
    S3DB_ASSIGN_OR_RETURN(PostgresqlOptions options, ParsePostgresqlOptions(config));
    return std::unique_ptr<Driver>(std::make_unique<PostgresqlDriver>(std::move(options), context));
  };
  RegisterDriver("postgresql", factory);
  RegisterDriver("postgres", factory);
}

}  // namespace s3db::replicator
