#include <gtest/gtest.h>

#include <cstdlib>

#include "s3db/storage.h"
#include "storage/url_secrets.h"
#include "test_util.h"

namespace s3db {
namespace {

using Scheme = ConnectionString::Scheme;

TEST(ConnectionStringTest, ParsesAwsForm) {
  auto parsed =
      ConnectionString::Parse("s3://AKID:se%2Fcret@my-bucket/databases/app?region=eu-west-1");
  S3DB_ASSERT_OK(parsed);
  EXPECT_EQ(parsed->scheme, Scheme::kS3);
  EXPECT_EQ(parsed->access_key, "AKID");
  EXPECT_EQ(parsed->secret_key, "se/cret");
  EXPECT_EQ(parsed->bucket, "my-bucket");
  EXPECT_EQ(parsed->prefix, "databases/app");
  EXPECT_EQ(parsed->region, "eu-west-1");
}

TEST(ConnectionStringTest, UnencodedSlashInSecretStillParses) {
  auto parsed = ConnectionString::Parse("s3://AKID:wJal/K7MDENG+bPx@bucket1/p");
  S3DB_ASSERT_OK(parsed);
  EXPECT_EQ(parsed->secret_key, "wJal/K7MDENG+bPx");
  EXPECT_EQ(parsed->bucket, "bucket1");
}

TEST(ConnectionStringTest, ParsesPathStyleEndpoint) {
  auto parsed = ConnectionString::Parse("http://KEY:SECRET@127.0.0.1:4568/bucket/a/b/");
  S3DB_ASSERT_OK(parsed);
  EXPECT_EQ(parsed->scheme, Scheme::kHttp);
  EXPECT_EQ(parsed->host, "127.0.0.1");
  EXPECT_EQ(parsed->port, 4568);
  EXPECT_EQ(parsed->bucket, "bucket");
  EXPECT_EQ(parsed->prefix, "a/b");
  EXPECT_EQ(parsed->Redacted(), "http://KEY:***@127.0.0.1:4568/bucket/a/b");
}

TEST(ConnectionStringTest, ParsesFileAndMemoryForms) {
  auto absolute = ConnectionString::Parse("file:///var/lib/s3db");
  S3DB_ASSERT_OK(absolute);
  EXPECT_EQ(absolute->scheme, Scheme::kFile);
  EXPECT_EQ(absolute->path, "/var/lib/s3db");
  auto relative = ConnectionString::Parse("file://./data");
  S3DB_ASSERT_OK(relative);
  EXPECT_EQ(relative->path, "./data");
  auto memory = ConnectionString::Parse("memory://bucket/prefix/x");
  S3DB_ASSERT_OK(memory);
  EXPECT_EQ(memory->bucket, "bucket");
  EXPECT_EQ(memory->prefix, "prefix/x");
}

TEST(ConnectionStringTest, CredentialsFallBackToEnvironment) {
  ::setenv("AWS_ACCESS_KEY_ID", "ENVKEY", 1);
  ::setenv("AWS_SECRET_ACCESS_KEY", "ENVSECRET", 1);
  ::setenv("AWS_SESSION_TOKEN", "TOKEN", 1);
  auto parsed = ConnectionString::Parse("s3://bucket-name/p");
  ::unsetenv("AWS_ACCESS_KEY_ID");
  ::unsetenv("AWS_SECRET_ACCESS_KEY");
  ::unsetenv("AWS_SESSION_TOKEN");
  S3DB_ASSERT_OK(parsed);
  EXPECT_EQ(parsed->access_key, "ENVKEY");
  EXPECT_EQ(parsed->secret_key, "ENVSECRET");
  EXPECT_EQ(parsed->session_token, "TOKEN");
}

TEST(ConnectionStringTest, MalformedStringsGiveErrorsThatNameTheProblem) {
  struct Case {
    const char* text;
    const char* expected;
  };
  for (const Case& c : {Case{"nonsense", "no scheme"}, Case{"ftp://x/y", "unknown scheme 'ftp'"},
                        Case{"s3://K:S@/prefix", "missing bucket"},
                        Case{"s3://K:S@Bad_Bucket/p", "not a valid S3 bucket name"},
                        Case{"http://K:S@host:99999/b", "port '99999'"},
                        Case{"http://K:S@host:80", "missing bucket"},
                        Case{"s3://K:S%zz@bucket/p", "percent-encoding"},
                        Case{"file://relative", "file:///absolute/path"},
                        Case{"memory://", "missing bucket"}}) {
    auto parsed = ConnectionString::Parse(c.text);
    ASSERT_FALSE(parsed) << c.text;
    EXPECT_EQ(parsed.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(parsed.error().message.find(c.expected), std::string::npos)
        << c.text << " -> " << parsed.error().message;
  }
}

TEST(ConnectionStringTest, ErrorsNeverContainTheSecret) {
  auto parsed = ConnectionString::Parse("s3://KEY:TOPSECRET@Bad_Bucket/p");
  ASSERT_FALSE(parsed);
  EXPECT_EQ(parsed.error().message.find("TOPSECRET"), std::string::npos) << parsed.error().message;
}

TEST(RedactSecretsTest, HidesSecretsInFreeText) {
  EXPECT_EQ(RedactSecrets("cannot reach s3://AK:SECRET@bucket/p now"),
            "cannot reach s3://AK:***@bucket/p now");
  EXPECT_EQ(RedactSecrets("postgresql://user:pw@host/db and http://a:b@c"),
            "postgresql://user:***@host/db and http://a:***@c");
  EXPECT_EQ(RedactSecrets("memory://bucket/p"), "memory://bucket/p");
  EXPECT_EQ(RedactSecrets("s3://AK:se/cr@et@bucket/p"), "s3://AK:***@bucket/p");
}

TEST(RedactSecretsTest, HidesValuesOfSecretQueryParameters) {
  EXPECT_EQ(RedactSecrets("POST https://h/x?token=abc&page=2 failed"),
            "POST https://h/x?token=***&page=2 failed");
  EXPECT_EQ(RedactSecrets("GET /q?api_key=k1&Signature=s2&X-Amz-Credential=c3#top"),
            "GET /q?api_key=***&Signature=***&X-Amz-Credential=***#top");
  EXPECT_EQ(RedactSecrets("a & b, ?page=3&sort=name"), "a & b, ?page=3&sort=name");
}

TEST(UrlSecretsTest, TheUserInfoPasswordBasicAuthAndSecretQueryValues) {
  std::vector<std::string> secrets =
      UrlSecrets("http://hook%20user:Pass%2Fword@127.0.0.1:9/h?token=Tok%3D1&page=2&key=K2");
  EXPECT_EQ(secrets, (std::vector<std::string>{
                         "Pass%2Fword", "Pass/word", "Basic aG9vayB1c2VyOlBhc3Mvd29yZA==",
                         "aG9vayB1c2VyOlBhc3Mvd29yZA==", "Tok%3D1", "Tok=1", "K2"}));
  EXPECT_TRUE(UrlSecrets("https://example.com/hook?page=1").empty());
  RegisterUrlSecrets("https://u:RegisteredUrlPass9@h/x?signature=RegisteredSig77");
  EXPECT_EQ(RedactSecrets("echo RegisteredUrlPass9 and RegisteredSig77"), "echo *** and ***");
}

}  // namespace
}  // namespace s3db
