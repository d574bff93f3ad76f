#include "drivers/webhook/change_payload.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/option_keys.h"
#include "s3db/storage.h"

namespace s3db::replicator::network {
namespace {

// Civil date from days since 1970-01-01 (proleptic Gregorian), after H. Hinnant's algorithm.
void CivilFromDays(std::int64_t days, std::int64_t& year, unsigned& month, unsigned& day) {
  days += 719468;
  const std::int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  const auto day_of_era = static_cast<unsigned>(days - era * 146097);
  const unsigned year_of_era =
      (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
  const unsigned day_of_year =
      day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
  const unsigned shifted_month = (5 * day_of_year + 2) / 153;
  day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
  month = shifted_month < 10 ? shifted_month + 3 : shifted_month - 9;
  year = static_cast<std::int64_t>(year_of_era) + era * 400 + (month <= 2 ? 1 : 0);
}

std::string Describe(const Json& value) {
  std::string text = ToJson(value);
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  return text;
}

// The kind of a value, never the value: a string option may hold a secret written without
// quotes (token: 12345), and the error must not print it.
std::string KindOf(const Json& value) {
  if (value.is_number()) return "a number";
  if (value.is_bool()) return "true or false";
  if (value.is_object()) return "an object";
  if (value.is_array()) return "an array";
  return "a " + std::string(boost::json::to_string(value.kind()));
}

std::string KeyPath(std::string_view path, std::string_view key) {
  return std::string(path) + "." + std::string(key);
}

}  // namespace

std::string IsoTimestampMs(std::int64_t unix_ms) {
  std::int64_t seconds = unix_ms / 1000;
  std::int64_t millis = unix_ms % 1000;
  if (millis < 0) {
    millis += 1000;
    seconds -= 1;
  }
  std::int64_t days = seconds / 86400;
  std::int64_t second_of_day = seconds % 86400;
  if (second_of_day < 0) {
    second_of_day += 86400;
    days -= 1;
  }
  std::int64_t year = 0;
  unsigned month = 0;
  unsigned day = 0;
  CivilFromDays(days, year, month, day);
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%04" PRId64 "-%02u-%02uT%02d:%02d:%02d.%03dZ", year, month,
                day, static_cast<int>(second_of_day / 3600),
                static_cast<int>(second_of_day / 60 % 60), static_cast<int>(second_of_day % 60),
                static_cast<int>(millis));
  return buffer;
}

JsonObject ChangePayload(const DeliveryItem& item, std::string_view source) {
  JsonObject payload;
  payload["resource"] = item.target;
  payload["action"] = ActionName(item.action);
  payload["timestamp"] = IsoTimestampMs(item.timestamp_ms);
  payload["source"] = source;
  if (item.action == Action::kUpdate && item.before) payload["before"] = *item.before;
  payload["data"] = item.data;
  return payload;
}

std::string RecordKey(const DeliveryItem& item) {
  std::string key = item.target;
  key += '\0';
  key += item.id;
  return key;
}

Result<std::optional<std::string>> ReadString(const JsonObject& config, std::string_view key,
                                              std::string_view path) {
  const Json* value = config.if_contains(key);
  if (value == nullptr || value->is_null()) return std::optional<std::string>();
  if (!value->is_string()) {
    return MakeError(ErrorCode::kInvalidArgument, KeyPath(path, key) + ": expected a string, got " +
                                                      KindOf(*value) + " (quote the value)");
  }
  return std::optional<std::string>(std::string(value->get_string()));
}

Result<std::optional<bool>> ReadBool(const JsonObject& config, std::string_view key,
                                     std::string_view path) {
  const Json* value = config.if_contains(key);
  if (value == nullptr || value->is_null()) return std::optional<bool>();
  if (!value->is_bool()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     KeyPath(path, key) + ": expected true or false, got " + Describe(*value));
  }
  return std::optional<bool>(value->get_bool());
}

Result<std::optional<std::int64_t>> ReadInteger(const JsonObject& config, std::string_view key,
                                                std::string_view path, std::int64_t min,
                                                std::int64_t max) {
  const Json* value = config.if_contains(key);
  if (value == nullptr || value->is_null()) return std::optional<std::int64_t>();
  std::optional<std::int64_t> number;
  if (value->is_int64()) {
    number = value->get_int64();
  } else if (value->is_uint64() && value->get_uint64() <= static_cast<std::uint64_t>(max)) {
    number = static_cast<std::int64_t>(value->get_uint64());
  } else if (value->is_double()) {
    double d = value->get_double();
    if (d == static_cast<double>(static_cast<std::int64_t>(d))) {
      number = static_cast<std::int64_t>(d);
    }
  }
  if (!number || *number < min || *number > max) {
    return MakeError(ErrorCode::kInvalidArgument,
                     KeyPath(path, key) + ": expected a whole number from " + std::to_string(min) +
                         " to " + std::to_string(max) + ", got " + Describe(*value));
  }
  return number;
}

