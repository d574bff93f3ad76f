#include "formats/column_set.h"

#include <gtest/gtest.h>

namespace s3db::formats {
namespace {

std::vector<std::string> Describe(const ColumnSet& columns) {
  std::vector<std::string> out;
  for (const ColumnSpec& spec : columns.columns()) {
    out.push_back(spec.name + ":" + std::string(ColumnTypeName(spec.type)));
  }
  return out;
}

TEST(FormatsColumnSet, DeclaredColumnsComeFirstThenFieldsInFirstSeenOrder) {
  auto columns = ColumnSet::Make({{"id", ColumnType::kString}, {"age", ColumnType::kInteger}});
  ASSERT_TRUE(columns);
  auto row = ParseJsonObject(R"({"zeta":1,"age":2,"alpha":3})");
  ASSERT_TRUE(row);
  EXPECT_EQ(columns->AddFieldsOf(*row), 2u);
  EXPECT_EQ(columns->AddFieldsOf(*row), 0u);
  EXPECT_EQ(Describe(*columns),
            (std::vector<std::string>{"id:string", "age:integer", "zeta:any", "alpha:any"}));
  EXPECT_EQ(columns->IndexOf("alpha"), 3u);
  EXPECT_FALSE(columns->IndexOf("missing").has_value());

  std::vector<const Json*> cells;
  columns->Lookup(*row, cells);
  ASSERT_EQ(cells.size(), 4u);
  EXPECT_EQ(cells[0], nullptr);
  EXPECT_EQ(*cells[1], 2);
  EXPECT_EQ(*cells[2], 1);
}

TEST(FormatsColumnSet, RejectsADuplicateDeclaredName) {
  auto columns = ColumnSet::Make({{"id"}, {"id"}});
  ASSERT_FALSE(columns);
  EXPECT_EQ(columns.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(columns.error().message.find("'id'"), std::string::npos);
}

TEST(FormatsColumnSet, TakesColumnTypesFromAResourceSchema) {
  auto attributes = ParseJsonObject(
      R"({"name":"string|required","email":"email","age":"number|min:0","n":"integer",)"
      R"("ok":"boolean","at":"datetime","tags":"array|items:string","meta":"json",)"
      R"("profile":{"bio":"string"}})");
  ASSERT_TRUE(attributes);
  auto schema = Schema::Parse(*attributes);
  ASSERT_TRUE(schema) << schema.error().message;
  EXPECT_EQ(Describe(ColumnSet::FromSchema(*schema)),
            (std::vector<std::string>{"name:string", "email:string", "age:number", "n:integer",
                                      "ok:boolean", "at:datetime", "tags:array", "meta:json",
                                      "profile:json"}));
}

TEST(FormatsColumnSet, ParsesTypeNames) {
  EXPECT_EQ(*ParseColumnType("object"), ColumnType::kJson);
  EXPECT_EQ(*ParseColumnType("datetime"), ColumnType::kDatetime);
  auto bad = ParseColumnType("date");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("'date'"), std::string::npos);
}

}  // namespace
}  // namespace s3db::formats
