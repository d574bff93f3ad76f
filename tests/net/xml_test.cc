#include "net/xml.h"

#include <gtest/gtest.h>

#include "test_util.h"

namespace s3db::net {
namespace {

TEST(XmlTest, ReadsAListingWhateverTheNamespace) {
  // The S3 peer uses a non-standard namespace; real S3 another one; some servers a prefix.
  for (std::string root : {"<ListBucketResult xmlns=\"http://doc.s3.amazonaws.com/2006-03-01/\">",
                           "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">",
                           "<ListBucketResult>"}) {
    std::string text = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n" + root +
                       "<IsTruncated>true</IsTruncated>"
                       "<Contents><Key>a/1</Key><Size>3</Size></Contents>"
                       "<Contents><Key>a/2</Key><Size>44</Size></Contents>"
                       "<NextContinuationToken>tok</NextContinuationToken>"
                       "</ListBucketResult>";
    auto parsed = ParseXml(text);
    S3DB_ASSERT_OK(parsed);
    EXPECT_EQ(parsed->name, "ListBucketResult");
    auto contents = parsed->Children("Contents");
    ASSERT_EQ(contents.size(), 2u);
    EXPECT_EQ(contents[1]->ChildText("Key"), "a/2");
    EXPECT_EQ(contents[1]->ChildText("Size"), "44");
    EXPECT_EQ(parsed->ChildText("NextContinuationToken"), "tok");
  }

  auto prefixed = ParseXml("<s3:Error xmlns:s3=\"x\"><s3:Code>NoSuchKey</s3:Code></s3:Error>");
  S3DB_ASSERT_OK(prefixed);
  EXPECT_EQ(prefixed->name, "Error");
  EXPECT_EQ(prefixed->ChildText("Code"), "NoSuchKey");
}

TEST(XmlTest, DecodesEntitiesAndKeepsCdataAndSkipsComments) {
  auto parsed = ParseXml(
      "<R><!-- a > comment --><K>a &amp; b &lt;c&gt; &quot;&apos; &#233; &#x20AC; &bogus;</K>"
      "<C><![CDATA[<raw> & stuff]]></C><E/><A attr=\"x>y\">t</A></R>");
  S3DB_ASSERT_OK(parsed);
  EXPECT_EQ(parsed->ChildText("K"), "a & b <c> \"' \xC3\xA9 \xE2\x82\xAC &bogus;");
  EXPECT_EQ(parsed->ChildText("C"), "<raw> & stuff");
  ASSERT_NE(parsed->Child("E"), nullptr);
  EXPECT_EQ(parsed->Child("E")->text, "");
  EXPECT_EQ(parsed->ChildText("A"), "t");
  EXPECT_EQ(parsed->Child("Missing"), nullptr);
  EXPECT_EQ(parsed->ChildText("Missing"), "");
}

TEST(XmlTest, FailsOnTextWithoutElementsOrACutOffTag) {
  EXPECT_FALSE(ParseXml("").has_value());
  EXPECT_FALSE(ParseXml("just text").has_value());
  EXPECT_FALSE(ParseXml("<Error><Code").has_value());
}

TEST(XmlTest, EscapeRoundTripsThroughTheParser) {
  std::string key = "a&b<c>d\"e'f/ü";
  auto parsed = ParseXml("<K>" + XmlEscape(key) + "</K>");
  S3DB_ASSERT_OK(parsed);
  EXPECT_EQ(parsed->text, key);
  EXPECT_TRUE(IsXmlSafe(key));
  EXPECT_FALSE(IsXmlSafe(std::string("a\x01")));
  EXPECT_TRUE(IsXmlSafe("tab\tnewline\n"));
}

}  // namespace
}  // namespace s3db::net
