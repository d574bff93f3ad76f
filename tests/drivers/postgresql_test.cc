// The PostgreSQL driver: unit tests of its helpers, and integration tests against a real
// PostgreSQL server (S3DB_TEST_PG, e.g. postgresql://postgres@127.0.0.1:55432/testdb).
// The restart test starts a private PostgreSQL cluster of its own (initdb + pg_ctl from
// S3DB_TEST_PG_BIN, default /usr/lib/postgresql/15/bin, run as the postgres user), so that
// restarting it never cuts the connections of the tests that share the S3DB_TEST_PG server.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/json/parse.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "drivers/postgresql/postgresql_connection.h"
#include "drivers/postgresql/postgresql_driver.h"
#include "drivers/postgresql/postgresql_redact.h"
#include "drivers/postgresql/postgresql_types.h"
#include "s3db/database.h"
#include "s3db/replicator/replicator_plugin.h"
#include "s3db/storage.h"
#include "test_util.h"

namespace s3db::replicator {
namespace {

using namespace std::chrono_literals;
using postgresql::ColumnKind;
using postgresql::MakeColumnType;

// ---------------------------------------------------------------------------------------------
// Helpers without a server

JsonObject Object(std::string_view json) { return boost::json::parse(json).as_object(); }

TEST(PostgresqlRedactTest, HidesThePasswordOfAUri) {
  EXPECT_EQ(postgresql::RedactConnectionString("postgresql://app:s3cret@db.local:5432/shop"),
            "postgresql://app:***@db.local:5432/shop");
  EXPECT_EQ(postgresql::RedactConnectionString("postgres://app:p%40ss@h/db?sslmode=require"),
            "postgres://app:***@h/db?sslmode=require");
  EXPECT_EQ(postgresql::RedactConnectionString("postgresql://app@h/db"), "postgresql://app@h/db");
}

TEST(PostgresqlRedactTest, HidesPasswordsInUriQueryParameters) {
  EXPECT_EQ(postgresql::RedactConnectionString(
                "postgresql://h/db?user=u&password=topsecret&sslpassword=other&x=1"),
            "postgresql://h/db?user=u&password=***&sslpassword=***&x=1");
}

TEST(PostgresqlRedactTest, HidesPasswordsWithAtSignsAndQuestionMarks) {
  std::string redacted = postgresql::RedactConnectionString("postgresql://u:pa?s@s@host/db");
  EXPECT_EQ(redacted.find("pa?s"), std::string::npos) << redacted;
  EXPECT_NE(redacted.find("host/db"), std::string::npos) << redacted;
}

TEST(PostgresqlRedactTest, HidesThePasswordOfAKeyValueString) {
  EXPECT_EQ(postgresql::RedactConnectionString("host=h user=u password=hunter2 dbname=d"),
            "host=h user=u password=*** dbname=d");
  EXPECT_EQ(postgresql::RedactConnectionString("host=h password = 'it''s \\' secret' port=5"),
            "host=h password=***")
      << "malformed: everything from the password keyword on is hidden";
  EXPECT_EQ(postgresql::RedactConnectionString("host=h password='a \\'b c' port=5"),
            "host=h password=*** port=5");
}

TEST(PostgresqlRedactTest, HidesEverythingAfterThePasswordWhenUnparseable) {
  std::string redacted = postgresql::RedactConnectionString("host=h password='unterminated");
  EXPECT_EQ(redacted.find("unterminated"), std::string::npos) << redacted;
  EXPECT_NE(redacted.find("host=h"), std::string::npos);
}

TEST(PostgresqlRedactTest, HidesPasswordsOfNestedConnectionStrings) {
  std::string redacted =
      postgresql::RedactConnectionString("dbname='postgresql://u:deep@h/d' port=1");
  EXPECT_EQ(redacted.find("deep"), std::string::npos) << redacted;
}

TEST(PostgresqlRedactTest, FindsSecretsAndScrubsThemFromMessages) {
  auto secrets = postgresql::ConnectionSecrets("postgresql://u:p%40ssword@h/db");
  EXPECT_NE(std::find(secrets.begin(), secrets.end(), "p@ssword"), secrets.end());
  EXPECT_EQ(postgresql::ScrubSecrets("failed for p@ssword here", secrets), "failed for *** here");
  auto key_value = postgresql::ConnectionSecrets("user=u password='a b\\'c'");
  ASSERT_EQ(key_value.size(), 1u);
  EXPECT_EQ(key_value[0], "a b'c");
}

TEST(PostgresqlClassifyTest, SortsSqlStatesByWhatToDo) {
  using postgresql::ClassifySqlState;
  using postgresql::SqlStateClass;
  EXPECT_EQ(ClassifySqlState("40001"), SqlStateClass::kRetry);      // serialization failure
  EXPECT_EQ(ClassifySqlState("40P01"), SqlStateClass::kRetry);      // deadlock
  EXPECT_EQ(ClassifySqlState("53300"), SqlStateClass::kRetry);      // too many connections
  EXPECT_EQ(ClassifySqlState("57P01"), SqlStateClass::kReconnect);  // admin shutdown
  EXPECT_EQ(ClassifySqlState("08006"), SqlStateClass::kReconnect);
  EXPECT_EQ(ClassifySqlState("28P01"), SqlStateClass::kUnauthorized);
  EXPECT_EQ(ClassifySqlState("28000"), SqlStateClass::kUnauthorized);
  EXPECT_EQ(ClassifySqlState("42501"), SqlStateClass::kUnauthorized);
  EXPECT_EQ(ClassifySqlState("22P02"), SqlStateClass::kData);
  EXPECT_EQ(ClassifySqlState("23514"), SqlStateClass::kData);
  EXPECT_EQ(ClassifySqlState("42P01"), SqlStateClass::kSchemaChanged);
}

TEST(PostgresqlClassifyTest, RecognisesAuthenticationFailuresWhenConnecting) {
  using postgresql::ClassifyConnectMessage;
  using postgresql::FailureKind;
  EXPECT_EQ(ClassifyConnectMessage("FATAL:  password authentication failed for user \"u\""),
            FailureKind::kAuthentication);
  EXPECT_EQ(ClassifyConnectMessage("FATAL:  role \"ghost\" does not exist"),
            FailureKind::kAuthentication);
  EXPECT_EQ(ClassifyConnectMessage("FATAL:  no pg_hba.conf entry for host"),
            FailureKind::kAuthentication);
  EXPECT_EQ(ClassifyConnectMessage("FATAL:  database \"nope\" does not exist"),
            FailureKind::kConfiguration);
  EXPECT_EQ(ClassifyConnectMessage("connection to server at \"127.0.0.1\", port 1 failed: "
                                   "Connection refused"),
            FailureKind::kConnection);
}

TEST(PostgresqlTypesTest, QuotesIdentifiersAndRefusesUnsafeOnes) {
  EXPECT_EQ(postgresql::QuoteIdentifier("a\"b"), "\"a\"\"b\"");
  EXPECT_EQ(postgresql::QualifiedName("s", "t"), "\"s\".\"t\"");
  EXPECT_FALSE(postgresql::IdentifierProblem(std::string(63, 'x')));
  EXPECT_TRUE(postgresql::IdentifierProblem(std::string(64, 'x')));
  EXPECT_TRUE(postgresql::IdentifierProblem(""));
  EXPECT_TRUE(postgresql::IdentifierProblem(std::string("a\0b", 3)));
  EXPECT_TRUE(postgresql::IdentifierProblem("\xff"));
}

TEST(PostgresqlTypesTest, BuildsBinaryArrays) {
  postgresql::BinaryArray texts(postgresql::BinaryArray::Element::kText);
  texts.Add("ab");
  texts.AddNull();
  std::string bytes = std::move(texts).Finish();
  std::string expected(
      "\0\0\0\1"           // one dimension
      "\0\0\0\1"           // has nulls
      "\0\0\0\x19"         // text
      "\0\0\0\2"           // two elements
      "\0\0\0\1"           // lower bound
      "\0\0\0\2ab"         // "ab"
      "\xff\xff\xff\xff",  // NULL
      30);
  EXPECT_EQ(bytes, expected);
  postgresql::BinaryArray numbers(postgresql::BinaryArray::Element::kBigint);
  numbers.Add(std::int64_t{-2});
  bytes = std::move(numbers).Finish();
  ASSERT_EQ(bytes.size(), 32u);
  EXPECT_EQ(bytes.substr(20), std::string("\0\0\0\x08\xff\xff\xff\xff\xff\xff\xff\xfe", 12));
  EXPECT_EQ(std::move(postgresql::BinaryArray(postgresql::BinaryArray::Element::kText)).Finish(),
            std::string("\0\0\0\0\0\0\0\0\0\0\0\x19", 12));
}

TEST(PostgresqlTypesTest, AcceptsOnlyStrictIsoTimestamps) {
  using postgresql::IsIsoTimestamp;
  EXPECT_TRUE(IsIsoTimestamp("2024-02-29"));
  EXPECT_TRUE(IsIsoTimestamp("2024-03-10T12:00:00Z"));
  EXPECT_TRUE(IsIsoTimestamp("2024-03-10T12:00:00.123456+05:30"));
  EXPECT_TRUE(IsIsoTimestamp("2024-03-10 12:00-0800"));
  EXPECT_FALSE(IsIsoTimestamp("2023-02-29"));
  EXPECT_FALSE(IsIsoTimestamp("now"));
  EXPECT_FALSE(IsIsoTimestamp("epoch"));
  EXPECT_FALSE(IsIsoTimestamp("2024-03-10T25:00:00Z"));
  EXPECT_FALSE(IsIsoTimestamp("2024-03-10T12:00:00Zjunk"));
  EXPECT_FALSE(IsIsoTimestamp("2024-03-10T12:00:00+16:00"));
}

TEST(PostgresqlTypesTest, EncodesValuesExactlyOrRefusesThem) {
  using postgresql::EncodeValue;
  auto bigint = MakeColumnType(ColumnKind::kBigint);
  EXPECT_EQ(*EncodeValue(Json(std::int64_t{9007199254740993}), bigint), "9007199254740993");
  EXPECT_EQ(*EncodeValue(Json(INT64_MIN), bigint), "-9223372036854775808");
  EXPECT_FALSE(EncodeValue(Json(std::uint64_t{18446744073709551615u}), bigint));
  EXPECT_FALSE(EncodeValue(Json("12"), bigint));
  EXPECT_FALSE(EncodeValue(Json(1.5), bigint));
  EXPECT_EQ(*EncodeValue(Json(3.0), bigint), "3");
  auto numeric = MakeColumnType(ColumnKind::kNumeric);
  EXPECT_EQ(*EncodeValue(Json(std::uint64_t{18446744073709551615u}), numeric),
            "18446744073709551615");
  auto real = MakeColumnType(ColumnKind::kDouble);
  EXPECT_EQ(*EncodeValue(Json(0.1), real), "0.1");
  EXPECT_FALSE(EncodeValue(Json(std::int64_t{9007199254740993}), real))
      << "2^53 + 1 would silently become 2^53 in double precision";
  auto varchar = MakeColumnType(ColumnKind::kVarchar, 3);
  EXPECT_EQ(*EncodeValue(Json("äöü"), varchar), "äöü") << "the length counts characters";
  EXPECT_FALSE(EncodeValue(Json("abcd"), varchar));
  EXPECT_FALSE(EncodeValue(Json(JsonObject{}), varchar));
  auto jsonb = MakeColumnType(ColumnKind::kJsonb);
  EXPECT_EQ(*EncodeValue(Object(R"({"a":[1,"x"]})"), jsonb), R"({"a":[1,"x"]})");
  EXPECT_EQ(EncodeValue(Json(nullptr), jsonb)->has_value(), false);
  auto when = MakeColumnType(ColumnKind::kTimestamptz);
  EXPECT_FALSE(EncodeValue(Json("now"), when));
  EXPECT_FALSE(EncodeValue(Json(std::int64_t{1700000000000}), when));
}

TEST(PostgresqlTypesTest, ChecksStringsForNulAndInvalidUtf8AtAnyDepth) {
  using postgresql::CheckValue;
  using postgresql::NulPolicy;
  Json nested = Object(R"({"a":{"b":["x"]}})");
  nested.as_object()["a"].as_object()["b"].as_array().emplace_back(std::string("y\0z", 3));
  EXPECT_TRUE(CheckValue(nested, NulPolicy::kReject).problem);
  auto strip = CheckValue(nested, NulPolicy::kStrip);
  EXPECT_FALSE(strip.problem);
  EXPECT_TRUE(strip.has_nul);
  EXPECT_EQ(postgresql::StripNul(nested), 1u);
  EXPECT_EQ(nested.at("a").at("b").at(1).as_string(), "yz");
  EXPECT_TRUE(CheckValue(Json("\xc3\x28"), NulPolicy::kStrip).problem);
  EXPECT_TRUE(CheckValue(Json(std::nan("")), NulPolicy::kReject).problem);
}

TEST(PostgresqlTypesTest, MapsAttributesToColumnTypes) {
  auto schema = Schema::Parse(Object(R"({"name":"string|maxlength:20","bio":"string",
      "age":"integer","score":"number","ok":"boolean","at":"datetime","tags":"array|items:string",
      "meta":"json","nested":{"city":"string"}})"));
  ASSERT_TRUE(schema) << schema.error().ToString();
  std::map<std::string, std::string> types;
  for (const Attribute& attribute : schema->attributes()) {
    auto type = postgresql::ColumnTypeForAttribute(attribute, false);
    ASSERT_TRUE(type) << attribute.name;
    types[attribute.name] = type->sql_name;
  }
  EXPECT_EQ(types["name"], "character varying(20)");
  EXPECT_EQ(types["bio"], "text");
  EXPECT_EQ(types["age"], "bigint");
  EXPECT_EQ(types["score"], "double precision");
  EXPECT_EQ(types["ok"], "boolean");
  EXPECT_EQ(types["at"], "timestamp with time zone");
  EXPECT_EQ(types["tags"], "jsonb");
  EXPECT_EQ(types["meta"], "jsonb");
  EXPECT_EQ(types["nested"], "jsonb");
}

TEST(PostgresqlOptionsTest, RequiresAConnectionString) {
  auto options = ParsePostgresqlOptions(JsonObject{});
  ASSERT_FALSE(options);
  EXPECT_EQ(options.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(options.error().message.find("connectionString"), std::string::npos);
}

TEST(PostgresqlOptionsTest, RefusesUnknownAndMistypedOptionsByName) {
  auto unknown = ParsePostgresqlOptions(Object(R"({"connectionString":"host=h","tabel":"x"})"));
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message.find("tabel"), std::string::npos);
  auto mistyped =
      ParsePostgresqlOptions(Object(R"({"connectionString":"host=h","tombstones":"yes"})"));
  ASSERT_FALSE(mistyped);
  EXPECT_NE(mistyped.error().message.find("tombstones"), std::string::npos);
  auto bad_schema = ParsePostgresqlOptions(Object(R"({"connectionString":"host=h","schema":""})"));
  EXPECT_FALSE(bad_schema);
}

TEST(PostgresqlOptionsTest, ReportsUnparseableConnectionStringsWithoutThePassword) {
  auto options = ParsePostgresqlOptions(
      Object(R"({"connectionString":"host=h password=sup3rsecret bogus_option=1"})"));
  ASSERT_FALSE(options);
  EXPECT_NE(options.error().message.find("bogus_option"), std::string::npos)
      << options.error().message;
  EXPECT_EQ(options.error().message.find("sup3rsecret"), std::string::npos)
      << options.error().message;
}

// PQconninfoParse checks only the syntax; the values libpq refuses when connecting are refused
// at start-up instead of pausing the replicator as unreachable, without the password.
TEST(PostgresqlOptionsTest, RefusesConnectionValuesLibpqWouldRefuse) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"host=127.0.0.1 password='pw Secret9' port=abc", "invalid port number \"abc\""},
      {"postgresql://app:pwSecret9@127.0.0.1:99999/db", "invalid port number \"99999\""},
      {"host=a,b,c port=5432,5433 password=pwSecret9", "could not match 2 port numbers to 3 hosts"},
      {"host=h password=pwSecret9 connect_timeout=soon",
       "invalid integer value \"soon\" for connection option \"connect_timeout\""},
      {"host=h password=pwSecret9 sslmode=strict", "invalid sslmode value \"strict\""},
      {"host=h password=pwSecret9 target_session_attrs=writer",
       "invalid target_session_attrs value \"writer\""},
      {"host=h password=pwSecret9 sslrootcert=/nonexistent/root.crt",
       "sslrootcert file \"/nonexistent/root.crt\" cannot be read"},
  };
  for (const auto& [conninfo, expected] : cases) {
    JsonObject config;
    config["connectionString"] = conninfo;
    auto options = ParsePostgresqlOptions(config);
    ASSERT_FALSE(options) << conninfo;
    const std::string& message = options.error().message;
    EXPECT_EQ(options.error().code, ErrorCode::kInvalidArgument);
    EXPECT_EQ(message.rfind("postgresql: config.connectionString: ", 0), 0u) << message;
    EXPECT_NE(message.find(expected), std::string::npos) << message;
    EXPECT_EQ(message.find("Secret9"), std::string::npos) << message;
  }
  JsonObject documented;  // the example in docs/drivers/postgresql.md
  documented["connectionString"] = "host=127.0.0.1 password='pw Secret9' port=abc";
  EXPECT_EQ(ParsePostgresqlOptions(documented).error().message,
            "postgresql: config.connectionString: invalid port number \"abc\" (a whole number "
            "from 1 to 65535) in host=127.0.0.1 password=*** port=abc");
  for (const char* good : {"host=h port=5432", "host=a,b port=5432", "host=a,b port=5432,5433",
                           "postgresql://u:p@h:6543/db?sslmode=verify-full&connect_timeout=5"}) {
    JsonObject config;
    config["connectionString"] = good;
    S3DB_EXPECT_OK(ParsePostgresqlOptions(config));
  }
}

