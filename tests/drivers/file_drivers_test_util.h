// Helpers shared by the file driver tests: changes, a driver context, CSV / JSONL parsing.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "drivers/files/file_driver.h"
#include "formats/formats_test_util.h"
#include "s3db/replicator/driver.h"
#include "test_util.h"

namespace s3db::replicator::file_testing {

inline constexpr std::int64_t kOct20At2330Utc = 1761003000000;  // 2025-10-20T23:30:00.000Z

inline JsonObject Obj(std::string_view json) {
  auto parsed = ParseJsonObject(json);
  EXPECT_TRUE(parsed.has_value()) << json;
  return parsed ? *parsed : JsonObject();
}

inline DeliveryItem Change(const std::string& id, std::uint64_t rev, Action action,
                           std::string_view data, std::int64_t at = kOct20At2330Utc,
                           const std::string& resource = "users") {
  DeliveryItem item;
  item.id = id;
  item.revision = rev;
  item.action = action;
  item.source_resource = resource;
  item.target = resource;
  item.change_id = resource + ":" + id + ":" + std::to_string(rev);
  item.data = Obj(data);
  item.timestamp_ms = at;
  return item;
}

// A context like the plugin's: a state folder and the "users" resource's definition.
inline DriverContext UsersContext(const std::string& state_dir) {
  DriverContext context;
  context.replicator_id = "files-test";
  context.state_dir = state_dir;
  context.resource_definition = [](std::string_view resource) -> std::optional<JsonObject> {
    if (resource != "users") return std::nullopt;
    return Obj(R"({"attributes": {"name": "string|required", "email": "email"}})");
  };
  return context;
}

// A file driver made from `config` and started; null (and a test failure) when either fails.
inline std::unique_ptr<Driver> StartedFileDriver(std::string_view format, const JsonObject& config,
                                                 const DriverContext& context) {
  auto driver = NewFileDriver(format, config, context);
  EXPECT_TRUE(driver.has_value()) << driver.error().ToString();
  if (!driver) return nullptr;
  auto started = (*driver)->Start();
  EXPECT_TRUE(started.has_value()) << started.error().ToString();
  return started ? std::move(*driver) : nullptr;
}

inline void ExpectAllDelivered(const std::vector<DeliveryResult>& results) {
  for (const auto& result : results) {
    EXPECT_EQ(result.outcome, Outcome::kDelivered) << result.error;
  }
}

using formats::testing::ParseCsv;  // CRLF record ends, quoted fields

inline std::vector<JsonObject> ParseJsonl(const std::string& text) {
  std::vector<JsonObject> rows;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    auto row = ParseJsonObject(std::string_view(text).substr(start, end - start));
    EXPECT_TRUE(row.has_value()) << text.substr(start, end - start);
    if (row) rows.push_back(*row);
    start = end + 1;
  }
  return rows;
}

// The value of `column` in every row, in order.
inline std::vector<std::string> Column(const std::vector<JsonObject>& rows,
                                       const std::string& column) {
  std::vector<std::string> values;
  for (const auto& row : rows) {
    const Json* value = row.if_contains(column);
    values.push_back(value == nullptr     ? "<missing>"
                     : value->is_string() ? std::string(value->get_string())
                                          : ToJson(*value));
  }
  return values;
}

// Sheet name -> rows (the header row first), as exceljs reads them through
// tests/formats/read_xlsx.mjs: text as strings, numbers, booleans, dates as ISO strings, empty
// cells as null, formulas as {"formula": text}. Null when the reader is missing (skip).
inline std::optional<std::map<std::string, std::vector<std::vector<Json>>>> ReadWorkbook(
    const std::string& file) {
  std::string why_not;
  auto reader = formats::testing::FindReaderScript({"exceljs", "jszip"}, "read_xlsx.mjs", why_not);
  if (!reader) {
    if (s3db::testing::InCi()) ADD_FAILURE() << why_not;
    return std::nullopt;
  }
  Json read = formats::testing::RunReader(*reader, "rows", file);
  std::map<std::string, std::vector<std::vector<Json>>> out;
  if (!read.is_object()) return out;
  auto value = [](const Json& cell) -> Json {
    if (!cell.is_object()) return nullptr;
    const Json& v = cell.at("v");
    if (cell.at("t") == Json("f")) return JsonObject{{"formula", v}};
    return v;
  };
  for (const Json& sheet : read.at("sheets").as_array()) {
    auto& rows = out[std::string(sheet.at("name").as_string())];
    std::vector<Json> header;
    for (const Json& cell : sheet.at("header").as_array()) header.push_back(cell.at("value"));
    rows.push_back(std::move(header));
    for (const Json& row : sheet.at("rows").as_array()) {
      std::vector<Json> cells;
      for (const Json& cell : row.as_array()) cells.push_back(value(cell));
      rows.push_back(std::move(cells));
    }
  }
  return out;
}

}  // namespace s3db::replicator::file_testing
