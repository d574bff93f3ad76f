// A tiny, tolerant XML reader for AWS responses (S3 listings, errors, DeleteResult; SQS query
// replies). It builds a small element tree and ignores what those replies do not need:
// namespaces (prefixes are dropped, xmlns attributes are skipped, so any namespace matches),
// attributes, comments, processing instructions and DOCTYPE. Text is entity-decoded
// (&amp; &lt; &gt; &quot; &apos; &#N; &#xN;) and CDATA is kept verbatim. Not a validating
// parser: a mismatched end tag closes the innermost open element.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "s3db/error.h"

namespace s3db::net {

struct XmlElement {
  std::string name;  // local name: "Key" for both <Key> and <s3:Key>
  std::string text;  // the element's own character data, concatenated, not trimmed
  std::vector<XmlElement> children;

  // The first direct child with this local name, or nullptr.
  const XmlElement* Child(std::string_view child_name) const;
  // The text of the first direct child with this name, or "" when there is none.
  std::string ChildText(std::string_view child_name) const;
  // Every direct child with this name, in document order.
  std::vector<const XmlElement*> Children(std::string_view child_name) const;
};

// Parses a document and returns its root element. Fails (kInvalidArgument) only when there
// is no element at all or a tag is cut off.
Result<XmlElement> ParseXml(std::string_view text);

// Escapes & < > " ' for use in element text or attribute values.
std::string XmlEscape(std::string_view text);

// Decodes the entity references of XML text (the reverse of XmlEscape, plus &#N; / &#xN;).
std::string XmlUnescape(std::string_view text);

// True when every character of the UTF-8 text may appear in an XML 1.0 document
// (no control characters other than tab, newline, carriage return).
bool IsXmlSafe(std::string_view text);

}  // namespace s3db::net