TEST(PostgresqlOptionsTest, ReadsEveryOption) {
  auto options = ParsePostgresqlOptions(Object(R"({"connectionString":"host=h",
      "schema":"analytics","revisionColumn":"version","nulCharacters":"strip",
      "exactNumbers":true,"tombstones":false,"attributeColumns":"present","writeMode":"copy",
      "connectTimeoutMs":2500})"));
  ASSERT_TRUE(options) << options.error().ToString();
  EXPECT_EQ(options->schema, "analytics");
  EXPECT_EQ(options->revision_column, "version");
  EXPECT_EQ(options->nul_policy, postgresql::NulPolicy::kStrip);
  EXPECT_TRUE(options->exact_numbers);
  EXPECT_FALSE(options->tombstones);
  EXPECT_FALSE(options->create_all_attribute_columns);
  EXPECT_EQ(options->write_mode, PostgresqlWriteMode::kCopy);
  EXPECT_EQ(options->connect_timeout, 2500ms);
}

TEST(PostgresqlRegistrationTest, RegistersUnderBothNames) {
  RegisterPostgresqlDriver();
  for (const char* name : {"postgresql", "postgres"}) {
    auto factory = FindDriver(name);
    ASSERT_TRUE(factory) << name;
    auto refused = (*factory)(JsonObject{}, DriverContext{});
    ASSERT_FALSE(refused) << "a config without connectionString must be refused";
    auto made =
        (*factory)(Object(R"({"connectionString":"host=127.0.0.1 port=1"})"), DriverContext{});
    EXPECT_TRUE(made) << made.error().ToString();
  }
}

// ---------------------------------------------------------------------------------------------
// A small blocking client to set up and inspect the server.

using Row = std::vector<std::optional<std::string>>;

class PgClient {
 public:
  explicit PgClient(const std::string& conninfo) : connection_(PQconnectdb(conninfo.c_str())) {
    PQsetNoticeProcessor(
        connection_, [](void*, const char*) {}, nullptr);
  }
  ~PgClient() { PQfinish(connection_); }
  bool ok() const { return PQstatus(connection_) == CONNECTION_OK; }
  std::string error() const { return PQerrorMessage(connection_); }

  // Rows of `sql`; an empty vector and a test failure when it fails.
  std::vector<Row> Query(const std::string& sql, const std::vector<std::string>& params = {}) {
    std::vector<const char*> values;
    for (const std::string& param : params) values.push_back(param.c_str());
    PGresult* result = PQexecParams(connection_, sql.c_str(), static_cast<int>(values.size()),
                                    nullptr, values.data(), nullptr, nullptr, 0);
    std::vector<Row> rows;
    ExecStatusType status = PQresultStatus(result);
    if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
      ADD_FAILURE() << sql << ": " << PQresultErrorMessage(result);
    } else {
      for (int r = 0; r < PQntuples(result); ++r) {
        Row row;
        for (int c = 0; c < PQnfields(result); ++c) {
          if (PQgetisnull(result, r, c)) {
            row.emplace_back(std::nullopt);
          } else {
            row.emplace_back(std::string(PQgetvalue(result, r, c), PQgetlength(result, r, c)));
          }
        }
        rows.push_back(std::move(row));
      }
    }
    PQclear(result);
    return rows;
  }

  std::optional<std::string> Scalar(const std::string& sql,
                                    const std::vector<std::string>& params = {}) {
    auto rows = Query(sql, params);
    if (rows.empty() || rows[0].empty()) return std::nullopt;
    return rows[0][0];
  }

 private:
  PGconn* connection_;
};

// ---------------------------------------------------------------------------------------------
// Integration tests against the server

class PostgresqlDriverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    S3DB_REQUIRE_SERVER("S3DB_TEST_PG");
    url_ = testing::EnvOrEmpty("S3DB_TEST_PG");
    client_ = std::make_unique<PgClient>(url_);
    ASSERT_TRUE(client_->ok()) << client_->error();
    schema_ = "pgtest_" + testing::UniqueToken();
  }

  void TearDown() override {
    if (!client_ || !client_->ok()) return;
    client_->Query("DROP SCHEMA IF EXISTS " + postgresql::QuoteIdentifier(schema_) + " CASCADE");
    for (const std::string& schema : extra_schemas_) {
      client_->Query("DROP SCHEMA IF EXISTS " + postgresql::QuoteIdentifier(schema) + " CASCADE");
    }
  }

  JsonObject Config(JsonObject extra = {}) {
    JsonObject config{{"connectionString", url_}, {"schema", schema_}};
    for (auto& member : extra) config[member.key()] = member.value();
    return config;
  }

  std::unique_ptr<PostgresqlDriver> MakeDriver(JsonObject extra = {}) {
    auto options = ParsePostgresqlOptions(Config(std::move(extra)));
    EXPECT_TRUE(options) << options.error().ToString();
    if (!options) return nullptr;
    DriverContext context;
    context.replicator_id = "pg-test";
    context.resource_definition = [this](std::string_view resource) -> std::optional<JsonObject> {
      auto found = definitions_.find(std::string(resource));
      if (found == definitions_.end()) return std::nullopt;
      return found->second;
    };
    return std::make_unique<PostgresqlDriver>(std::move(*options), std::move(context));
  }

  static DeliveryItem Change(std::string target, std::string id, std::uint64_t revision,
                             Action action, std::string_view data = "{}",
                             std::string source = "users") {
    DeliveryItem item;
    item.change_id = source + ":" + id + ":" + std::to_string(revision);
    item.source_resource = std::move(source);
    item.target = std::move(target);
    item.id = std::move(id);
    item.revision = revision;
    item.action = action;
    item.data = Object(data);
    return item;
  }

  static void ExpectAllDelivered(const std::vector<DeliveryResult>& results) {
    for (std::size_t i = 0; i < results.size(); ++i) {
      EXPECT_EQ(results[i].outcome, Outcome::kDelivered)
          << "item " << i << ": " << results[i].reason << " " << results[i].error;
    }
  }

  std::string Table(std::string_view table) const {
    return postgresql::QualifiedName(schema_, table);
  }

  // column name -> format_type
  std::map<std::string, std::string> ColumnTypes(const std::string& table) {
    std::map<std::string, std::string> types;
    for (const Row& row : client_->Query(
             "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull "
             "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
             "JOIN pg_namespace n ON n.oid = c.relnamespace "
             "WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped",
             {schema_, table})) {
      types[*row[0]] = *row[1] + (*row[2] == "t" ? " not null" : "");
    }
    return types;
  }

  std::optional<std::string> Value(const std::string& table, const std::string& column,
                                   const std::string& id) {
    return client_->Scalar("SELECT " + postgresql::QuoteIdentifier(column) + "::text FROM " +
                               Table(table) + " WHERE id = $1",
                           {id});
  }

  std::string Count(const std::string& table) {
    return client_->Scalar("SELECT count(*) FROM " + Table(table)).value_or("?");
  }

  std::string url_;
  std::string schema_;
  std::vector<std::string> extra_schemas_;  // dropped with schema_
  std::unique_ptr<PgClient> client_;
  std::map<std::string, JsonObject> definitions_;
};

TEST_F(PostgresqlDriverTest, CreatesTheTableFromTheResourceAttributes) {
  definitions_["users"] = Object(R"({"attributes":{"name":"string|maxlength:20",
      "bio":"string","age":"integer","score":"number","active":"boolean","born":"datetime",
      "tags":"array|items:string","extra":"json","address":{"city":"string"},
      "never_sent":"string"}})");
  auto driver = MakeDriver();
  S3DB_ASSERT_OK(driver->Start());
  auto results =
      driver->Deliver(std::vector{Change("people", "u1", 1, Action::kInsert,
                                         R"({"id":"u1","name":"Ana","bio":"x","age":41,"score":9.5,
                             "active":true,"born":"1983-05-01T10:00:00Z","tags":["a"],
                             "extra":{"k":1},"address":{"city":"Lisbon"}})")},
                      5s);
  ExpectAllDelivered(results);

  auto types = ColumnTypes("people");
  EXPECT_EQ(types["id"], "text not null");
  EXPECT_EQ(types["_s3db_rev"], "bigint not null");
  EXPECT_EQ(types["name"], "character varying(20)");
  EXPECT_EQ(types["bio"], "text");
  EXPECT_EQ(types["age"], "bigint");
  EXPECT_EQ(types["score"], "double precision");
  EXPECT_EQ(types["active"], "boolean");
  EXPECT_EQ(types["born"], "timestamp with time zone");
  EXPECT_EQ(types["tags"], "jsonb");
  EXPECT_EQ(types["extra"], "jsonb");
  EXPECT_EQ(types["address"], "jsonb");
  EXPECT_EQ(types["never_sent"], "text") << "every attribute gets a column (attributeColumns)";
  EXPECT_EQ(client_->Scalar("SELECT count(*) FROM pg_index i JOIN pg_attribute a ON "
                            "a.attrelid = i.indrelid AND a.attnum = i.indkey[0] WHERE "
                            "i.indisprimary AND i.indrelid = $1::regclass AND a.attname = 'id'",
                            {Table("people")}),
            "1");
  EXPECT_EQ(Value("people", "name", "u1"), "Ana");
  EXPECT_EQ(Value("people", "address", "u1"), R"({"city": "Lisbon"})");
  EXPECT_EQ(Value("people", "_s3db_rev", "u1"), "1");
}

TEST_F(PostgresqlDriverTest, IgnoresTheSourceAttributesWhenATransformShapesTheRecord) {
  definitions_["orders"] = Object(R"({"attributes":{"total":"string","status":"string"}})");
  auto driver = MakeDriver();
  JsonObject options{{"hasTransform", true}};
  DeliveryItem item = Change("analytics_orders", "o1", 1, Action::kInsert,
                             R"({"order_id":"o1","total":12.5})", "orders");
  item.destination_options = &options;
  ExpectAllDelivered(driver->Deliver(std::vector{item}, 5s));
  auto types = ColumnTypes("analytics_orders");
  EXPECT_EQ(types["total"], "double precision") << "typed by its value, not the source";
  EXPECT_EQ(types.count("status"), 0u) << "no columns for source attributes";
  EXPECT_EQ(types["order_id"], "text");
}

TEST_F(PostgresqlDriverTest, InfersColumnTypesFromValuesWithoutADefinition) {
  auto driver = MakeDriver();
  auto results = driver->Deliver(
      std::vector{Change("things", "t1", 1, Action::kInsert,
                         R"({"s":"x","i":5,"big":18446744073709551615,"f":1.25,"b":false,
                             "o":{"a":1},"a":[1,2],"at":"2024-01-02T03:04:05.678Z",
                             "day":"2024-01-02","only_null":null,"mixed":1})"),
                  Change("things", "t2", 1, Action::kInsert, R"({"mixed":2.5})")},
      5s);
  ExpectAllDelivered(results);
  auto types = ColumnTypes("things");
  EXPECT_EQ(types["s"], "text");
  EXPECT_EQ(types["i"], "bigint");
  EXPECT_EQ(types["big"], "numeric");
  EXPECT_EQ(types["f"], "double precision");
  EXPECT_EQ(types["b"], "boolean");
  EXPECT_EQ(types["o"], "jsonb");
  EXPECT_EQ(types["a"], "jsonb");
  EXPECT_EQ(types["at"], "timestamp with time zone") << "ISO instants with an offset";
  EXPECT_EQ(types["day"], "text") << "a bare date is not an instant";
  EXPECT_EQ(types["mixed"], "double precision") << "1 and 2.5 in one batch";
  EXPECT_EQ(types.count("only_null"), 0u) << "null alone needs no column yet";
  EXPECT_EQ(Value("things", "big", "t1"), "18446744073709551615");
}

TEST_F(PostgresqlDriverTest, AddsNullableColumnsWhenNewFieldsArrive) {
  auto driver = MakeDriver();
  ExpectAllDelivered(
      driver->Deliver(std::vector{Change("people", "u1", 1, Action::kInsert, R"({"a":1})")}, 5s));
  ExpectAllDelivered(driver->Deliver(
      std::vector{Change("people", "u2", 1, Action::kInsert, R"({"a":2,"b":"new","c":[1]})")}, 5s));
  auto types = ColumnTypes("people");
  EXPECT_EQ(types["b"], "text") << "added nullable";
  EXPECT_EQ(types["c"], "jsonb");
  EXPECT_EQ(Value("people", "b", "u1"), std::nullopt) << "old rows get NULL";
  EXPECT_EQ(Value("people", "b", "u2"), "new");
  EXPECT_EQ(driver->stats().columns_added, 3u);  // a, then b and c

  // A later value of another type never narrows or changes the column: it is refused.
  auto results = driver->Deliver(
      std::vector{Change("people", "u3", 1, Action::kInsert, R"({"a":"text now"})")}, 5s);
  EXPECT_EQ(results[0].outcome, Outcome::kPermanent);
  EXPECT_EQ(results[0].reason, "schema_mismatch");
  EXPECT_EQ(ColumnTypes("people")["a"], "bigint");
}

TEST_F(PostgresqlDriverTest, UpsertsUpdateRowsAndInsertMissingOnes) {
  auto driver = MakeDriver();
  ExpectAllDelivered(driver->Deliver(
      std::vector{Change("people", "u1", 1, Action::kInsert, R"({"name":"Ana","n":1})")}, 5s));
  ExpectAllDelivered(driver->Deliver(
      std::vector{Change("people", "u1", 2, Action::kUpdate, R"({"name":"Ana B","n":2})"),
                  Change("people", "u2", 7, Action::kUpdate, R"({"name":"Bo","n":3})")},
      5s));
  EXPECT_EQ(Value("people", "name", "u1"), "Ana B");
  EXPECT_EQ(Value("people", "_s3db_rev", "u1"), "2");
  EXPECT_EQ(Value("people", "name", "u2"), "Bo") << "an update of a missing row inserts it";
  EXPECT_EQ(Count("people"), "2");
}

TEST_F(PostgresqlDriverTest, MissingKeysKeepColumnsAndExplicitNullClearsThem) {
  auto driver = MakeDriver();
  ExpectAllDelivered(driver->Deliver(
      std::vector{Change("people", "u1", 1, Action::kInsert, R"({"a":1,"b":"keep"})")}, 5s));
  ExpectAllDelivered(
      driver->Deliver(std::vector{Change("people", "u1", 2, Action::kUpdate, R"({"a":2})")}, 5s));
  EXPECT_EQ(Value("people", "a", "u1"), "2");
  EXPECT_EQ(Value("people", "b", "u1"), "keep");
  ExpectAllDelivered(driver->Deliver(
      std::vector{Change("people", "u1", 3, Action::kUpdate, R"({"b":null})")}, 5s));
  EXPECT_EQ(Value("people", "a", "u1"), "2");
  EXPECT_EQ(Value("people", "b", "u1"), std::nullopt);
}

TEST_F(PostgresqlDriverTest, KeepsColumnDefaultsOnInsert) {
  client_->Query("CREATE SCHEMA " + postgresql::QuoteIdentifier(schema_));
  client_->Query("CREATE TABLE " + Table("orders") +
                 " (id text PRIMARY KEY, status text DEFAULT 'new', total bigint, "
                 "created timestamptz NOT NULL DEFAULT now())");
  auto driver = MakeDriver();
  ExpectAllDelivered(driver->Deliver(
      std::vector{Change("orders", "o1", 1, Action::kInsert, R"({"total":10})"),
                  Change("orders", "o2", 1, Action::kInsert, R"({"total":5,"status":"paid"})")},
      5s));
  EXPECT_EQ(Value("orders", "status", "o1"), "new");
  EXPECT_EQ(Value("orders", "status", "o2"), "paid");
  EXPECT_TRUE(Value("orders", "created", "o1"));
  EXPECT_EQ(ColumnTypes("orders")["_s3db_rev"], "bigint") << "added to an existing table";
}

TEST_F(PostgresqlDriverTest, DeletesRemoveRows) {
  auto driver = MakeDriver();
  ExpectAllDelivered(
      driver->Deliver(std::vector{Change("people", "u1", 1, Action::kInsert, R"({"a":1})"),
                                  Change("people", "u2", 1, Action::kInsert, R"({"a":2})")},
                      5s));
  ExpectAllDelivered(
      driver->Deliver(std::vector{Change("people", "u1", 2, Action::kDelete, R"({"a":1})")}, 5s));
  EXPECT_EQ(Count("people"), "1");
  EXPECT_EQ(Value("people", "a", "u2"), "2");
  // A delete for a table that does not exist yet is delivered (nothing to remove).
  ExpectAllDelivered(driver->Deliver(std::vector{Change("ghosts", "g1", 4, Action::kDelete)}, 5s));
}

