#include "net/xml.h"

#include <cstdint>
#include <cstdlib>

namespace s3db::net {
namespace {

std::string_view LocalName(std::string_view qualified) {
  std::size_t colon = qualified.find(':');
  return colon == std::string_view::npos ? qualified : qualified.substr(colon + 1);
}

void AppendUtf8(std::uint32_t code_point, std::string* out) {
  if (code_point < 0x80) {
    out->push_back(static_cast<char>(code_point));
  } else if (code_point < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (code_point >> 6)));
    out->push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else if (code_point < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (code_point >> 12)));
    out->push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else if (code_point <= 0x10FFFF) {
    out->push_back(static_cast<char>(0xF0 | (code_point >> 18)));
    out->push_back(static_cast<char>(0x80 | ((code_point >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  }
}

// Appends `text` with entity references decoded. Unknown references are kept as written.
void AppendDecoded(std::string_view text, std::string* out) {
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t amp = text.find('&', i);
    if (amp == std::string_view::npos) {
      out->append(text.substr(i));
      return;
    }
    out->append(text.substr(i, amp - i));
    std::size_t semi = text.find(';', amp);
    if (semi == std::string_view::npos || semi - amp > 12) {
      out->push_back('&');
      i = amp + 1;
      continue;
    }
    std::string_view entity = text.substr(amp + 1, semi - amp - 1);
    if (entity == "amp") {
      out->push_back('&');
    } else if (entity == "lt") {
      out->push_back('<');
    } else if (entity == "gt") {
      out->push_back('>');
    } else if (entity == "quot") {
      out->push_back('"');
    } else if (entity == "apos") {
      out->push_back('\'');
    } else if (entity.size() > 1 && entity[0] == '#') {
      bool hex = entity[1] == 'x' || entity[1] == 'X';
      std::string digits(entity.substr(hex ? 2 : 1));
      char* end = nullptr;
      unsigned long value = std::strtoul(digits.c_str(), &end, hex ? 16 : 10);
      if (digits.empty() || end == nullptr || *end != '\0') {
        out->append(text.substr(amp, semi - amp + 1));
      } else {
        AppendUtf8(static_cast<std::uint32_t>(value), out);
      }
    } else {
      out->append(text.substr(amp, semi - amp + 1));
    }
    i = semi + 1;
  }
}

// Index just past the '>' that ends a tag starting at `start`, skipping quoted attribute
// values; npos when the tag is cut off.
std::size_t TagEnd(std::string_view text, std::size_t start) {
  char quote = 0;
  for (std::size_t i = start; i < text.size(); ++i) {
    char c = text[i];
    if (quote != 0) {
      if (c == quote) quote = 0;
    } else if (c == '"' || c == '\'') {
      quote = c;
    } else if (c == '>') {
      return i + 1;
    }
  }
  return std::string_view::npos;
}

}  // namespace

const XmlElement* XmlElement::Child(std::string_view child_name) const {
  for (const XmlElement& child : children) {
    if (child.name == child_name) return &child;
  }
  return nullptr;
}

std::string XmlElement::ChildText(std::string_view child_name) const {
  const XmlElement* child = Child(child_name);
  return child == nullptr ? std::string() : child->text;
}

std::vector<const XmlElement*> XmlElement::Children(std::string_view child_name) const {
  std::vector<const XmlElement*> out;
  for (const XmlElement& child : children) {
    if (child.name == child_name) out.push_back(&child);
  }
  return out;
}

Result<XmlElement> ParseXml(std::string_view text) {
  XmlElement document;
  // Open elements, innermost last. Each is the last child of the one before, and only the
  // innermost gets new children, so these pointers stay valid.
  std::vector<XmlElement*> open{&document};
  std::size_t i = 0;

  while (i < text.size()) {
    std::size_t lt = text.find('<', i);
    if (lt == std::string_view::npos) lt = text.size();
    if (open.size() > 1) AppendDecoded(text.substr(i, lt - i), &open.back()->text);
    if (lt == text.size()) break;

    std::string_view rest = text.substr(lt);
    if (rest.rfind("<!--", 0) == 0) {
      std::size_t end = text.find("-->", lt + 4);
      if (end == std::string_view::npos) break;
      i = end + 3;
      continue;
    }
    if (rest.rfind("<![CDATA[", 0) == 0) {
      std::size_t end = text.find("]]>", lt + 9);
      if (end == std::string_view::npos) {
        return MakeError(ErrorCode::kInvalidArgument, "XML: unterminated CDATA section");
      }
      if (open.size() > 1) open.back()->text.append(text.substr(lt + 9, end - lt - 9));
      i = end + 3;
      continue;
    }

    std::size_t end = TagEnd(text, lt + 1);
    if (end == std::string_view::npos) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "XML: tag cut off at byte " + std::to_string(lt));
    }
    std::string_view tag = text.substr(lt + 1, end - lt - 2);  // between '<' and '>'
    i = end;
    if (tag.empty() || tag[0] == '?' || tag[0] == '!') continue;  // <?xml ?>, <!DOCTYPE>

    if (tag[0] == '/') {
      if (open.size() > 1) open.pop_back();
      continue;
    }
    bool self_closing = tag.back() == '/';
    if (self_closing) tag.remove_suffix(1);
    std::size_t name_end = tag.find_first_of(" \t\r\n");
    std::string_view name = tag.substr(0, name_end);

    XmlElement& child = open.back()->children.emplace_back();
    child.name = std::string(LocalName(name));
    if (!self_closing) open.push_back(&child);
  }

  if (document.children.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, "XML: no element found");
  }
  return std::move(document.children.front());
}

std::string XmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

std::string XmlUnescape(std::string_view text) {
  std::string out;
  AppendDecoded(text, &out);
  return out;
}

bool IsXmlSafe(std::string_view text) {
  for (char ch : text) {
    auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') return false;
  }
  return true;
}

}  // namespace s3db::net