Result<const JsonObject*> ReadObject(const JsonObject& config, std::string_view key,
                                     std::string_view path) {
  const Json* value = config.if_contains(key);
  if (value == nullptr || value->is_null()) return static_cast<const JsonObject*>(nullptr);
  if (!value->is_object()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     KeyPath(path, key) + ": expected an object, got " + Describe(*value));
  }
  return &value->get_object();
}

Status RefuseUnknownKeys(const JsonObject& config, std::initializer_list<std::string_view> known,
                         std::string_view path) {
  for (const auto& entry : config) {
    bool found = false;
    for (std::string_view name : known) found = found || name == entry.key();
    if (found) continue;
    std::string list;
    for (std::string_view name : known) {
      if (!list.empty()) list += ", ";
      list += name;
    }
    std::vector<std::string_view> names(known.begin(), known.end());
    std::string best = ClosestName(entry.key(), names);
    return MakeError(ErrorCode::kInvalidArgument,
                     KeyPath(path, entry.key()) + ": unknown option (known: " + list + ")" +
                         (best.empty() ? "" : " (did you mean '" + best + "'?)"));
  }
  return Ok();
}

std::string RedactValues(std::string text, const std::vector<std::string>& secrets) {
  // Longest first, so that a secret holding a shorter one ("Basic <b64>" and "<b64>") is
  // masked whole.
  std::vector<const std::string*> ordered;
  for (const std::string& secret : secrets) {
    if (!secret.empty()) ordered.push_back(&secret);
  }
  std::stable_sort(ordered.begin(), ordered.end(),
                   [](const std::string* a, const std::string* b) {
                     return a->size() > b->size();
                   });
  for (const std::string* secret : ordered) {
    for (std::size_t at = text.find(*secret); at != std::string::npos;
         at = text.find(*secret, at + 3)) {
      text.replace(at, secret->size(), "***");
    }
  }
  return RedactSecrets(text);
}

Status CheckCertificateFile(const std::string& file, std::string_view key,
                            std::string_view path) {
  const std::string fix =
      "; give the path of a PEM file with the CA certificates that signed the server's "
      "certificate, or remove " + std::string(key) + " to use the system's";
  std::error_code error;
  if (std::filesystem::is_directory(file, error)) {
    return MakeError(ErrorCode::kInvalidArgument,
                     KeyPath(path, key) + ": '" + file + "' is a directory, not a file" + fix);
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    return MakeError(ErrorCode::kInvalidArgument, KeyPath(path, key) + ": cannot read '" + file +
                                                      "' (" + std::strerror(errno) + ")" + fix);
  }
  std::string head(64 * 1024, '\0');
  in.read(head.data(), static_cast<std::streamsize>(head.size()));
  head.resize(static_cast<std::size_t>(in.gcount()));
  if (head.find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
    return MakeError(ErrorCode::kInvalidArgument,
                     KeyPath(path, key) + ": '" + file +
                         "' holds no PEM certificate (no -----BEGIN CERTIFICATE----- line)" + fix);
  }
  return Ok();
}

bool IsSensitiveHeader(std::string_view name) {
  std::string lower;
  for (char c : name) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (std::string_view word :
       {"token", "key", "secret", "auth", "signature", "password", "cookie"}) {
    if (lower.find(word) != std::string::npos) return true;
  }
  return false;
}

void AddHeaderSecrets(std::string_view value, std::vector<std::string>& out) {
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
  if (value.empty()) return;
  out.emplace_back(value);
  std::size_t space = value.find(' ');
  if (space == std::string_view::npos) return;
  std::string_view credential = value.substr(space + 1);
  while (!credential.empty() && credential.front() == ' ') credential.remove_prefix(1);
  if (!credential.empty()) out.emplace_back(credential);
}

std::vector<std::string> RegisterSecrets(std::vector<std::string> secrets) {
  std::erase_if(secrets, [](const std::string& secret) { return secret.empty(); });
  for (const std::string& secret : secrets) RegisterSecret(secret);
  return secrets;
}

std::string BodySnippet(std::string_view body, std::size_t limit) {
  std::string out;
  for (char c : body.substr(0, limit)) {
    auto byte = static_cast<unsigned char>(c);
    out += byte < 0x20 ? ' ' : byte >= 0x7f ? '?' : c;
  }
  if (body.size() > limit) out += "...";
  return out;
}

}  // namespace s3db::replicator::network