TEST_F(PostgresqlDriverTest, DeleteThenReinsertInOneBatchLeavesOnlyTheNewRecord) {
  auto driver = MakeDriver();
  ExpectAllDelivered(driver->Deliver(
      std::vector{Change("people", "u1", 1, Action::kInsert, R"({"a":1,"b":"old"})")}, 5s));
  auto results = driver->Deliver(
      std::vector{Change("people", "u1", 2, Action::kDelete, R"({"a":1,"b":"old"})"),
                  Change("people", "u1", 3, Action::kInsert, R"({"a":5})"),
                  Change("people", "u9", 1, Action::kInsert, R"({"a":9})"),
                  Change("people", "u9", 2, Action::kDelete, R"({"a":9})")},
      5s);
  ExpectAllDelivered(results);
  EXPECT_EQ(Value("people", "a", "u1"), "5");
  EXPECT_EQ(Value("people", "b", "u1"), std::nullopt) << "the old row's fields are gone";
  EXPECT_EQ(Value("people", "_s3db_rev", "u1"), "3");
  EXPECT_EQ(Count("people"), "1") << "insert then delete of u9 leaves no row";
  EXPECT_EQ(driver->stats().changes_collapsed, 2u);
}

TEST_F(PostgresqlDriverTest, CollapsesSeveralChangesOfOneRecordToTheLatest) {
  auto driver = MakeDriver();
  auto results =
      driver->Deliver(std::vector{Change("people", "u1", 1, Action::kInsert, R"({"n":1})"),
                                  Change("people", "u1", 2, Action::kUpdate, R"({"n":2})"),
                                  Change("people", "u1", 3, Action::kUpdate, R"({"n":3})")},
                      5s);
  ASSERT_EQ(results.size(), 3u);
  ExpectAllDelivered(results);
  EXPECT_EQ(Value("people", "n", "u1"), "3");
  EXPECT_EQ(Value("people", "_s3db_rev", "u1"), "3");
}

TEST_F(PostgresqlDriverTest, RevisionGuardIgnoresReplayedOlderChanges) {
  auto driver = MakeDriver();
  ExpectAllDelivered(
      driver->Deliver(std::vector{Change("people", "u1", 3, Action::kUpdate, R"({"n":3})")}, 5s));
  // Replays of older changes, and of the same one, are delivered but change nothing.
  ExpectAllDelivered(
      driver->Deliver(std::vector{Change("people", "u1", 1, Action::kInsert, R"({"n":1})")}, 5s));
  ExpectAllDelivered(
      driver->Deliver(std::vector{Change("people", "u1", 2, Action::kDelete, R"({"n":2})")}, 5s));
  ExpectAllDelivered(
      driver->Deliver(std::vector{Change("people", "u1", 3, Action::kUpdate, R"({"n":33})")}, 5s));
  EXPECT_EQ(Value("people", "n", "u1"), "3");
  EXPECT_EQ(Value("people", "_s3db_rev", "u1"), "3");

  // After a delete, a replayed older write does not bring the row back (tombstone).
  ExpectAllDelivered(
      driver->Deliver(std::vector{Change("people", "u1", 4, Action::kDelete, R"({"n":3})")}, 5s));
  ExpectAllDelivered(
      driver->Deliver(std::vector{Change("people", "u1", 3, Action::kUpdate, R"({"n":3})")}, 5s));
  EXPECT_EQ(Count("people"), "0");
  // A newer write after the delete does.
  ExpectAllDelivered(
      driver->Deliver(std::vector{Change("people", "u1", 5, Action::kInsert, R"({"n":5})")}, 5s));
  EXPECT_EQ(Value("people", "n", "u1"), "5");
}

TEST_F(PostgresqlDriverTest, ARevisionColumnNamedRevIsTheRecordsOwnRev) {
  auto driver = MakeDriver(Object(R"({"revisionColumn":"_rev"})"));
  ExpectAllDelivered(driver->Deliver(
      std::vector{Change("people", "u1", 5, Action::kInsert, R"({"id":"u1","_rev":5,"a":1})")},
      5s));
  ExpectAllDelivered(driver->Deliver(
      std::vector{Change("people", "u1", 4, Action::kUpdate, R"({"id":"u1","_rev":4,"a":0})")},
      5s));
  auto types = ColumnTypes("people");
  EXPECT_EQ(types.size(), 3u);
  EXPECT_EQ(types["_rev"], "bigint not null");
  EXPECT_EQ(types.count("_s3db_rev"), 0u);
  EXPECT_EQ(Value("people", "_rev", "u1"), "5");
  EXPECT_EQ(Value("people", "a", "u1"), "1");
}

TEST_F(PostgresqlDriverTest, WithoutTombstonesAReplayedOldWriteCanReturnAfterADelete) {
  auto driver = MakeDriver(Object(R"({"tombstones":false})"));
  ExpectAllDelivered(
      driver->Deliver(std::vector{Change("people", "u1", 1, Action::kInsert, R"({"n":1})")}, 5s));
  ExpectAllDelivered(
      driver->Deliver(std::vector{Change("people", "u1", 2, Action::kDelete, R"({"n":1})")}, 5s));
  EXPECT_EQ(Count("people"), "0");
  ExpectAllDelivered(
      driver->Deliver(std::vector{Change("people", "u1", 1, Action::kInsert, R"({"n":1})")}, 5s));
  EXPECT_EQ(Count("people"), "1") << "the documented cost of tombstones: false";
  EXPECT_EQ(client_->Scalar("SELECT to_regclass($1) IS NULL", {Table("_s3db_tombstones")}), "t");
}

TEST_F(PostgresqlDriverTest, StoresIntegersExactly) {
  auto driver = MakeDriver();
  ExpectAllDelivered(
      driver->Deliver(std::vector{Change("nums", "n1", 1, Action::kInsert,
                                         R"({"i":9007199254740993,"max":9223372036854775807,
                             "min":-9223372036854775808,"huge":18446744073709551615})")},
                      5s));
  auto types = ColumnTypes("nums");
  EXPECT_EQ(types["i"], "bigint");
  EXPECT_EQ(types["huge"], "numeric");
  EXPECT_EQ(Value("nums", "i", "n1"), "9007199254740993");
  EXPECT_EQ(Value("nums", "max", "n1"), "9223372036854775807");
  EXPECT_EQ(Value("nums", "min", "n1"), "-9223372036854775808");
  EXPECT_EQ(Value("nums", "huge", "n1"), "18446744073709551615");

  // Too big for an existing bigint column: refused, never rounded.
  auto results = driver->Deliver(
      std::vector{Change("nums", "n2", 1, Action::kInsert, R"({"i":18446744073709551615})")}, 5s);
  EXPECT_EQ(results[0].reason, "schema_mismatch") << results[0].error;

  // Attributes of type number become numeric with exactNumbers.
  definitions_["exact"] = Object(R"({"attributes":{"price":"number"}})");
  auto exact = MakeDriver(Object(R"({"exactNumbers":true})"));
  ExpectAllDelivered(exact->Deliver(std::vector{Change("prices", "p1", 1, Action::kInsert,
                                                       R"({"price":12345678901234567})", "exact")},
                                    5s));
  EXPECT_EQ(ColumnTypes("prices")["price"], "numeric");
  EXPECT_EQ(Value("prices", "price", "p1"), "12345678901234567");
}

TEST_F(PostgresqlDriverTest, TimestampsWithOffsetsKeepTheInstant) {
  definitions_["events"] = Object(R"({"attributes":{"at":"datetime"}})");
  auto driver = MakeDriver();
  auto results = driver->Deliver(
      std::vector{Change("events", "e1", 1, Action::kInsert,
                         R"({"at":"2024-03-10T12:00:00+05:30"})", "events"),
                  Change("events", "e2", 1, Action::kInsert,
                         R"({"at":"2024-03-10T06:30:00.123456Z"})", "events"),
                  Change("events", "e3", 1, Action::kInsert,
                         R"({"at":"2024-03-09T22:30:00-08:00"})", "events"),
                  Change("events", "e4", 1, Action::kInsert, R"({"at":"now"})", "events")},
      5s);
  EXPECT_EQ(results[0].outcome, Outcome::kDelivered);
  EXPECT_EQ(results[1].outcome, Outcome::kDelivered);
  EXPECT_EQ(results[2].outcome, Outcome::kDelivered);
  EXPECT_EQ(results[3].outcome, Outcome::kPermanent) << "'now' would silently change the value";
  EXPECT_EQ(results[3].reason, "schema_mismatch");
  auto epoch = [&](const std::string& id) {
    return client_->Scalar(
        "SELECT extract(epoch FROM at)::text FROM " + Table("events") + " WHERE id = $1", {id});
  };
  EXPECT_EQ(epoch("e1"), "1710052200.000000");
  EXPECT_EQ(epoch("e2"), "1710052200.123456");
  EXPECT_EQ(epoch("e3"), "1710052200.000000");
}

TEST_F(PostgresqlDriverTest, RejectsNulCharactersByDefault) {
  auto driver = MakeDriver();
  DeliveryItem bad = Change("people", "u1", 1, Action::kInsert);
  bad.data["name"] = std::string("a\0b", 3);
  DeliveryItem nested_bad = Change("people", "u3", 1, Action::kInsert);
  nested_bad.data["meta"] = JsonObject{{"k", std::string("x\0", 2)}};
  auto results = driver->Deliver(
      std::vector{bad, Change("people", "u2", 1, Action::kInsert, R"({"name":"ok"})"), nested_bad},
      5s);
  EXPECT_EQ(results[0].outcome, Outcome::kPermanent);
  EXPECT_EQ(results[0].reason, "invalid_value");
  EXPECT_EQ(results[1].outcome, Outcome::kDelivered);
  EXPECT_EQ(results[2].reason, "invalid_value");
  EXPECT_EQ(Count("people"), "1");
}

TEST_F(PostgresqlDriverTest, StripsNulCharactersWhenConfigured) {
  auto driver = MakeDriver(Object(R"({"nulCharacters":"strip"})"));
  DeliveryItem item = Change("people", "u1", 1, Action::kInsert);
  item.data["name"] = std::string("a\0b\0", 4);
  item.data["meta"] = JsonObject{{std::string("k\0", 2), std::string("\0v", 2)}};
  ExpectAllDelivered(driver->Deliver(std::vector{item}, 5s));
  EXPECT_EQ(Value("people", "name", "u1"), "ab");
  EXPECT_EQ(Value("people", "meta", "u1"), R"({"k": "v"})");
  EXPECT_EQ(driver->stats().nul_characters_stripped, 4u);
}

TEST_F(PostgresqlDriverTest, InvalidUtf8NeverReachesTheServer) {
  auto driver = MakeDriver();
  DeliveryItem bad_value = Change("people", "u1", 1, Action::kInsert);
  bad_value.data["name"] = "\xff\xfe";
  DeliveryItem bad_key = Change("people", "u2", 1, Action::kInsert);
  bad_key.data["\xc3\x28"] = 1;
  DeliveryItem bad_id = Change("people", "\xe2\x82", 1, Action::kInsert, R"({"a":1})");
  DeliveryItem bad_table = Change("\xf0\x28\x8c\x28", "u4", 1, Action::kInsert, R"({"a":1})");
  auto results =
      driver->Deliver(std::vector{bad_value, bad_key, bad_id, bad_table,
                                  Change("people", "u5", 1, Action::kInsert, R"({"a":1})")},
                      5s);
  EXPECT_EQ(results[0].reason, "invalid_value");
  EXPECT_EQ(results[1].reason, "invalid_identifier");
  EXPECT_EQ(results[2].reason, "invalid_value");
  EXPECT_EQ(results[3].reason, "invalid_identifier");
  EXPECT_EQ(results[4].outcome, Outcome::kDelivered);
  EXPECT_EQ(Count("people"), "1");
}

