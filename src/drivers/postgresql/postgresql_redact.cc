#include "drivers/postgresql/postgresql_redact.h"

#include <cctype>
#include <optional>

#include "s3db/storage.h"

namespace s3db::replicator::postgresql {
namespace {

constexpr std::string_view kMask = "***";

bool IsSecretKey(std::string_view key) { return key == "password" || key == "sslpassword"; }

std::optional<std::string_view> UriRest(std::string_view conninfo) {
  for (std::string_view scheme : {"postgresql://", "postgres://"}) {
    if (conninfo.substr(0, scheme.size()) == scheme) return conninfo.substr(scheme.size());
  }
  return std::nullopt;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string PercentDecode(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size()) {
      int high = HexValue(text[i + 1]);
      int low = HexValue(text[i + 2]);
      if (high >= 0 && low >= 0) {
        out += static_cast<char>(high * 16 + low);
        i += 2;
        continue;
      }
    }
    out += text[i];
  }
  return out;
}

// The '@' that ends the user info of a URI, or npos. Prefers the last '@' before the query;
// when the query holds the only '@', the result may cover more than the user info, which
// only over-redacts.
std::size_t UserInfoEnd(std::string_view rest) {
  std::size_t query = rest.find('?');
  if (query != std::string_view::npos) {
    std::size_t at = rest.substr(0, query).rfind('@');
    if (at != std::string_view::npos) return at;
  }
  return rest.rfind('@');
}

// Calls `on_secret(begin, end)` for each password value range in the URI `rest`.
template <typename Callback>
void ForEachUriSecret(std::string_view rest, Callback on_secret) {
  std::size_t at = UserInfoEnd(rest);
  std::size_t query_start = 0;
  if (at != std::string_view::npos) {
    std::size_t colon = rest.substr(0, at).find(':');
    if (colon != std::string_view::npos && colon + 1 < at) on_secret(colon + 1, at);
    query_start = at + 1;
  }
  std::size_t query = rest.find('?', query_start);
  if (query == std::string_view::npos) return;
  std::size_t pos = query + 1;
  while (pos <= rest.size()) {
    std::size_t end = rest.find('&', pos);
    if (end == std::string_view::npos) end = rest.size();
    std::string_view pair = rest.substr(pos, end - pos);
    std::size_t equals = pair.find('=');
    if (equals != std::string_view::npos && IsSecretKey(PercentDecode(pair.substr(0, equals))) &&
        equals + 1 < pair.size()) {
      on_secret(pos + equals + 1, end);
    }
    pos = end + 1;
  }
}

struct KeyValueToken {
  std::string_view key;
  std::size_t value_begin = 0;  // offsets of the value as written (quotes included)
  std::size_t value_end = 0;
  std::string value;  // unescaped
};

// Splits a key/value connection string; nullopt when it is malformed.
std::optional<std::vector<KeyValueToken>> ParseKeyValue(std::string_view text) {
  std::vector<KeyValueToken> tokens;
  std::size_t i = 0;
  auto skip_space = [&] {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
  };
  while (true) {
    skip_space();
    if (i >= text.size()) return tokens;
    std::size_t key_begin = i;
    while (i < text.size() && text[i] != '=' &&
           !std::isspace(static_cast<unsigned char>(text[i]))) {
      ++i;
    }
    KeyValueToken token;
    token.key = text.substr(key_begin, i - key_begin);
    skip_space();
    if (i >= text.size() || text[i] != '=') return std::nullopt;
    ++i;
    skip_space();
    token.value_begin = i;
    if (i < text.size() && text[i] == '\'') {
      ++i;
      bool closed = false;
      while (i < text.size()) {
        if (text[i] == '\\' && i + 1 < text.size()) {
          token.value += text[i + 1];
          i += 2;
        } else if (text[i] == '\'') {
          ++i;
          closed = true;
          break;
        } else {
          token.value += text[i++];
        }
      }
      if (!closed) return std::nullopt;
    } else {
      while (i < text.size() && !std::isspace(static_cast<unsigned char>(text[i]))) {
        if (text[i] == '\\' && i + 1 < text.size()) {
          token.value += text[i + 1];
          i += 2;
        } else {
          token.value += text[i++];
        }
      }
    }
    token.value_end = i;
    tokens.push_back(std::move(token));
  }
}

bool LooksNested(std::string_view value) {
  return UriRest(value).has_value() || value.find('=') != std::string_view::npos;
}

}  // namespace

std::string RedactConnectionString(std::string_view conninfo) {
  if (auto rest = UriRest(conninfo)) {
    std::string out(conninfo.substr(0, conninfo.size() - rest->size()));
    std::size_t copied = 0;
    ForEachUriSecret(*rest, [&](std::size_t begin, std::size_t end) {
      out.append(rest->substr(copied, begin - copied));
      out.append(kMask);
      copied = end;
    });
    out.append(rest->substr(copied));
    return out;
  }

  auto tokens = ParseKeyValue(conninfo);
  if (!tokens) {
    std::size_t keyword = conninfo.find("password");
    if (keyword == std::string_view::npos) return std::string(conninfo);
    return std::string(conninfo.substr(0, keyword)) + "password=" + std::string(kMask);
  }
  std::string out;
  std::size_t copied = 0;
  for (const KeyValueToken& token : *tokens) {
    bool secret = IsSecretKey(token.key);
    bool nested = token.key == "dbname" && LooksNested(token.value);
    if (!secret && !nested) continue;
    out.append(conninfo.substr(copied, token.value_begin - copied));
    out.append(secret ? std::string(kMask) : "'" + RedactConnectionString(token.value) + "'");
    copied = token.value_end;
  }
  out.append(conninfo.substr(copied));
  return out;
}

std::vector<std::string> ConnectionSecrets(std::string_view conninfo) {
  std::vector<std::string> secrets;
  auto add = [&](std::string secret) {
    if (!secret.empty()) secrets.push_back(std::move(secret));
  };
  if (auto rest = UriRest(conninfo)) {
    ForEachUriSecret(*rest, [&](std::size_t begin, std::size_t end) {
      std::string_view raw = rest->substr(begin, end - begin);
      add(std::string(raw));
      add(PercentDecode(raw));
    });
    return secrets;
  }
  auto tokens = ParseKeyValue(conninfo);
  if (!tokens) return secrets;
  for (const KeyValueToken& token : *tokens) {
    if (IsSecretKey(token.key)) {
      add(token.value);
    } else if (token.key == "dbname" && LooksNested(token.value)) {
      for (std::string& nested : ConnectionSecrets(token.value)) add(std::move(nested));
    }
  }
  return secrets;
}

std::vector<std::string> RegisteredConnectionSecrets(std::string_view conninfo) {
  std::vector<std::string> secrets = ConnectionSecrets(conninfo);
  for (const std::string& secret : secrets) RegisterSecret(secret);
  return secrets;
}

std::string ScrubSecrets(std::string message, const std::vector<std::string>& secrets) {
  for (const std::string& secret : secrets) {
    if (secret.size() < 3) continue;
    std::size_t pos = 0;
    while ((pos = message.find(secret, pos)) != std::string::npos) {
      message.replace(pos, secret.size(), kMask);
      pos += kMask.size();
    }
  }
  return message;
}

}  // namespace s3db::replicator::postgresql
