// SigV4 against AWS's published examples:
// - S3 API Reference, "Signature Calculations for the Authorization Header: Transferring
//   Payload in a Single Chunk", section "Examples: Signature Calculations" (GET Object,
//   PUT Object, GET Bucket Lifecycle, GET Bucket (List Objects)).
// - The AWS SigV4 test suite, case "get-vanilla".
// - IAM User Guide, "Examples of how to derive a signing key".
#include "net/sigv4.h"

#include <gtest/gtest.h>

#include <chrono>

namespace s3db::net {
namespace {

constexpr char kEmptySha256[] =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

const AwsCredentials kS3ExampleCredentials{"AKIAIOSFODNN7EXAMPLE",
                                           "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ""};
const SigV4Scope kS3ExampleScope{"us-east-1", "s3"};
constexpr char kS3ExampleDate[] = "20130524T000000Z";
constexpr char kS3ExampleHost[] = "examplebucket.s3.amazonaws.com";

// Signs one of the S3 examples; host is added here, the signer adds x-amz-date and
// x-amz-content-sha256 itself.
SigV4Signature SignS3Example(SigV4Request request) {
  request.headers.emplace_back("Host", kS3ExampleHost);
  SigV4Signature signature;
  HeaderList added = SigV4SignedHeaders(request, kS3ExampleCredentials, kS3ExampleScope,
                                        kS3ExampleDate, &signature);
  EXPECT_FALSE(added.empty());
  return signature;
}

TEST(SigV4Test, SignsTheS3GetObjectExample) {
  SigV4Request request;
  request.method = "GET";
  request.path = "/test.txt";
  request.headers = {{"Range", "bytes=0-9"}};
  request.payload_hash = kEmptySha256;

  SigV4Signature signature = SignS3Example(request);

  EXPECT_EQ(signature.canonical_request,
            "GET\n"
            "/test.txt\n"
            "\n"
            "host:examplebucket.s3.amazonaws.com\n"
            "range:bytes=0-9\n"
            "x-amz-content-sha256:"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
            "x-amz-date:20130524T000000Z\n"
            "\n"
            "host;range;x-amz-content-sha256;x-amz-date\n"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(signature.string_to_sign,
            "AWS4-HMAC-SHA256\n"
            "20130524T000000Z\n"
            "20130524/us-east-1/s3/aws4_request\n"
            "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
  EXPECT_EQ(signature.signature,
            "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  EXPECT_EQ(signature.authorization,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/"
            "aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

TEST(SigV4Test, SignsTheS3PutObjectExampleWithAnEncodedDollarInTheKey) {
  const std::string body = "Welcome to Amazon S3.";
  SigV4Request request;
  request.method = "PUT";
  request.path = "/test$file.text";
  request.headers = {{"Date", "Fri, 24 May 2013 00:00:00 GMT"},
                     {"x-amz-storage-class", "REDUCED_REDUNDANCY"}};
  request.payload_hash = Sha256Hex(body);
  ASSERT_EQ(request.payload_hash,
            "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");

  SigV4Signature signature = SignS3Example(request);

  EXPECT_EQ(signature.canonical_request,
            "PUT\n"
            "/test%24file.text\n"
            "\n"
            "date:Fri, 24 May 2013 00:00:00 GMT\n"
            "host:examplebucket.s3.amazonaws.com\n"
            "x-amz-content-sha256:"
            "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072\n"
            "x-amz-date:20130524T000000Z\n"
            "x-amz-storage-class:REDUCED_REDUNDANCY\n"
            "\n"
            "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class\n"
            "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  EXPECT_EQ(signature.string_to_sign,
            "AWS4-HMAC-SHA256\n"
            "20130524T000000Z\n"
            "20130524/us-east-1/s3/aws4_request\n"
            "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d");
  EXPECT_EQ(signature.signature,
            "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
}

TEST(SigV4Test, SignsTheS3GetBucketLifecycleExampleWithAValuelessParameter) {
  SigV4Request request;
  request.method = "GET";
  request.path = "/";
  request.query = {{"lifecycle", ""}};
  request.payload_hash = kEmptySha256;

  SigV4Signature signature = SignS3Example(request);

  EXPECT_EQ(signature.canonical_request,
            "GET\n"
            "/\n"
            "lifecycle=\n"
            "host:examplebucket.s3.amazonaws.com\n"
            "x-amz-content-sha256:"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
            "x-amz-date:20130524T000000Z\n"
            "\n"
            "host;x-amz-content-sha256;x-amz-date\n"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(signature.string_to_sign,
            "AWS4-HMAC-SHA256\n"
            "20130524T000000Z\n"
            "20130524/us-east-1/s3/aws4_request\n"
            "9766c798316ff2757b517bc739a67f6213b4ab36dd5da2f94eaebf79c77395ca");
  EXPECT_EQ(signature.signature,
            "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
}

TEST(SigV4Test, SignsTheS3ListObjectsExampleWithTheQuerySorted) {
  SigV4Request request;
  request.method = "GET";
  request.path = "/";
  request.query = {{"prefix", "J"}, {"max-keys", "2"}};  // out of order on purpose
  request.payload_hash = kEmptySha256;

  SigV4Signature signature = SignS3Example(request);

  EXPECT_EQ(signature.canonical_request,
            "GET\n"
            "/\n"
            "max-keys=2&prefix=J\n"
            "host:examplebucket.s3.amazonaws.com\n"
            "x-amz-content-sha256:"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
            "x-amz-date:20130524T000000Z\n"
            "\n"
            "host;x-amz-content-sha256;x-amz-date\n"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(signature.string_to_sign,
            "AWS4-HMAC-SHA256\n"
            "20130524T000000Z\n"
            "20130524/us-east-1/s3/aws4_request\n"
            "df57d21db20da04d7fa30298dd4488ba3a2b47ca3a489c74750e0f1e7df1b9b7");
  EXPECT_EQ(signature.signature,
            "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

TEST(SigV4Test, SignsTheTestSuiteGetVanillaCaseWithoutAContentHashHeader) {
  SigV4Request request;
  request.method = "GET";
  request.path = "/";
  request.headers = {{"Host", "example.amazonaws.com"}};
  request.payload_hash = kEmptySha256;
  AwsCredentials credentials{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""};

  SigV4Signature signature;
  HeaderList added = SigV4SignedHeaders(request, credentials, {"us-east-1", "service"},
                                        "20150830T123600Z", &signature);

  EXPECT_EQ(signature.canonical_request,
            "GET\n"
            "/\n"
            "\n"
            "host:example.amazonaws.com\n"
            "x-amz-date:20150830T123600Z\n"
            "\n"
            "host;x-amz-date\n"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(signature.string_to_sign,
            "AWS4-HMAC-SHA256\n"
            "20150830T123600Z\n"
            "20150830/us-east-1/service/aws4_request\n"
            "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63");
  EXPECT_EQ(signature.signature,
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
  EXPECT_EQ(signature.authorization,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
            "SignedHeaders=host;x-amz-date, "
            "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
  ASSERT_EQ(added.size(), 2u);  // x-amz-date and authorization only
  EXPECT_EQ(added[0], (std::pair<std::string, std::string>{"x-amz-date", "20150830T123600Z"}));
  EXPECT_EQ(added[1].first, "authorization");
}

TEST(SigV4Test, DerivesTheSigningKeyOfTheIamExample) {
  std::string key = DeriveSigningKey("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215",
                                     "us-east-1", "iam");
  EXPECT_EQ(HexEncode(key), "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
}

TEST(SigV4Test, AddsTheSessionTokenAsASignedHeader) {
  SigV4Request request;
  request.path = "/key";
  request.headers = {{"host", "b.s3.us-east-1.amazonaws.com"}};
  request.payload_hash = kEmptySha256;
  AwsCredentials credentials{"AKID", "SECRET", "TOKEN/with+chars="};

  SigV4Signature signature;
  HeaderList added =
      SigV4SignedHeaders(request, credentials, {"us-east-1", "s3"}, kS3ExampleDate, &signature);

  EXPECT_EQ(signature.signed_headers,
            "host;x-amz-content-sha256;x-amz-date;x-amz-security-token");
  EXPECT_NE(signature.canonical_request.find("x-amz-security-token:TOKEN/with+chars=\n"),
            std::string::npos);
  bool token_sent = false;
  for (const auto& [name, value] : added) {
    if (name == "x-amz-security-token") token_sent = value == "TOKEN/with+chars=";
  }
  EXPECT_TRUE(token_sent);
  EXPECT_EQ(signature.authorization.find("SECRET"), std::string::npos);
}

TEST(SigV4Test, EncodesPathSegmentsOnceForS3AndTwiceForOtherServices) {
  SigV4Request request;
  request.path = "/bucket/a b/ü+%.json";
  request.headers = {{"host", "h"}};
  request.payload_hash = kEmptySha256;

  EXPECT_EQ(SigV4EncodePath(request.path), "/bucket/a%20b/%C3%BC%2B%25.json");
  std::string s3 = CanonicalRequest(request, "s3");
  std::string sqs = CanonicalRequest(request, "sqs");
  EXPECT_EQ(s3.substr(0, s3.find('\n', 4)), "GET\n/bucket/a%20b/%C3%BC%2B%25.json");
  EXPECT_EQ(sqs.substr(0, sqs.find('\n', 4)), "GET\n/bucket/a%2520b/%25C3%25BC%252B%2525.json");
}

TEST(SigV4Test, UriEncodeKeepsOnlyUnreservedCharacters) {
  EXPECT_EQ(UriEncode("AZaz09-_.~", false), "AZaz09-_.~");
  EXPECT_EQ(UriEncode("a b+c*d/e=f&g", false), "a%20b%2Bc%2Ad%2Fe%3Df%26g");
  EXPECT_EQ(UriEncode("a/b", true), "a/b");
  EXPECT_EQ(UriEncode("\xE2\x82\xAC", false), "%E2%82%AC");
}

TEST(SigV4Test, CanonicalQuerySortsByNameThenValueAndEncodes) {
  EXPECT_EQ(CanonicalQueryString({{"b", "2"}, {"a", "x y"}, {"a", "1"}, {"delete", ""}}),
            "a=1&a=x%20y&b=2&delete=");
  EXPECT_EQ(CanonicalQueryString({{"continuation-token", "1/a+b="}}),
            "continuation-token=1%2Fa%2Bb%3D");
  EXPECT_EQ(CanonicalQueryString({}), "");
}

TEST(SigV4Test, CanonicalHeadersLowerCaseTrimCollapseAndJoinRepeats) {
  std::string signed_headers;
  std::string canonical = CanonicalHeaders(
      {{"X-Amz-Meta-B", "  two   words  "}, {"Host", "h"}, {"x-amz-meta-b", "again"}},
      &signed_headers);
  EXPECT_EQ(canonical, "host:h\nx-amz-meta-b:two words,again\n");
  EXPECT_EQ(signed_headers, "host;x-amz-meta-b");
}

TEST(SigV4Test, FormatsTheAmzDateInUtc) {
  auto time = std::chrono::system_clock::from_time_t(1369353600);  // 2013-05-24 00:00:00 UTC
  EXPECT_EQ(AmzDate(time), "20130524T000000Z");
  EXPECT_EQ(AmzDate(time + std::chrono::seconds(3661)), "20130524T010101Z");
}

TEST(SigV4Test, HashHelpersMatchKnownValues) {
  EXPECT_EQ(Sha256Hex(""), kEmptySha256);
  EXPECT_EQ(HexEncode(Md5("")), "d41d8cd98f00b204e9800998ecf8427e");
  EXPECT_EQ(Base64Encode(Md5("")), "1B2M2Y8AsgTpgAmY7PhCfg==");
  EXPECT_EQ(Base64Encode("ab"), "YWI=");
  EXPECT_EQ(Base64Encode(""), "");
}

TEST(SigV4Test, Base64DecodeReversesEncodeAndRejectsGarbage) {
  for (std::string text : {"", "a", "ab", "abc", "abcd", "\xC3\xBC\n\x01"}) {
    std::string decoded;
    ASSERT_TRUE(Base64Decode(Base64Encode(text), &decoded)) << text;
    EXPECT_EQ(decoded, text);
  }
  std::string decoded;
  EXPECT_TRUE(Base64Decode("YWI", &decoded));  // padding optional
  EXPECT_EQ(decoded, "ab");
  EXPECT_FALSE(Base64Decode("Y!==", &decoded));
  EXPECT_FALSE(Base64Decode("Y", &decoded));
}

}  // namespace
}  // namespace s3db::net