TEST_F(PostgresqlDriverTest, RefusesNamesPostgresqlWouldTruncate) {
  auto driver = MakeDriver();
  DeliveryItem long_field = Change("people", "u1", 1, Action::kInsert);
  long_field.data[std::string(64, 'f')] = 1;
  auto results = driver->Deliver(
      std::vector{long_field, Change(std::string(64, 't'), "u2", 1, Action::kInsert)}, 5s);
  EXPECT_EQ(results[0].reason, "invalid_identifier");
  EXPECT_EQ(results[1].reason, "invalid_identifier");
}

TEST_F(PostgresqlDriverTest, ASchemaMismatchFailsOnlyItsOwnChange) {
  definitions_["users"] = Object(R"({"attributes":{"age":"integer","code":"string|maxlength:3"}})");
  auto driver = MakeDriver();
  auto results = driver->Deliver(
      std::vector{Change("people", "u1", 1, Action::kInsert, R"({"age":1,"code":"abc"})"),
                  Change("people", "u2", 1, Action::kInsert, R"({"age":"old"})"),
                  Change("people", "u3", 1, Action::kInsert, R"({"code":"abcd"})"),
                  Change("people", "u4", 1, Action::kInsert, R"({"age":4})")},
      5s);
  EXPECT_EQ(results[0].outcome, Outcome::kDelivered);
  EXPECT_EQ(results[1].reason, "schema_mismatch") << results[1].error;
  EXPECT_EQ(results[2].reason, "schema_mismatch") << results[2].error;
  EXPECT_EQ(results[3].outcome, Outcome::kDelivered);
  EXPECT_EQ(Count("people"), "2");
}

TEST_F(PostgresqlDriverTest, ServerSideRefusalsFailOnlyTheirChange) {
  // Errors only the server can see (a CHECK constraint, a numeric precision, a uuid column)
  // make the driver retry the batch change by change under savepoints.
  client_->Query("CREATE SCHEMA " + postgresql::QuoteIdentifier(schema_));
  client_->Query("CREATE TABLE " + Table("accounts") +
                 " (id text PRIMARY KEY, balance bigint CHECK (balance >= 0), "
                 "rate numeric(3,1), ref uuid)");
  for (const char* mode : {"unnest", "copy"}) {
    SCOPED_TRACE(mode);
    client_->Query("TRUNCATE " + Table("accounts"));
    auto driver = MakeDriver(JsonObject{{"writeMode", mode}});
    auto results = driver->Deliver(
        std::vector{Change("accounts", "a1", 1, Action::kInsert, R"({"balance":5})"),
                    Change("accounts", "a2", 1, Action::kInsert, R"({"balance":-1})"),
                    Change("accounts", "a3", 1, Action::kInsert, R"({"rate":12345.5})"),
                    Change("accounts", "a4", 1, Action::kInsert, R"({"ref":"not-a-uuid"})"),
                    Change("accounts", "a5", 1, Action::kInsert,
                           R"({"ref":"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11","rate":1.5})")},
        5s);
    EXPECT_EQ(results[0].outcome, Outcome::kDelivered);
    EXPECT_EQ(results[1].reason, "constraint_violation") << results[1].error;
    EXPECT_EQ(results[2].reason, "schema_mismatch") << results[2].error;
    EXPECT_EQ(results[3].reason, "schema_mismatch") << results[3].error;
    EXPECT_EQ(results[4].outcome, Outcome::kDelivered) << results[4].error;
    EXPECT_EQ(Count("accounts"), "2");
    EXPECT_EQ(driver->stats().row_by_row_fallbacks, 1u);
  }
}

TEST_F(PostgresqlDriverTest, RefusesATableWithoutAUniqueId) {
  client_->Query("CREATE SCHEMA " + postgresql::QuoteIdentifier(schema_));
  client_->Query("CREATE TABLE " + Table("loose") + " (id text, v bigint)");
  auto driver = MakeDriver();
  auto results =
      driver->Deliver(std::vector{Change("loose", "x", 1, Action::kInsert, R"({"v":1})")}, 5s);
  EXPECT_EQ(results[0].outcome, Outcome::kPermanent);
  EXPECT_EQ(results[0].reason, "schema_mismatch");
  EXPECT_NE(results[0].error.find("unique"), std::string::npos) << results[0].error;
}

TEST_F(PostgresqlDriverTest, WritesABatchInOneTransactionAcrossTables) {
  auto driver = MakeDriver();
  std::vector<DeliveryItem> batch;
  for (int i = 0; i < 1000; ++i) {
    std::string id = "r" + std::to_string(i);
    batch.push_back(Change(i % 2 == 0 ? "even" : "odd", id, 1, Action::kInsert,
                           i % 3 == 0 ? R"({"a":1,"b":"x"})" : R"({"a":2})"));
  }
  ExpectAllDelivered(driver->Deliver(batch, 10s));
  EXPECT_EQ(Count("even"), "500");
  EXPECT_EQ(Count("odd"), "500");
  EXPECT_EQ(client_->Scalar("SELECT count(DISTINCT x) FROM (SELECT xmin::text AS x FROM " +
                            Table("even") + " UNION ALL SELECT xmin::text FROM " + Table("odd") +
                            ") rows"),
            "1")
      << "every row was written by the same transaction";
}

TEST_F(PostgresqlDriverTest, CopyWriteModeBehavesLikeTheDefault) {
  auto driver = MakeDriver(Object(R"({"writeMode":"copy"})"));
  ExpectAllDelivered(driver->Deliver(
      std::vector{Change("people", "u1", 1, Action::kInsert, R"({"a":1,"t":"tab\there\nnl\\"})"),
                  Change("people", "u2", 1, Action::kInsert, R"({"a":2})"),
                  Change("people", "u3", 1, Action::kInsert, R"({"b":null})")},
      5s));
  ExpectAllDelivered(
      driver->Deliver(std::vector{Change("people", "u1", 2, Action::kUpdate, R"({"a":10})"),
                                  Change("people", "u2", 2, Action::kDelete),
                                  Change("people", "u2", 1, Action::kInsert, R"({"a":2})")},
                      5s));
  EXPECT_EQ(Value("people", "a", "u1"), "10");
  EXPECT_EQ(Value("people", "t", "u1"), "tab\there\nnl\\");
  EXPECT_EQ(Value("people", "a", "u2"), std::nullopt);
  EXPECT_EQ(Count("people"), "2");
}

TEST_F(PostgresqlDriverTest, InjectionThroughNamesAndValuesStaysData) {
  client_->Query("CREATE SCHEMA " + postgresql::QuoteIdentifier(schema_));
  client_->Query("CREATE TABLE " + Table("victim") + " (id text PRIMARY KEY)");
  auto driver = MakeDriver();
  std::string evil_table = "x\"; DROP TABLE victim; --";
  DeliveryItem item = Change(evil_table, "1'); DROP TABLE victim; --", 1, Action::kInsert);
  item.data["a\"b"] = "'); DROP TABLE victim; --";
  item.data["\"; DROP TABLE victim; --"] = "$1 $$ \\x00 E'\\''";
  item.data["Mixed Case"] = 1;
  DeliveryItem via_options = Change("ignored", "2", 1, Action::kInsert, R"({"v":1})");
  JsonObject options{{"table", "y'); DROP TABLE victim; --"}};
  via_options.destination_options = &options;
  ExpectAllDelivered(driver->Deliver(std::vector{item, via_options}, 5s));

  EXPECT_EQ(client_->Scalar("SELECT to_regclass($1) IS NOT NULL", {Table("victim")}), "t");
  auto types = ColumnTypes(evil_table);
  EXPECT_EQ(types.count("a\"b"), 1u);
  EXPECT_EQ(types.count("\"; DROP TABLE victim; --"), 1u);
  EXPECT_EQ(types.count("Mixed Case"), 1u);
  EXPECT_EQ(client_->Scalar("SELECT \"a\"\"b\" FROM " + Table(evil_table) + " WHERE id = $1",
                            {"1'); DROP TABLE victim; --"}),
            "'); DROP TABLE victim; --");
  EXPECT_EQ(client_->Scalar("SELECT \"\"\"; DROP TABLE victim; --\" FROM " + Table(evil_table)),
            "$1 $$ \\x00 E'\\''");
  EXPECT_EQ(Count("y'); DROP TABLE victim; --"), "1");

  // Deletes through the same names.
  ExpectAllDelivered(driver->Deliver(
      std::vector{Change(evil_table, "1'); DROP TABLE victim; --", 2, Action::kDelete)}, 5s));
  EXPECT_EQ(Count(evil_table), "0");
  EXPECT_EQ(client_->Scalar("SELECT to_regclass($1) IS NOT NULL", {Table("victim")}), "t");
}

TEST_F(PostgresqlDriverTest, RefusedCredentialsAreUnauthorizedWithoutThePassword) {
  std::string role = "ghost_" + testing::UniqueToken();
  auto options = ParsePostgresqlOptions(JsonObject{
      {"connectionString",
       "host=127.0.0.1 port=" + client_->Scalar("SELECT current_setting('port')").value_or("0") +
           " dbname=" + client_->Scalar("SELECT current_database()").value() + " user=" + role +
           " password=hunter2secret"}});
  ASSERT_TRUE(options) << options.error().ToString();
  PostgresqlDriver driver(std::move(*options), DriverContext{});
  auto started = driver.Start();
  ASSERT_FALSE(started);
  EXPECT_EQ(started.error().code, ErrorCode::kUnauthorized) << started.error().ToString();
  EXPECT_EQ(started.error().message.find("hunter2secret"), std::string::npos);
  auto results = driver.Deliver(std::vector{Change("people", "u1", 1, Action::kInsert)}, 5s);
  EXPECT_EQ(results[0].outcome, Outcome::kUnauthorized);
  EXPECT_NE(results[0].error.find(role), std::string::npos) << results[0].error;
  EXPECT_NE(results[0].error.find("password=***"), std::string::npos) << results[0].error;
  EXPECT_EQ(results[0].error.find("hunter2secret"), std::string::npos) << results[0].error;
}

// What docs/drivers/postgresql.md says of a missing database: Start fails with
// kInvalidArgument (the replicator does not start), a database dropped later pauses the
// replicator as unauthorized.
TEST_F(PostgresqlDriverTest, AMissingDatabaseFailsStartAndLaterPausesAsUnauthorized) {
  std::string database = "nodb_" + testing::UniqueToken();
  std::string url = url_.substr(0, url_.rfind('/') + 1) + database;
  auto options = ParsePostgresqlOptions(JsonObject{{"connectionString", url}});
  ASSERT_TRUE(options) << options.error().ToString();
  PostgresqlDriver driver(std::move(*options), DriverContext{});
  auto started = driver.Start();
  ASSERT_FALSE(started);
  EXPECT_EQ(started.error().code, ErrorCode::kInvalidArgument) << started.error().ToString();
  EXPECT_NE(started.error().message.find("database \"" + database + "\" does not exist"),
            std::string::npos)
      << started.error().message;
  EXPECT_NE(started.error().message.find("(fix config.connectionString)"), std::string::npos)
      << started.error().message;
  auto results = driver.Deliver(std::vector{Change("people", "u1", 1, Action::kInsert)}, 5s);
  EXPECT_EQ(results[0].outcome, Outcome::kUnauthorized) << results[0].error;
}

