#include "s3db/schema.h"

#include <gtest/gtest.h>

#include "test_util.h"

namespace s3db {
namespace {

JsonObject Object(std::string_view text) {
  auto parsed = ParseJsonObject(text);
  EXPECT_TRUE(parsed) << parsed.error().ToString();
  return parsed ? *parsed : JsonObject();
}

TEST(SchemaTest, ParsesTheShorthand) {
  auto schema = Schema::Parse(Object(R"({
    "name": "string|required|maxlength:255", "age": "number|min:0", "ok": "boolean",
    "email": "email", "site": "url", "key": "uuid", "at": "datetime",
    "tags": "array|items:string", "meta": "json", "extra": "object",
    "address": {"city": "string|required", "zip": "string"}})"));
  S3DB_ASSERT_OK(schema);
  ASSERT_EQ(schema->attributes().size(), 11u);
  EXPECT_EQ(schema->attributes()[0].name, "name");
  EXPECT_TRUE(schema->attributes()[0].required);
  EXPECT_EQ(*schema->attributes()[0].max_length, 255u);
  EXPECT_EQ(schema->attributes()[7].items, AttributeType::kString);
  EXPECT_EQ(schema->attributes()[10].children.size(), 2u);
}

TEST(SchemaTest, UnknownTypesAndRulesAreErrorsNamingTheAttribute) {
  auto type = Schema::Parse(Object(R"({"profile": {"age": "nubmer"}})"));
  ASSERT_FALSE(type);
  EXPECT_NE(type.error().message.find("attribute 'profile.age': unknown type 'nubmer'"),
            std::string::npos)
      << type.error().message;
  auto rule = Schema::Parse(Object(R"({"name": "string|requird"})"));
  ASSERT_FALSE(rule);
  EXPECT_NE(rule.error().message.find("unknown rule 'requird'"), std::string::npos);
  EXPECT_FALSE(Schema::Parse(Object(R"({"n": "number|min:abc"})")));
  EXPECT_FALSE(Schema::Parse(Object(R"({"n": 5})")));
}

TEST(SchemaTest, BoundsThatNoValueCanMeetAreRefusedNamingTheAttribute) {
  auto numbers = Schema::Parse(Object(R"({"age": "number|min:10|max:5"})"));
  ASSERT_FALSE(numbers);
  EXPECT_EQ(numbers.error().message,
            "attribute 'age': 'min:10' is above 'max:5'; no value could pass");
  auto positive = Schema::Parse(Object(R"({"n": "number|positive|max:-1"})"));
  ASSERT_FALSE(positive);
  EXPECT_NE(positive.error().message.find("'positive' is above 'max:-1'"), std::string::npos);
  auto lengths = Schema::Parse(Object(R"({"code": "string|minlength:4|maxlength:2"})"));
  ASSERT_FALSE(lengths);
  EXPECT_EQ(lengths.error().message,
            "attribute 'code': minlength 4 is above maxlength 2; no value could pass");
  S3DB_EXPECT_OK(Schema::Parse(Object(R"({"n": "number|min:5|max:5", "s": "string|length:3"})")));
}

TEST(SchemaTest, ValidationReportsEveryFailingFieldAtOnce) {
  auto schema = Schema::Parse(Object(R"({
    "name": "string|required", "age": "number|min:0", "email": "email",
    "tags": "array|items:string", "address": {"city": "string|required"}})"));
  S3DB_ASSERT_OK(schema);
  auto result =
      schema->Validate(Object(R"({"age": -1, "email": "nope", "tags": ["a", 2], "address": {}})"));
  ASSERT_FALSE(result);
  const std::string& message = result.error().message;
  EXPECT_EQ(result.error().code, ErrorCode::kValidation);
  EXPECT_NE(message.find("5 fields"), std::string::npos) << message;
  EXPECT_NE(message.find("name: is required"), std::string::npos) << message;
  EXPECT_NE(message.find("age: -1 is below min 0"), std::string::npos) << message;
  EXPECT_EQ(message.find("0E0"), std::string::npos) << message;  // the limit as written
  EXPECT_NE(message.find("email: \"nope\" is not an email"), std::string::npos) << message;
  EXPECT_NE(message.find("tags[1]: 2 is not a string"), std::string::npos) << message;
  EXPECT_NE(message.find("address.city: is required"), std::string::npos) << message;
}

TEST(SchemaTest, AcceptsValidRecordsAndUnknownFields) {
  auto schema = Schema::Parse(Object(R"({"at": "datetime", "key": "uuid", "site": "url",
                                         "name": "string|maxlength:3"})"));
  S3DB_ASSERT_OK(schema);
  S3DB_EXPECT_OK(schema->Validate(Object(R"({"at": "2025-10-20T10:30:00.123+02:00",
      "key": "123e4567-e89b-12d3-a456-426614174000", "site": "https://x.io/a",
      "name": "äöü", "free": {"any": [1]}})")));
  EXPECT_FALSE(schema->Validate(Object(R"({"name": "abcd"})")));
  EXPECT_FALSE(schema->Validate(Object(R"({"at": "2025-13-01"})")));
}

}  // namespace
}  // namespace s3db