TEST_F(PostgresqlDriverTest, MissingPrivilegesAreUnauthorized) {
  std::string role = "limited_" + testing::UniqueToken();
  client_->Query("CREATE ROLE " + role + " LOGIN");
  client_->Query("CREATE SCHEMA " + postgresql::QuoteIdentifier(schema_));
  {
    std::string url =
        "host=127.0.0.1 port=" + client_->Scalar("SELECT current_setting('port')").value_or("0") +
        " dbname=" + client_->Scalar("SELECT current_database()").value() + " user=" + role;
    auto options = ParsePostgresqlOptions(
        JsonObject{{"connectionString", url}, {"schema", schema_}, {"tombstones", false}});
    ASSERT_TRUE(options);
    PostgresqlDriver driver(std::move(*options), DriverContext{});
    auto results = driver.Deliver(std::vector{Change("people", "u1", 1, Action::kInsert)}, 5s);
    EXPECT_EQ(results[0].outcome, Outcome::kUnauthorized) << results[0].error;
    EXPECT_NE(results[0].error.find("42501"), std::string::npos) << results[0].error;
  }
  client_->Query("DROP ROLE " + role);
}

TEST_F(PostgresqlDriverTest, UnreachableServerIsRetryable) {
  auto options = ParsePostgresqlOptions(
      Object(R"({"connectionString":"postgresql://u:pw12345@127.0.0.1:1/db"})"));
  ASSERT_TRUE(options);
  PostgresqlDriver driver(std::move(*options), DriverContext{});
  auto started = driver.Start();
  ASSERT_FALSE(started);
  EXPECT_EQ(started.error().code, ErrorCode::kUnavailable);
  auto results = driver.Deliver(std::vector{Change("people", "u1", 1, Action::kInsert)}, 2s);
  EXPECT_EQ(results[0].outcome, Outcome::kRetryable);
  EXPECT_NE(results[0].error.find("postgresql://u:***@127.0.0.1:1/db"), std::string::npos)
      << results[0].error;
  EXPECT_EQ(results[0].error.find("pw12345"), std::string::npos);
}

TEST_F(PostgresqlDriverTest, ALockedTableMakesTheBatchRetryableWithinTheTimeout) {
  auto driver = MakeDriver();
  ExpectAllDelivered(
      driver->Deliver(std::vector{Change("people", "u1", 1, Action::kInsert, R"({"a":1})")}, 5s));
  client_->Query("BEGIN");
  client_->Query("LOCK TABLE " + Table("people") + " IN ACCESS EXCLUSIVE MODE");
  auto started = std::chrono::steady_clock::now();
  auto results =
      driver->Deliver(std::vector{Change("people", "u1", 2, Action::kUpdate, R"({"a":2})")}, 500ms);
  auto took = std::chrono::steady_clock::now() - started;
  client_->Query("ROLLBACK");
  EXPECT_EQ(results[0].outcome, Outcome::kRetryable) << results[0].error;
  EXPECT_LT(took, 3s);
  ExpectAllDelivered(
      driver->Deliver(std::vector{Change("people", "u1", 2, Action::kUpdate, R"({"a":2})")}, 5s));
  EXPECT_EQ(Value("people", "a", "u1"), "2");
}

TEST_F(PostgresqlDriverTest, ADeadlockIsRetryableAndTheRetryDelivers) {
  auto driver = MakeDriver();
  ExpectAllDelivered(
      driver->Deliver(std::vector{Change("people", "a", 1, Action::kInsert, R"({"n":1})"),
                                  Change("people", "b", 1, Action::kInsert, R"({"n":1})")},
                      5s));
  // The driver's upsert locks a, then waits for b, which `locker` holds while it waits for a.
  PgClient locker(url_);
  locker.Query("BEGIN");
  locker.Query("UPDATE " + Table("people") + " SET n = 0 WHERE id = 'b'");
  std::thread other([&] {
    std::this_thread::sleep_for(300ms);
    locker.Query("UPDATE " + Table("people") + " SET n = 0 WHERE id = 'a'");
  });
  std::vector batch{Change("people", "a", 2, Action::kUpdate, R"({"n":2})"),
                    Change("people", "b", 2, Action::kUpdate, R"({"n":2})")};
  auto results = driver->Deliver(batch, 10s);
  other.join();
  locker.Query("ROLLBACK");
  ASSERT_EQ(results[0].outcome, Outcome::kRetryable) << results[0].error;
  EXPECT_NE(results[0].error.find("40P01"), std::string::npos) << results[0].error;
  ExpectAllDelivered(driver->Deliver(batch, 5s));
  EXPECT_EQ(Value("people", "n", "a"), "2");
  EXPECT_EQ(Value("people", "n", "b"), "2");
}

TEST_F(PostgresqlDriverTest, ASerializationFailureIsRetryableAndTheRetryDelivers) {
  std::string separator = url_.find('?') == std::string::npos ? "?" : "&";
  auto driver = MakeDriver(
      JsonObject{{"connectionString",
                  url_ + separator + "options=-c%20default_transaction_isolation%3Dserializable"}});
  ExpectAllDelivered(
      driver->Deliver(std::vector{Change("people", "a", 1, Action::kInsert, R"({"n":1})")}, 5s));
  // A concurrent writer commits a change to the row the driver's transaction waits for.
  PgClient writer(url_);
  writer.Query("BEGIN");
  writer.Query("UPDATE " + Table("people") + " SET n = 0 WHERE id = 'a'");
  std::thread committer([&] {
    std::this_thread::sleep_for(300ms);
    writer.Query("COMMIT");
  });
  std::vector batch{Change("people", "a", 2, Action::kUpdate, R"({"n":2})")};
  auto results = driver->Deliver(batch, 10s);
  committer.join();
  ASSERT_EQ(results[0].outcome, Outcome::kRetryable) << results[0].error;
  EXPECT_NE(results[0].error.find("40001"), std::string::npos) << results[0].error;
  ExpectAllDelivered(driver->Deliver(batch, 5s));
  EXPECT_EQ(Value("people", "n", "a"), "2");
}

TEST_F(PostgresqlDriverTest, RecoversWhenTheServerTerminatesTheConnection) {
  std::string application = "pgtest_" + testing::UniqueToken();
  std::string separator = url_.find('?') == std::string::npos ? "?" : "&";
  auto driver = MakeDriver(
      JsonObject{{"connectionString", url_ + separator + "application_name=" + application}});
  ExpectAllDelivered(
      driver->Deliver(std::vector{Change("people", "u1", 1, Action::kInsert, R"({"a":1})")}, 5s));
  EXPECT_EQ(client_->Scalar("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                            "WHERE application_name = $1",
                            {application}),
            "1");
  std::this_thread::sleep_for(100ms);
  // The dead connection (57P01) is noticed and replaced within the call.
  auto results =
      driver->Deliver(std::vector{Change("people", "u2", 1, Action::kInsert, R"({"a":2})")}, 5s);
  ExpectAllDelivered(results);
  EXPECT_EQ(Count("people"), "2");
  EXPECT_EQ(driver->stats().connections_opened, 2u);
}

TEST_F(PostgresqlDriverTest, ReplicatesThroughThePluginEndToEnd) {
  testing::TempDir state;
  DatabaseOptions database_options;
  database_options.state_dir = state.str();
  auto database = Database::Open(NewMemoryStore(), database_options);
  ASSERT_TRUE(database) << database.error().ToString();
  ResourceDefinition users;
  users.name = "users";
  users.attributes = Object(R"({"name":"string|maxlength:50","age":"integer"})");
  users.timestamps = true;
  auto resource = (*database)->CreateResource(users);
  ASSERT_TRUE(resource) << resource.error().ToString();

  ReplicatorPluginOptions options;
  options.linger_ms = 1;
  options.retry_base_ms = 5;
  options.max_backoff_ms = 50;
  ReplicatorConfig replicator;
  replicator.id = "pg";
  replicator.driver = "postgres";  // the alias, found in the registry
  auto mapping = ResourceMapping::FromJson(Json(Object(R"({"users":"people"})")));
  ASSERT_TRUE(mapping) << mapping.error().ToString();
  replicator.resources = std::move(*mapping);
  replicator.config = Config();
  options.replicators.push_back(std::move(replicator));
  auto plugin = std::make_shared<ReplicatorPlugin>(std::move(options));
  S3DB_ASSERT_OK((*database)->UsePlugin(plugin));

  ASSERT_TRUE((*resource)->Insert(Object(R"({"id":"u1","name":"Ana","age":41})")));
  ASSERT_TRUE((*resource)->Insert(Object(R"({"id":"u2","name":"Bo","age":7})")));
  ASSERT_TRUE((*resource)->Update("u1", Object(R"({"age":42})")));
  S3DB_ASSERT_OK((*resource)->Delete("u2"));
  S3DB_ASSERT_OK(plugin->WaitIdle(20s));

  EXPECT_EQ(Count("people"), "1");
  EXPECT_EQ(Value("people", "name", "u1"), "Ana");
  EXPECT_EQ(Value("people", "age", "u1"), "42");
  EXPECT_EQ(Value("people", "_s3db_rev", "u1"), Value("people", "_rev", "u1"));
  auto types = ColumnTypes("people");
  EXPECT_EQ(types["name"], "character varying(50)");
  EXPECT_EQ(types["age"], "bigint");
  EXPECT_EQ(types["createdAt"], "timestamp with time zone");
  S3DB_EXPECT_OK((*database)->Close());
}

// A memory:// database with a "users" resource whose changes the ReplicatorPlugin sends to
// PostgreSQL (replicator id "pg").
struct Pipeline {
  testing::TempDir state;
  std::unique_ptr<Database> database;
  Resource* users = nullptr;
  std::shared_ptr<ReplicatorPlugin> plugin;

  // `attributes` of users; `mapping` of the replicator; `config` of the driver. With
  // `enabled` false the replicator waits for EnableReplicator, so that changes written
  // before then reach the driver as one batch.
  static std::unique_ptr<Pipeline> Open(std::string_view attributes, ResourceMapping mapping,
                                        JsonObject config, bool enabled = true,
                                        int max_backoff_ms = 50) {
    auto pipeline = std::make_unique<Pipeline>();
    DatabaseOptions database_options;
    database_options.state_dir = pipeline->state.str();
    auto database = Database::Open(NewMemoryStore(), database_options);
    EXPECT_TRUE(database) << database.error().ToString();
    if (!database) return nullptr;
    pipeline->database = std::move(*database);
    ResourceDefinition users;
    users.name = "users";
    users.attributes = Object(attributes);
    auto resource = pipeline->database->CreateResource(users);
    EXPECT_TRUE(resource) << resource.error().ToString();
    if (!resource) return nullptr;
    pipeline->users = *resource;

    ReplicatorPluginOptions options;
    options.linger_ms = 1;
    options.retry_base_ms = 5;
    options.max_backoff_ms = max_backoff_ms;
    ReplicatorConfig replicator;
    replicator.id = "pg";
    replicator.driver = "postgresql";
    replicator.resources = std::move(mapping);
    replicator.config = std::move(config);
    replicator.enabled = enabled;
    options.replicators.push_back(std::move(replicator));
    pipeline->plugin = std::make_shared<ReplicatorPlugin>(std::move(options));
    auto used = pipeline->database->UsePlugin(pipeline->plugin);
    EXPECT_TRUE(used) << used.error().ToString();
    if (!used) return nullptr;
    return pipeline;
  }

  ReplicatorStats Stats() const {
    auto stats = plugin->GetReplicatorStats("pg");
    EXPECT_TRUE(stats) << stats.error().ToString();
    return stats ? *stats : ReplicatorStats{};
  }

  // Polls the stats until `done` holds or `timeout` passes; returns the last stats.
  template <typename Predicate>
  ReplicatorStats WaitForStats(Predicate done, std::chrono::milliseconds timeout = 20s) const {
    auto until = std::chrono::steady_clock::now() + timeout;
    ReplicatorStats stats = Stats();
    while (!done(stats) && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(10ms);
      stats = Stats();
    }
    return stats;
  }

  ~Pipeline() {
    if (database) (void)database->Close();
  }
};

// A PostgreSQL cluster of this test's own, in a temporary folder, on a free port.
class PrivatePostgres {
 public:
  // Empty when it could not start; why() says why.
  // `password`: non-empty makes the cluster check passwords (scram-sha-256) for user postgres.
  static std::unique_ptr<PrivatePostgres> Start(std::string* why, std::string password = "") {
    std::string bin = testing::EnvOrEmpty("S3DB_TEST_PG_BIN");
    if (bin.empty()) bin = "/usr/lib/postgresql/15/bin";
    if (!std::filesystem::exists(bin + "/pg_ctl")) {
      *why = bin + "/pg_ctl not found (set S3DB_TEST_PG_BIN)";
      return nullptr;
    }
    if (geteuid() != 0) {
      *why = "needs root, to run initdb as the postgres user";
      return nullptr;
    }
    auto server = std::unique_ptr<PrivatePostgres>(new PrivatePostgres(bin));
    std::filesystem::permissions(server->dir_.path(), std::filesystem::perms::all);
    server->port_ = FreePort();
    if (server->port_ == 0) {
      *why = "no free port on 127.0.0.1";
      return nullptr;
    }
    std::string data = server->dir_.str() + "/data";
    std::string log = server->dir_.str() + "/log";
    std::string auth = "-A trust";
    if (!password.empty()) {
      std::string pwfile = server->dir_.str() + "/pwfile";
      std::ofstream(pwfile) << password << "\n";
      std::filesystem::permissions(pwfile, std::filesystem::perms::owner_read |
                                               std::filesystem::perms::group_read |
                                               std::filesystem::perms::others_read);
      auth = "-A scram-sha-256 --pwfile=" + pwfile;
    }
    if (!server->Run("initdb -D " + data + " -U postgres " + auth +
                     " --no-sync -E UTF8 --locale=C")) {
      *why = "initdb failed: " + server->Log();
      return nullptr;
    }
    if (!server->Run("pg_ctl -D " + data + " -l " + log + " -w -t 60 -o \"-p " +
                     std::to_string(server->port_) + " -k " + server->dir_.str() +
                     " -c listen_addresses=127.0.0.1 -c fsync=off\" start")) {
      *why = "pg_ctl start failed: " + server->Log();
      return nullptr;
    }
    server->started_ = true;
    return server;
  }

  ~PrivatePostgres() {
    if (started_) Run("pg_ctl -D " + dir_.str() + "/data -m immediate -w -t 60 stop");
  }

  std::string url(const std::string& password = "") const {
    std::string user = password.empty() ? "postgres" : "postgres:" + password;
    return "postgresql://" + user + "@127.0.0.1:" + std::to_string(port_) + "/postgres";
  }
  // A fast restart: every open connection is cut.
  bool Restart() { return Run("pg_ctl -D " + dir_.str() + "/data -m fast -w -t 60 restart"); }

 private:
  explicit PrivatePostgres(std::string bin) : bin_(std::move(bin)) {}

  bool Run(const std::string& command) {
    std::string line = "runuser -u postgres -- " + bin_ + "/" + command + " >>" + dir_.str() +
                       "/commands.log 2>&1";
    return std::system(line.c_str()) == 0;
  }
  std::string Log() const {
    std::ifstream in(dir_.str() + "/commands.log");
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  static int FreePort() {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return 0;
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    int port = 0;
    if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
        getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
      port = ntohs(address.sin_port);
    }
    close(fd);
    return port;
  }

  std::string bin_;
  testing::TempDir dir_;
  int port_ = 0;
  bool started_ = false;
};

TEST_F(PostgresqlDriverTest, ServerRestartMidStreamLosesNothing) {
  std::string why;
  auto server = PrivatePostgres::Start(&why);
  if (!server) {
    if (testing::InCi()) FAIL() << "cannot start a private PostgreSQL: " << why;
    GTEST_SKIP() << "cannot start a private PostgreSQL: " << why;
  }
  url_ = server->url();
  client_ = std::make_unique<PgClient>(url_);
  ASSERT_TRUE(client_->ok()) << client_->error();
  auto driver = MakeDriver();
  constexpr int kBatches = 60;
  constexpr int kBatchSize = 25;
  std::atomic<int> delivered_batches{0};
  std::atomic<bool> restarted{false};
  std::thread restarter([&] {
    while (delivered_batches.load() < 10) std::this_thread::sleep_for(5ms);
    restarted = server->Restart();
  });

  // The engine's part, in miniature: deliver each batch, retrying what is retryable.
  int retryable_answers = 0;
  for (int b = 0; b < kBatches; ++b) {
    std::vector<DeliveryItem> batch;
    for (int i = 0; i < kBatchSize; ++i) {
      std::string id = "r" + std::to_string(b * kBatchSize + i);
      batch.push_back(
          Change("stream", id, 1, Action::kInsert, "{\"batch\":" + std::to_string(b) + "}"));
    }
    auto give_up = std::chrono::steady_clock::now() + 60s;
    while (!batch.empty()) {
      auto results = driver->Deliver(batch, 2s);
      std::vector<DeliveryItem> again;
      for (std::size_t i = 0; i < results.size(); ++i) {
        ASSERT_NE(results[i].outcome, Outcome::kPermanent) << results[i].error;
        ASSERT_NE(results[i].outcome, Outcome::kUnauthorized) << results[i].error;
        if (results[i].outcome == Outcome::kRetryable) again.push_back(batch[i]);
      }
      if (!again.empty()) {
        ++retryable_answers;
        ASSERT_LT(std::chrono::steady_clock::now(), give_up) << "the server did not come back";
        std::this_thread::sleep_for(100ms);
      }
      batch = std::move(again);
    }
    ++delivered_batches;
    std::this_thread::sleep_for(10ms);
  }
  restarter.join();
  ASSERT_TRUE(restarted) << "pg_ctl restart failed";

  PgClient after(url_);
  ASSERT_TRUE(after.ok()) << after.error();
  EXPECT_EQ(after.Scalar("SELECT count(*) FROM " + Table("stream")),
            std::to_string(kBatches * kBatchSize));
  EXPECT_EQ(after.Scalar("SELECT count(*) FROM " + Table("stream") +
                         " WHERE batch = substr(id, 2)::int / " + std::to_string(kBatchSize)),
            std::to_string(kBatches * kBatchSize));
  EXPECT_GE(driver->stats().connections_opened, 2u);
  RecordProperty("retryable_answers", retryable_answers);
  client_.reset();  // its schema goes with the private cluster
}

TEST_F(PostgresqlDriverTest, AWrongPasswordPausesWithAClearMessageAndNoSecret) {
  std::string why;
  auto server = PrivatePostgres::Start(&why, "right-pw-7731");
  if (!server) {
    if (testing::InCi()) FAIL() << "cannot start a private PostgreSQL: " << why;
    GTEST_SKIP() << "cannot start a private PostgreSQL: " << why;
  }
  url_ = server->url("wrong-pw-5512");
  auto driver = MakeDriver();
  ASSERT_NE(driver, nullptr);
  auto started = driver->Start();
  ASSERT_FALSE(started.has_value()) << "a wrong password must not connect";
  EXPECT_EQ(started.error().code, ErrorCode::kUnauthorized) << started.error().ToString();
  EXPECT_NE(started.error().message.find("password authentication failed"), std::string::npos)
      << started.error().message;
  EXPECT_EQ(started.error().message.find("wrong-pw-5512"), std::string::npos)
      << started.error().message;
  auto results = driver->Deliver(std::vector<DeliveryItem>{Change("t", "r1", 1, Action::kInsert)},
                                 std::chrono::seconds(10));
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].outcome, Outcome::kUnauthorized) << results[0].error;
  EXPECT_EQ(results[0].error.find("wrong-pw-5512"), std::string::npos) << results[0].error;

  url_ = server->url("right-pw-7731");
  client_ = std::make_unique<PgClient>(url_);
  ASSERT_TRUE(client_->ok()) << client_->error();
  auto fixed = MakeDriver();
  S3DB_ASSERT_OK(fixed->Start());
  auto delivered = fixed->Deliver(std::vector<DeliveryItem>{Change("t", "r1", 1, Action::kInsert)},
                                  std::chrono::seconds(10));
  ExpectAllDelivered(delivered);
  EXPECT_EQ(client_->Scalar("SELECT count(*) FROM " + Table("t")), "1");
  client_.reset();
}

TEST_F(PostgresqlDriverTest, AWrongPasswordPausesThePluginUntilTheServerAcceptsIt) {
  std::string why;
  auto server = PrivatePostgres::Start(&why, "right-pw-4417");
  if (!server) {
    if (testing::InCi()) FAIL() << "cannot start a private PostgreSQL: " << why;
    GTEST_SKIP() << "cannot start a private PostgreSQL: " << why;
  }
  url_ = server->url("wrong-pw-8830");
  auto pipeline =
      Pipeline::Open(R"({"name":"string","age":"integer"})",
                     std::move(ResourceMapping().Add("users", "people")), Config(), true, 200);
  ASSERT_TRUE(pipeline);
  Resource& users = *pipeline->users;
  ASSERT_TRUE(users.Insert(Object(R"({"id":"u1","name":"Ana","age":41})")));
  ASSERT_TRUE(users.Insert(Object(R"({"id":"u2","name":"Bo","age":7})")));

  // Paused as unauthorized, with the server's reason and the fix, without the password.
  ReplicatorStats paused = pipeline->WaitForStats([](const ReplicatorStats& stats) {
    return stats.state == ReplicatorState::kPaused && stats.last_error.has_value();
  });
  ASSERT_EQ(paused.state, ReplicatorState::kPaused);
  EXPECT_EQ(paused.pause_reason, "unauthorized");
  ASSERT_TRUE(paused.last_error.has_value());
  const std::string& message = paused.last_error->message;
  EXPECT_NE(message.find("password authentication failed for user \"postgres\""),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("fix the user or password in config.connectionString"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("postgresql://postgres:***@127.0.0.1:"), std::string::npos) << message;
  EXPECT_EQ(message.find("wrong-pw-8830"), std::string::npos) << message;
  EXPECT_NE(paused.last_error->description.find("refused the credentials"), std::string::npos)
      << paused.last_error->description;

  // Changes written while paused are kept; the probes go on, nothing is dead-lettered.
  ASSERT_TRUE(users.Update("u1", Object(R"({"age":42})")));
  ASSERT_TRUE(users.Insert(Object(R"({"id":"u3","name":"Cy","age":3})")));
  S3DB_ASSERT_OK(users.Delete("u2"));
  std::this_thread::sleep_for(600ms);
  ReplicatorStats still = pipeline->Stats();
  EXPECT_EQ(still.state, ReplicatorState::kPaused);
  EXPECT_EQ(still.pause_reason, "unauthorized");
  EXPECT_EQ(still.delivered, 0u);
  EXPECT_EQ(still.dead_letter_count, 0u);
  EXPECT_EQ(still.lag_changes, 5u);

  // The server now accepts the configured password: the replicator resumes by itself.
  {
    PgClient admin(server->url("right-pw-4417"));
    ASSERT_TRUE(admin.ok()) << admin.error();
    admin.Query("ALTER ROLE postgres PASSWORD 'wrong-pw-8830'");
  }
  S3DB_ASSERT_OK(pipeline->plugin->WaitIdle(30s));
  client_ = std::make_unique<PgClient>(url_);
  ASSERT_TRUE(client_->ok()) << client_->error();
  EXPECT_EQ(Count("people"), "2");
  EXPECT_EQ(Value("people", "age", "u1"), "42");
  EXPECT_EQ(Value("people", "name", "u3"), "Cy");
  EXPECT_EQ(Value("people", "name", "u2"), std::nullopt);
  ReplicatorStats after = pipeline->Stats();
  EXPECT_EQ(after.state, ReplicatorState::kRunning);
  EXPECT_EQ(after.dead_letter_count, 0u);
  EXPECT_EQ(after.lag_changes, 0u);
  auto letters = pipeline->plugin->ListDeadLetters("pg");
  S3DB_ASSERT_OK(letters);
  EXPECT_TRUE(letters->empty());
  pipeline.reset();
  client_.reset();  // its schema goes with the private cluster
}

TEST_F(PostgresqlDriverTest, ASchemaMismatchIsDeadLetteredWhileItsBatchIsDelivered) {
  // An existing table whose "ref" column cannot take what the source allows (any string).
  client_->Query("CREATE SCHEMA " + postgresql::QuoteIdentifier(schema_));
  client_->Query("CREATE TABLE " + Table("people") +
                 " (id text PRIMARY KEY, name text, ref uuid)");
  auto pipeline =
      Pipeline::Open(R"({"name":"string","ref":"string|optional:true"})",
                     std::move(ResourceMapping().Add("users", "people")), Config(), false);
  ASSERT_TRUE(pipeline);
  Resource& users = *pipeline->users;
  ASSERT_TRUE(users.Insert(
      Object(R"({"id":"u1","name":"Ana","ref":"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"})")));
  ASSERT_TRUE(users.Insert(Object(R"({"id":"u2","name":"Bo","ref":"not-a-uuid"})")));
  ASSERT_TRUE(users.Insert(Object(R"({"id":"u3","name":"Cy"})")));
  ASSERT_TRUE(users.Insert(Object(R"({"id":"u4","name":"Di"})")));
  S3DB_ASSERT_OK(pipeline->plugin->EnableReplicator("pg"));
  S3DB_ASSERT_OK(pipeline->plugin->WaitIdle(20s));

  auto letters = pipeline->plugin->ListDeadLetters("pg");
  S3DB_ASSERT_OK(letters);
  ASSERT_EQ(letters->size(), 1u);
  const DeadLetter& letter = (*letters)[0];
  EXPECT_EQ(letter.reason, "schema_mismatch");
  EXPECT_EQ(letter.change.id, "u2");
  EXPECT_EQ(letter.destination, "people");
  EXPECT_EQ(letter.attempts, 1);
  // The server's own words, its SQLSTATE and the column.
  EXPECT_NE(letter.error.find("invalid input syntax for type uuid: \"not-a-uuid\""),
            std::string::npos)
      << letter.error;
  EXPECT_NE(letter.error.find("22P02"), std::string::npos) << letter.error;

  EXPECT_EQ(Count("people"), "3");
  EXPECT_EQ(Value("people", "name", "u1"), "Ana");
  EXPECT_EQ(Value("people", "ref", "u1"), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
  EXPECT_EQ(Value("people", "name", "u3"), "Cy");
  EXPECT_EQ(Value("people", "name", "u4"), "Di");
  EXPECT_EQ(Value("people", "name", "u2"), std::nullopt);
  ReplicatorStats stats = pipeline->Stats();
  EXPECT_EQ(stats.state, ReplicatorState::kRunning);
  EXPECT_EQ(stats.dead_letter_count, 1u);
  EXPECT_EQ(stats.delivered, 3u);
  // One batch: the server refused it, the driver wrote it again change by change.
  EXPECT_EQ(stats.driver_counters["batches"], 1u);
  EXPECT_EQ(stats.driver_counters["row_by_row_fallbacks"], 1u);

  // The replicator goes on.
  ASSERT_TRUE(users.Update("u1", Object(R"({"name":"Ana B"})")));
  S3DB_ASSERT_OK(pipeline->plugin->WaitIdle(20s));
  EXPECT_EQ(Value("people", "name", "u1"), "Ana B");
  EXPECT_EQ(pipeline->Stats().dead_letter_count, 1u);
}

TEST_F(PostgresqlDriverTest, ATransformAndInsertOnlyActionsShapeTheTable) {
  Destination destination;
  destination.resource = "people";
  destination.actions = {Action::kInsert};
  destination.transform = [](const JsonObject& data) -> std::optional<JsonObject> {
    JsonObject out;
    out["display_name"] = "Dr. " + std::string(data.at("name").as_string());
    out["age_next_year"] = data.at("age").to_number<std::int64_t>() + 1;
    return out;
  };
  auto pipeline = Pipeline::Open(R"({"name":"string","age":"integer","secret":"string"})",
                                 std::move(ResourceMapping().Add("users", destination)), Config());
  ASSERT_TRUE(pipeline);
  Resource& users = *pipeline->users;
  ASSERT_TRUE(users.Insert(Object(R"({"id":"u1","name":"Ana","age":41,"secret":"s1"})")));
  ASSERT_TRUE(users.Insert(Object(R"({"id":"u2","name":"Bo","age":7,"secret":"s2"})")));
  ASSERT_TRUE(users.Update("u1", Object(R"({"age":50})")));
  S3DB_ASSERT_OK(users.Delete("u2"));
  S3DB_ASSERT_OK(pipeline->plugin->WaitIdle(20s));

  // Only the transform's fields, typed by their values; the source's attributes are not used.
  auto types = ColumnTypes("people");
  std::string listed;
  for (const auto& [column, type] : types) listed += column + ": " + type + "; ";
  EXPECT_EQ(types.size(), 4u) << listed;
  EXPECT_EQ(types["id"], "text not null");
  EXPECT_EQ(types["display_name"], "text");
  EXPECT_EQ(types["age_next_year"], "bigint");
  EXPECT_EQ(types.count("secret"), 0u);
  EXPECT_EQ(types.count("name"), 0u);
  // Inserts only: the update and the delete were filtered.
  EXPECT_EQ(Count("people"), "2");
  EXPECT_EQ(Value("people", "display_name", "u1"), "Dr. Ana");
  EXPECT_EQ(Value("people", "age_next_year", "u1"), "42");
  EXPECT_EQ(Value("people", "age_next_year", "u2"), "8");
  ReplicatorStats stats = pipeline->Stats();
  EXPECT_EQ(stats.delivered, 2u);
  EXPECT_EQ(stats.filtered, 2u);
  EXPECT_EQ(stats.dead_letter_count, 0u);
}

TEST_F(PostgresqlDriverTest, ADestinationSchemaAndTableOptionPlaceTheRows) {
  const std::string other = schema_ + "_other";
  extra_schemas_.push_back(other);
  auto mapping = ResourceMapping::FromJson(
      Json(Object(R"({"users":["people",{"table":"people_copy","schema":")" + other +
                  R"(","actions":["insert","delete"]}]})")),
      "replicators[0].resources", nullptr, DestinationKeys("postgresql"));
  ASSERT_TRUE(mapping) << mapping.error().ToString();
  auto pipeline =
      Pipeline::Open(R"({"name":"string"})", std::move(*mapping), Config());
  ASSERT_TRUE(pipeline);
  Resource& users = *pipeline->users;
  ASSERT_TRUE(users.Insert(Object(R"({"id":"u1","name":"Ana"})")));
  ASSERT_TRUE(users.Insert(Object(R"({"id":"u2","name":"Bo"})")));
  ASSERT_TRUE(users.Update("u1", Object(R"({"name":"Ana B"})")));
  S3DB_ASSERT_OK(users.Delete("u2"));
  S3DB_ASSERT_OK(pipeline->plugin->WaitIdle(20s));

  // The first destination: config.schema, table named after the destination.
  EXPECT_EQ(Count("people"), "1");
  EXPECT_EQ(Value("people", "name", "u1"), "Ana B");
  // The second: its own schema (created), its own table name, inserts and deletes only.
  std::string copy = postgresql::QualifiedName(other, "people_copy");
  EXPECT_EQ(client_->Scalar("SELECT count(*) FROM " + copy), "1");
  EXPECT_EQ(client_->Scalar("SELECT name FROM " + copy + " WHERE id = 'u1'"), "Ana");
  EXPECT_EQ(client_->Scalar("SELECT to_regclass($1) IS NULL", {Table("people_copy")}), "t");
  EXPECT_EQ(client_->Scalar("SELECT to_regclass($1) IS NULL",
                            {postgresql::QualifiedName(other, "people")}),
            "t");
  // The other schema got its own tombstone for the delete.
  EXPECT_EQ(client_->Scalar("SELECT count(*) FROM " +
                                postgresql::QualifiedName(other, "_s3db_tombstones") +
                                " WHERE table_name = 'people_copy' AND id = 'u2'"),
            "1");
  EXPECT_EQ(pipeline->Stats().dead_letter_count, 0u);
}

TEST_F(PostgresqlDriverTest, WithoutASchemaOptionTablesGoToTheDefaultSchema) {
  // No "schema" anywhere: the connection's current_schema(), public on a fresh database.
  const std::string table = schema_ + "_people";
  auto pipeline = Pipeline::Open(R"({"name":"string"})",
                                 std::move(ResourceMapping().Add("users", table)),
                                 JsonObject{{"connectionString", url_}});
  ASSERT_TRUE(pipeline);
  ASSERT_EQ(client_->Scalar("SELECT current_schema()"), "public");
  Resource& users = *pipeline->users;
  ASSERT_TRUE(users.Insert(Object(R"({"id":"u1","name":"Ana"})")));
  ASSERT_TRUE(users.Insert(Object(R"({"id":"u2","name":"Bo"})")));
  S3DB_ASSERT_OK(users.Delete("u2"));
  S3DB_ASSERT_OK(pipeline->plugin->WaitIdle(20s));
  std::string qualified = postgresql::QualifiedName("public", table);
  EXPECT_EQ(client_->Scalar("SELECT count(*) FROM " + qualified), "1");
  EXPECT_EQ(client_->Scalar("SELECT name FROM " + qualified + " WHERE id = 'u1'"), "Ana");
  EXPECT_EQ(client_->Scalar("SELECT count(*) FROM public._s3db_tombstones "
                            "WHERE table_name = $1 AND id = 'u2'",
                            {table}),
            "1");
  EXPECT_EQ(client_->Scalar("SELECT to_regnamespace($1) IS NULL", {schema_}), "t");
  EXPECT_EQ(pipeline->Stats().dead_letter_count, 0u);
  pipeline.reset();
  client_->Query("DROP TABLE " + qualified);
  client_->Query("DELETE FROM public._s3db_tombstones WHERE table_name = $1", {table});
}

}  // namespace
}  // namespace s3db::replicator
