// A FAKE BigQuery REST API and Google OAuth token endpoint; see bigquery_fake.h for what it
// enforces. Not BigQuery.
#include "bigquery_fake.h"

#include <httplib.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>

namespace s3db::testing {
namespace {

// ---------------------------------------------------------------------------------------------
// Keys

struct TestKey {
  EVP_PKEY* pkey = nullptr;
  std::string pem;
};

TestKey GenerateKey() {
  TestKey key;
  key.pkey = EVP_RSA_gen(2048);
  if (key.pkey == nullptr) throw std::runtime_error("fake: EVP_RSA_gen failed");
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, key.pkey, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long length = BIO_get_mem_data(bio, &data);
  key.pem.assign(data, static_cast<std::size_t>(length));
  BIO_free(bio);
  return key;
}

const TestKey& TrustedKey() {
  static const TestKey key = GenerateKey();  // lives until exit
  return key;
}

const TestKey& OtherKey() {
  static const TestKey key = GenerateKey();
  return key;
}

std::string RandomHex(std::size_t bytes) {
  std::string raw(bytes, '\0');
  RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes));
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Small codecs (written here, independent of the driver's)

std::optional<std::string> DecodeBase64Url(std::string_view text) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
  };
  std::string out;
  int bits = 0;
  std::uint32_t buffer = 0;
  for (char c : text) {
    int v = value(c);
    if (v < 0) return std::nullopt;
    buffer = (buffer << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((buffer >> bits) & 0xFF);
    }
  }
  return out;
}

std::string FormDecode(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '+') {
      out += ' ';
    } else if (c == '%' && i + 2 < text.size() &&
               std::isxdigit(static_cast<unsigned char>(text[i + 1])) &&
               std::isxdigit(static_cast<unsigned char>(text[i + 2]))) {
      out +=
          static_cast<char>(std::strtol(std::string(text.substr(i + 1, 2)).c_str(), nullptr, 16));
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

std::map<std::string, std::string> ParseForm(std::string_view body) {
  std::map<std::string, std::string> form;
  std::size_t start = 0;
  while (start <= body.size()) {
    std::size_t end = body.find('&', start);
    if (end == std::string_view::npos) end = body.size();
    std::string_view pair = body.substr(start, end - start);
    std::size_t equals = pair.find('=');
    if (equals != std::string_view::npos) {
      form[FormDecode(pair.substr(0, equals))] = FormDecode(pair.substr(equals + 1));
    }
    start = end + 1;
  }
  return form;
}

std::string Upper(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

bool AllDigits(std::string_view text) {
  return !text.empty() &&
         std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// "YYYY-MM-DD[( |T)HH:MM[:SS[.ffffff]]][Z|(+|-)HH[[:]MM]| UTC]", or a number of seconds.
bool IsTimestampText(std::string_view text) {
  if (text.size() < 10 || !AllDigits(text.substr(0, 4)) || text[4] != '-' ||
      !AllDigits(text.substr(5, 2)) || text[7] != '-' || !AllDigits(text.substr(8, 2))) {
    return false;
  }
  int month = std::stoi(std::string(text.substr(5, 2)));
  int day = std::stoi(std::string(text.substr(8, 2)));
  if (month < 1 || month > 12 || day < 1 || day > 31) return false;
  std::string_view rest = text.substr(10);
  if (rest.empty()) return true;
  if (rest[0] != 'T' && rest[0] != ' ') return false;
  rest.remove_prefix(1);
  if (rest.size() < 5 || !AllDigits(rest.substr(0, 2)) || rest[2] != ':' ||
      !AllDigits(rest.substr(3, 2))) {
    return false;
  }
  if (std::stoi(std::string(rest.substr(0, 2))) > 23 ||
      std::stoi(std::string(rest.substr(3, 2))) > 59) {
    return false;
  }
  rest.remove_prefix(5);
  if (!rest.empty() && rest[0] == ':') {
    if (rest.size() < 3 || !AllDigits(rest.substr(1, 2))) return false;
    rest.remove_prefix(3);
    if (!rest.empty() && rest[0] == '.') {
      std::size_t digits = 1;
      while (digits < rest.size() && std::isdigit(static_cast<unsigned char>(rest[digits]))) {
        ++digits;
      }
      if (digits == 1 || digits > 7) return false;
      rest.remove_prefix(digits);
    }
  }
  if (rest.empty() || rest == "Z" || rest == " UTC") return true;
  if (rest[0] != '+' && rest[0] != '-') return false;
  rest.remove_prefix(1);
  if (rest.size() == 2) return AllDigits(rest);
  if (rest.size() == 4) return AllDigits(rest);
  if (rest.size() == 5)
    return AllDigits(rest.substr(0, 2)) && rest[2] == ':' && AllDigits(rest.substr(3));
  return false;
}

bool IsIntegerText(std::string_view text) {
  if (!text.empty() && (text[0] == '-' || text[0] == '+')) text.remove_prefix(1);
  if (!AllDigits(text) || text.size() > 19) return false;
  if (text.size() == 19 && text > "9223372036854775807") return false;
  return true;
}

bool IsNumericText(std::string_view text) {
  if (!text.empty() && (text[0] == '-' || text[0] == '+')) text.remove_prefix(1);
  std::size_t dot = text.find('.');
  std::string_view whole = text.substr(0, dot);
  std::string_view fraction = dot == std::string_view::npos ? "" : text.substr(dot + 1);
  if (whole.empty() && fraction.empty()) return false;
  if (!whole.empty() && !AllDigits(whole)) return false;
  if (!fraction.empty() && !AllDigits(fraction)) return false;
  return whole.size() <= 29 && fraction.size() <= 9;
}

bool IsFloatText(std::string_view text) {
  if (text.empty()) return false;
  std::string copy(text);
  char* end = nullptr;
  std::strtod(copy.c_str(), &end);
  return end == copy.c_str() + copy.size();
}

// ---------------------------------------------------------------------------------------------
// Schemas

struct FakeField {
  std::string name;
  std::string type;  // canonical: STRING INTEGER FLOAT NUMERIC BOOLEAN TIMESTAMP JSON RECORD …
  std::string mode;  // NULLABLE REQUIRED REPEATED
  std::vector<FakeField> fields;
};

std::optional<std::string> CanonicalType(std::string_view name) {
  std::string upper = Upper(name);
  if (upper == "INT64" || upper == "INTEGER") return "INTEGER";
  if (upper == "FLOAT64" || upper == "FLOAT") return "FLOAT";
  if (upper == "BOOL" || upper == "BOOLEAN") return "BOOLEAN";
  if (upper == "STRUCT" || upper == "RECORD") return "RECORD";
  static const std::set<std::string> kOthers = {"STRING",    "BYTES", "NUMERIC", "BIGNUMERIC",
                                                "TIMESTAMP", "DATE",  "TIME",    "DATETIME",
                                                "GEOGRAPHY", "JSON"};
  if (kOthers.count(upper) != 0) return upper;
  return std::nullopt;
}

bool IsColumnName(std::string_view name) {
  if (name.empty() || name.size() > 300) return false;
  if (!(std::isalpha(static_cast<unsigned char>(name[0])) || name[0] == '_')) return false;
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  }
  std::string upper = Upper(name);
  for (const char* prefix :
       {"_TABLE_", "_FILE_", "_PARTITION", "_ROW_TIMESTAMP", "__ROOT__", "_COLIDENTIFIER"}) {
    if (upper.rfind(prefix, 0) == 0) return false;
  }
  return true;
}

// Table ids: the fake refuses ASCII punctuation other than '_', '-' and ' ' (a subset of the
// documented categories check) and more than 1,024 bytes.
bool IsTableName(std::string_view name) {
  if (name.empty() || name.size() > 1024) return false;
  for (char c : name) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x80 && !(std::isalnum(u) || c == '_' || c == '-' || c == ' ')) return false;
  }
  return true;
}

bool ParseFields(const Json& value, std::vector<FakeField>& out, std::string& error,
                 const std::string& prefix = "") {
  if (!value.is_array()) {
    error = "schema fields must be an array";
    return false;
  }
  std::set<std::string> seen;
  for (const Json& item : value.get_array()) {
    const JsonObject* object = item.if_object();
    const Json* name = object ? object->if_contains("name") : nullptr;
    const Json* type = object ? object->if_contains("type") : nullptr;
    if (name == nullptr || !name->is_string() || type == nullptr || !type->is_string()) {
      error = "Invalid field: a field needs a name and a type";
      return false;
    }
    FakeField field;
    field.name = std::string(name->get_string());
    std::string path = prefix.empty() ? field.name : prefix + "." + field.name;
    if (!IsColumnName(field.name)) {
      error = "Invalid field name \"" + path +
              "\". Fields must contain only letters, numbers, "
              "and underscores, start with a letter or underscore, and be at most 300 "
              "characters long.";
      return false;
    }
    if (!seen.insert(Upper(field.name)).second) {
      error = "Field " + path + " already exists in schema";
      return false;
    }
    auto canonical = CanonicalType(type->get_string());
    if (!canonical) {
      error =
          "Invalid value for type: " + std::string(type->get_string()) + " is not a valid value";
      return false;
    }
    field.type = *canonical;
    field.mode = "NULLABLE";
    if (const Json* mode = object->if_contains("mode"); mode != nullptr) {
      std::string text = mode->is_string() ? Upper(mode->get_string()) : "";
      if (text != "NULLABLE" && text != "REQUIRED" && text != "REPEATED") {
        error = "Invalid value for mode of field " + path;
        return false;
      }
      field.mode = text;
    }
    if (field.type == "RECORD") {
      const Json* sub = object->if_contains("fields");
      if (sub == nullptr || !sub->is_array() || sub->get_array().empty()) {
        error = "Field " + path + " is type RECORD but has no schema";
        return false;
      }
      if (!ParseFields(*sub, field.fields, error, path)) return false;
    }
    out.push_back(std::move(field));
  }
  return true;
}

Json FieldsJson(const std::vector<FakeField>& fields) {
  JsonArray array;
  for (const FakeField& field : fields) {
    JsonObject object;
    object["name"] = field.name;
    object["type"] = field.type;
    object["mode"] = field.mode;
    if (!field.fields.empty()) object["fields"] = FieldsJson(field.fields);
    array.push_back(std::move(object));
  }
  return array;
}

const FakeField* Find(const std::vector<FakeField>& fields, std::string_view name) {
  for (const FakeField& field : fields) {
    if (Upper(field.name) == Upper(name)) return &field;
  }
  return nullptr;
}

// A patch keeps every field with its type; it may relax REQUIRED to NULLABLE and add
// NULLABLE or REPEATED fields.
bool CheckPatch(const std::vector<FakeField>& old_fields, const std::vector<FakeField>& new_fields,
                const std::string& table, std::string& error, const std::string& prefix = "") {
  for (const FakeField& old_field : old_fields) {
    std::string path = prefix.empty() ? old_field.name : prefix + "." + old_field.name;
    const FakeField* now = Find(new_fields, old_field.name);
    if (now == nullptr) {
      error = "Provided Schema does not match Table " + table + ". Field " + path +
              " is missing in new schema";
      return false;
    }
    if (now->type != old_field.type) {
      error = "Provided Schema does not match Table " + table + ". Field " + path +
              " has changed type from " + old_field.type + " to " + now->type;
      return false;
    }
    bool relaxed = old_field.mode == "REQUIRED" && now->mode == "NULLABLE";
    if (now->mode != old_field.mode && !relaxed) {
      error = "Provided Schema does not match Table " + table + ". Field " + path +
              " has changed mode from " + old_field.mode + " to " + now->mode;
      return false;
    }
    if (old_field.type == "RECORD" &&
        !CheckPatch(old_field.fields, now->fields, table, error, path)) {
      return false;
    }
  }
  for (const FakeField& now : new_fields) {
    if (Find(old_fields, now.name) == nullptr && now.mode == "REQUIRED") {
      error = "Provided Schema does not match Table " + table +
              ". Cannot add required fields "
              "to an existing schema. (field: " +
              now.name + ")";
      return false;
    }
  }
  return true;
}

enum class Flavor { kStreaming, kLoad };

// Checks one value against its column; empty string when it fits. `out` gets the stored form.
std::string CheckValue(const FakeField& field, const Json& value, Flavor flavor,
                       bool ignore_unknown, Json& out, const std::string& path);

std::string CheckObject(const std::vector<FakeField>& fields, const JsonObject& object,
                        Flavor flavor, bool ignore_unknown, JsonObject& out,
                        const std::string& prefix) {
  for (const auto& [key, value] : object) {
    std::string path = prefix.empty() ? std::string(key) : prefix + "." + std::string(key);
    const FakeField* field = Find(fields, key);
    if (field == nullptr) {
      if (ignore_unknown) continue;
      return "no such field: " + path + ".";
    }
    Json stored;
    std::string error = CheckValue(*field, value, flavor, ignore_unknown, stored, path);
    if (!error.empty()) return error;
    if (!stored.is_null()) out[field->name] = std::move(stored);
  }
  for (const FakeField& field : fields) {
    if (field.mode == "REQUIRED" && !out.contains(field.name)) {
      return "Missing required field: " +
             (prefix.empty() ? field.name : prefix + "." + field.name) + ".";
    }
  }
  return "";
}

std::string CheckScalar(const FakeField& field, const Json& value, Flavor flavor,
                        bool ignore_unknown, Json& out, const std::string& path) {
  const std::string& type = field.type;
  auto fail = [&](std::string what) {
    return what + " Field: " + path + "; Value: " + ToJson(value);
  };
  if (type == "STRING" || type == "BYTES" || type == "DATE" || type == "TIME" ||
      type == "DATETIME" || type == "GEOGRAPHY" || type == "BIGNUMERIC") {
    if (value.is_object() || value.is_array()) return fail("This field is not a record.");
    out = value.is_string() ? value : Json(ToJson(value));
    return "";
  }
  if (type == "INTEGER") {
    if (value.is_int64()) {
      out = value;
      return "";
    }
    if (value.is_double() &&
        value.get_double() == static_cast<double>(static_cast<std::int64_t>(value.get_double()))) {
      out = static_cast<std::int64_t>(value.get_double());
      return "";
    }
    if (value.is_string() && IsIntegerText(value.get_string())) {
      out = std::stoll(std::string(value.get_string()));
      return "";
    }
    return fail("Cannot convert value to integer (bad value).");
  }
  if (type == "FLOAT") {
    if (value.is_number()) {
      out = value.to_number<double>();
      return "";
    }
    if (value.is_string() && IsFloatText(value.get_string())) {
      out = std::strtod(std::string(value.get_string()).c_str(), nullptr);
      return "";
    }
    return fail("Cannot convert value to floating point (bad value).");
  }
  if (type == "NUMERIC") {
    if (value.is_string() && IsNumericText(value.get_string())) {
      out = value;
      return "";
    }
    if (value.is_int64() || value.is_uint64()) {
      out = ToJson(value);
      return "";
    }
    if (value.is_double()) {
      out = ToJson(value);
      return "";
    }
    return fail("Invalid NUMERIC value.");
  }
  if (type == "BOOLEAN") {
    if (value.is_bool()) {
      out = value;
      return "";
    }
    if (value.is_string() &&
        (Upper(value.get_string()) == "TRUE" || Upper(value.get_string()) == "FALSE")) {
      out = Upper(value.get_string()) == "TRUE";
      return "";
    }
    return fail("Cannot convert value to boolean.");
  }
  if (type == "TIMESTAMP") {
    if (value.is_number() || (value.is_string() && IsTimestampText(value.get_string()))) {
      out = value;
      return "";
    }
    return fail("Couldn't convert value to timestamp.");
  }
  if (type == "JSON") {
    if (flavor == Flavor::kStreaming) {
      if (!value.is_string()) return fail("JSON values must be sent as JSON text strings.");
      auto parsed = ParseJson(value.get_string());
      if (!parsed) return fail("Invalid JSON text.");
      out = std::move(*parsed);
      return "";
    }
    out = value;
    return "";
  }
  if (type == "RECORD") {
    if (!value.is_object()) return fail("This field is a record, the value is not an object.");
    JsonObject nested;
    std::string error =
        CheckObject(field.fields, value.get_object(), flavor, ignore_unknown, nested, path);
    if (!error.empty()) return error;
    out = std::move(nested);
    return "";
  }
  return fail("Unsupported type.");
}

std::string CheckValue(const FakeField& field, const Json& value, Flavor flavor,
                       bool ignore_unknown, Json& out, const std::string& path) {
  if (value.is_null()) {
    if (field.mode == "REQUIRED") return "Missing required field: " + path + ".";
    out = nullptr;
    return "";
  }
  if (field.mode == "REPEATED") {
    if (!value.is_array())
      return "Array specified for non-repeated field or a non-array for "
             "repeated field: " +
             path + ".";
    JsonArray items;
    for (const Json& item : value.get_array()) {
      if (item.is_null()) return "Repeated field " + path + " contains a null.";
      Json stored;
      std::string error = CheckScalar(field, item, flavor, ignore_unknown, stored, path);
      if (!error.empty()) return error;
      items.push_back(std::move(stored));
    }
    out = std::move(items);
    return "";
  }
  if (value.is_array() && field.type != "JSON") {
    return "Array specified for non-repeated field: " + path + ".";
  }
  return CheckScalar(field, value, flavor, ignore_unknown, out, path);
}

// ---------------------------------------------------------------------------------------------
// Replies

JsonObject ErrorBody(int status, const std::string& reason, const std::string& message) {
  JsonObject detail;
  detail["message"] = message;
  detail["domain"] = "global";
  detail["reason"] = reason;
  JsonArray errors;
  errors.push_back(std::move(detail));
  JsonObject error;
  error["code"] = status;
  error["message"] = message;
  error["errors"] = std::move(errors);
  error["status"] = status == 400   ? "INVALID_ARGUMENT"
                    : status == 401 ? "UNAUTHENTICATED"
                    : status == 403 ? "PERMISSION_DENIED"
                    : status == 404 ? "NOT_FOUND"
                    : status == 409 ? "ALREADY_EXISTS"
                                    : "INTERNAL";
  JsonObject body;
  body["error"] = std::move(error);
  return body;
}

void Reply(httplib::Response& res, int status, const Json& body) {
  res.status = status;
  res.set_content(ToJson(body), "application/json; charset=UTF-8");
}

void ReplyError(httplib::Response& res, int status, const std::string& reason,
                const std::string& message) {
  Reply(res, status, ErrorBody(status, reason, message));
}

struct FakeTable {
  std::string project;
  std::string dataset;
  std::string table;
  JsonObject resource;
  std::vector<FakeField> schema;
  std::vector<JsonObject> rows;
  std::vector<std::int64_t> streamed_at;  // per row: when insertAll stored it (0: not streamed)
  std::map<std::string, std::int64_t> seen_insert_ids;
  std::vector<FakeField> streaming_schema;  // what insertAll checks until streaming_until
  std::int64_t streaming_until = 0;
};

struct FakeJob {
  JsonObject resource;
  std::string location;
  int polls_left = 0;
  std::function<void(JsonObject& status)> finish;  // runs under the state lock at DONE
};

bool SameLocation(const std::string& a, const std::string& b) { return Upper(a) == Upper(b); }

std::string NotInLocation(const std::string& project, const std::string& dataset,
                          const std::string& location) {
  return "Not found: Dataset " + project + ":" + dataset + " was not found in location " + location;
}

thread_local std::size_t current_request = 0;  // index in requests of the request being served

struct Programmed {
  std::string method;
  std::string path_part;
  FakeBigQueryReply reply;
  int remaining = 0;
};

}  // namespace

struct FakeBigQuery::State {
  Options options;
  httplib::Server server;
  std::thread thread;
  int port = 0;

  mutable std::mutex mutex;                          // guards everything below
  std::map<std::string, std::string> datasets;       // "p:d" -> location
  std::map<std::string, FakeTable> tables;           // "p:d.t"
  std::map<std::string, std::int64_t> tokens;        // token -> expiry (fake clock, seconds)
  std::map<std::string, FakeJob> jobs;               // "p:jobId"
  std::map<std::string, std::string> query_replies;  // requestId -> reply body
  std::vector<Programmed> programmed;
  std::map<std::string, std::pair<std::string, int>> row_failures;  // insertId -> reason, count
  std::deque<std::string> job_failures;
  std::int64_t clock_offset = 0;
  Counters counters;
  std::vector<Request> requests;
  std::vector<std::string> insert_ids;
  std::vector<std::string> violations;
  std::vector<TokenGrant> grants;
  int next_job = 1;
  // authorized_user credentials this fake accepts.
  std::string user_client_id = "764086051850-fake.apps.googleusercontent.com";
  std::string user_client_secret = "fake-secret-" + RandomHex(12);
  std::string user_refresh_token = "1//fake-refresh-" + RandomHex(20);
  bool refresh_token_revoked = false;

  // The location of dataset "p:d", or "" when there is no such dataset.
  std::string DatasetLocationLocked(const std::string& project, const std::string& dataset) const {
    auto found = datasets.find(project + ":" + dataset);
    return found == datasets.end() ? "" : found->second;
  }

  std::int64_t NowLocked() const {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
               .count() +
           clock_offset;
  }

  FakeTable* FindTable(const std::string& project, const std::string& dataset,
                       const std::string& table) {
    auto found = tables.find(project + ":" + dataset + "." + table);
    return found == tables.end() ? nullptr : &found->second;
  }

  void Register();
  void HandleToken(const httplib::Request& req, httplib::Response& res);
  void HandleRefreshGrant(std::map<std::string, std::string>& form, httplib::Response& res);
  void HandleDatasetGet(const httplib::Request& req, httplib::Response& res);
  void HandleTableInsert(const httplib::Request& req, httplib::Response& res);
  void HandleTableGet(const httplib::Request& req, httplib::Response& res);
  void HandleTablePatch(const httplib::Request& req, httplib::Response& res);
  void HandleInsertAll(const httplib::Request& req, httplib::Response& res);
  void HandleJobInsert(const httplib::Request& req, httplib::Response& res);
  void HandleJobGet(const httplib::Request& req, httplib::Response& res);
  void HandleQuery(const httplib::Request& req, httplib::Response& res);

  // Records the request, applies a programmed reply and checks the token. False when the
  // request has been answered.
  bool Admit(const httplib::Request& req, httplib::Response& res, bool needs_token);
  JsonObject TableResource(const FakeTable& table) const;
  void FinishLoad(FakeTable* table, const std::string& data, const JsonObject& load,
                  JsonObject& status, JsonObject& statistics);
  // Runs the driver's MERGE; false with reason/message when it fails.
  bool RunMerge(const std::string& project, const std::string& sql, const std::string& rows_text,
                std::int64_t& affected, std::string& reason, std::string& message);
};

bool FakeBigQuery::State::Admit(const httplib::Request& req, httplib::Response& res,
                                bool needs_token) {
  std::optional<FakeBigQueryReply> programmed_reply;
  bool authorized = false;
  {
    std::lock_guard lock(mutex);
    std::string authorization = req.get_header_value("Authorization");
    if (authorization.rfind("Bearer ", 0) == 0) {
      auto found = tokens.find(authorization.substr(7));
      authorized = found != tokens.end() && found->second > NowLocked();
    }
    Request record;
    record.method = req.method;
    record.path = req.path;
    record.body_bytes = req.body.size();
    record.authorized = authorized;
    record.location = req.get_param_value("location");
    record.user_project = req.get_header_value("x-goog-user-project");
    current_request = requests.size();
    requests.push_back(record);
    if (needs_token) ++counters.api_requests;
    for (Programmed& entry : programmed) {
      if (entry.remaining > 0 && entry.method == req.method &&
          req.path.find(entry.path_part) != std::string::npos) {
        --entry.remaining;
        programmed_reply = entry.reply;
        ++counters.programmed_failures;
        break;
      }
    }
  }
  if (programmed_reply) {
    if (programmed_reply->delay_ms > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(programmed_reply->delay_ms));
    }
    if (programmed_reply->status != 0) {
      if (programmed_reply->retry_after_seconds > 0) {
        res.set_header("Retry-After", std::to_string(programmed_reply->retry_after_seconds));
      }
      ReplyError(res, programmed_reply->status, programmed_reply->reason,
                 programmed_reply->message);
      return false;
    }
  }
  if (needs_token && !authorized) {
    std::lock_guard lock(mutex);
    ++counters.unauthorized_replies;
    res.set_header("WWW-Authenticate", "Bearer realm=\"https://accounts.google.com/\"");
    bool absent = req.get_header_value("Authorization").empty();
    ReplyError(res, 401, absent ? "required" : "authError",
               absent ? "Request is missing required authentication credential."
                      : "Request had invalid authentication credentials.");
    return false;
  }
  return true;
}

void FakeBigQuery::State::HandleToken(const httplib::Request& req, httplib::Response& res) {
  if (!Admit(req, res, false)) return;
  std::lock_guard lock(mutex);
  ++counters.token_requests;
  auto refuse = [&](int status, const std::string& error, const std::string& description) {
    ++counters.tokens_refused;
    JsonObject body;
    body["error"] = error;
    body["error_description"] = description;
    Reply(res, status, body);
  };
  std::string content_type = req.get_header_value("Content-Type");
  if (content_type.rfind("application/x-www-form-urlencoded", 0) != 0) {
    violations.push_back("token request with Content-Type '" + content_type + "'");
    return refuse(400, "invalid_request", "Content-Type must be application/x-www-form-urlencoded");
  }
  auto form = ParseForm(req.body);
  if (form["grant_type"] == "refresh_token") return HandleRefreshGrant(form, res);
  grants.push_back({form["grant_type"], "", "", false, ""});
  auto refuse_grant = refuse;
  auto refuse_recorded = [&](int status, const std::string& error, const std::string& description) {
    grants.back().error = error + ": " + description;
    refuse_grant(status, error, description);
  };
  if (form["grant_type"] != "urn:ietf:params:oauth:grant-type:jwt-bearer") {
    return refuse_recorded(400, "unsupported_grant_type",
                           "Invalid grant_type: " + form["grant_type"]);
  }
  const std::string& assertion = form["assertion"];
  std::size_t first = assertion.find('.');
  std::size_t second = first == std::string::npos ? first : assertion.find('.', first + 1);
  if (second == std::string::npos)
    return refuse_recorded(400, "invalid_grant", "Invalid JWT: malformed");
  auto header_text = DecodeBase64Url(std::string_view(assertion).substr(0, first));
  auto claims_text =
      DecodeBase64Url(std::string_view(assertion).substr(first + 1, second - first - 1));
  auto signature = DecodeBase64Url(std::string_view(assertion).substr(second + 1));
  if (!header_text || !claims_text || !signature) {
    return refuse_recorded(400, "invalid_grant", "Invalid JWT: not base64url");
  }
  auto header = ParseJsonObject(*header_text);
  auto claims = ParseJsonObject(*claims_text);
  if (!header || !claims) return refuse_recorded(400, "invalid_grant", "Invalid JWT: not JSON");
  if (const Json* kid = header->if_contains("kid"); kid != nullptr && kid->is_string()) {
    grants.back().key_id = std::string(kid->get_string());
  }
  if (const Json* iss = claims->if_contains("iss"); iss != nullptr && iss->is_string()) {
    grants.back().subject = std::string(iss->get_string());
  }
  const Json* alg = header->if_contains("alg");
  if (alg == nullptr || !alg->is_string() || alg->get_string() != "RS256") {
    return refuse_recorded(400, "invalid_grant", "Invalid JWT: alg must be RS256");
  }

  EVP_MD_CTX* context = EVP_MD_CTX_new();
  std::string signed_part = assertion.substr(0, second);
  bool valid =
      EVP_DigestVerifyInit(context, nullptr, EVP_sha256(), nullptr, TrustedKey().pkey) == 1 &&
      EVP_DigestVerify(
          context, reinterpret_cast<const unsigned char*>(signature->data()), signature->size(),
          reinterpret_cast<const unsigned char*>(signed_part.data()), signed_part.size()) == 1;
  EVP_MD_CTX_free(context);
  if (!valid) return refuse_recorded(400, "invalid_grant", "Invalid JWT Signature.");

  auto text = [&](const char* name) {
    const Json* value = claims->if_contains(name);
    return value != nullptr && value->is_string() ? std::string(value->get_string()) : "";
  };
  auto number = [&](const char* name) -> std::optional<std::int64_t> {
    const Json* value = claims->if_contains(name);
    if (value == nullptr || !value->is_number()) return std::nullopt;
    return static_cast<std::int64_t>(value->to_number<double>());
  };
  if (text("iss") != options.client_email) {
    return refuse_recorded(400, "invalid_grant", "Invalid grant: account not found");
  }
  std::string expected_audience = "http://127.0.0.1:" + std::to_string(port) + "/token";
  if (text("aud") != expected_audience) {
    return refuse_recorded(400, "invalid_grant", "Invalid JWT: aud must be the token endpoint");
  }
  std::string scope = " " + text("scope") + " ";
  if (scope.find(" https://www.googleapis.com/auth/bigquery ") == std::string::npos &&
      scope.find(" https://www.googleapis.com/auth/cloud-platform ") == std::string::npos) {
    return refuse_recorded(400, "invalid_scope",
                           "Invalid OAuth scope or ID token audience provided.");
  }
  auto iat = number("iat");
  auto exp = number("exp");
  std::int64_t now = NowLocked();
  if (!iat || !exp || *exp <= now || *iat > now + 60 || *exp - *iat > 3600 || *exp <= *iat) {
    return refuse_recorded(400, "invalid_grant",
                           "Invalid JWT: Token must be a short-lived token (60 minutes) and in a "
                           "reasonable timeframe. Check your iat and exp values in the JWT claim.");
  }

  grants.back().accepted = true;
  std::string token = "ya29.fake-" + RandomHex(24);
  tokens[token] = now + options.token_lifetime_seconds;
  JsonObject body;
  body["access_token"] = token;
  body["expires_in"] = options.token_lifetime_seconds;
  body["token_type"] = "Bearer";
  Reply(res, 200, body);
}

// RFC 6749 section 6 as Google's endpoint answers it (called with the lock held).
void FakeBigQuery::State::HandleRefreshGrant(std::map<std::string, std::string>& form,
                                             httplib::Response& res) {
  grants.push_back({"refresh_token", "", form["client_id"], false, ""});
  auto refuse = [&](int status, const std::string& error, const std::string& description) {
    ++counters.tokens_refused;
    grants.back().error = error + ": " + description;
    JsonObject body;
    body["error"] = error;
    body["error_description"] = description;
    Reply(res, status, body);
  };
  for (const char* name : {"client_id", "client_secret", "refresh_token"}) {
    if (form[name].empty()) {
      return refuse(400, "invalid_request", std::string("Missing required parameter: ") + name);
    }
  }
  if (form["client_id"] != user_client_id) {
    return refuse(401, "invalid_client", "The OAuth client was not found.");
  }
  if (form["client_secret"] != user_client_secret) {
    return refuse(401, "invalid_client", "Unauthorized");
  }
  if (form["refresh_token"] != user_refresh_token || refresh_token_revoked) {
    return refuse(400, "invalid_grant", "Token has been expired or revoked.");
  }
  if (form.count("scope") != 0 || form.count("assertion") != 0) {
    violations.push_back("refresh_token grant with a scope or an assertion");
  }
  grants.back().accepted = true;
  std::string token = "ya29.fake-user-" + RandomHex(24);
  tokens[token] = NowLocked() + options.token_lifetime_seconds;
  JsonObject body;
  body["access_token"] = token;
  body["expires_in"] = options.token_lifetime_seconds;
  body["scope"] = "https://www.googleapis.com/auth/cloud-platform openid";
  body["token_type"] = "Bearer";
  Reply(res, 200, body);
}

JsonObject FakeBigQuery::State::TableResource(const FakeTable& table) const {
  JsonObject resource = table.resource;
  JsonObject schema;
  schema["fields"] = FieldsJson(table.schema);
  resource["schema"] = std::move(schema);
  resource["numRows"] = std::to_string(table.rows.size());
  return resource;
}

void FakeBigQuery::State::HandleDatasetGet(const httplib::Request& req, httplib::Response& res) {
  if (!Admit(req, res, true)) return;
  std::string project = req.matches[1];
  std::string dataset = req.matches[2];
  std::lock_guard lock(mutex);
  auto found = datasets.find(project + ":" + dataset);
  if (found == datasets.end()) {
    return ReplyError(res, 404, "notFound", "Not found: Dataset " + project + ":" + dataset);
  }
  JsonObject reference;
  reference["projectId"] = project;
  reference["datasetId"] = dataset;
  JsonObject body;
  body["kind"] = "bigquery#dataset";
  body["id"] = project + ":" + dataset;
  body["datasetReference"] = std::move(reference);
  body["location"] = found->second;
  Reply(res, 200, body);
}

void FakeBigQuery::State::HandleTableInsert(const httplib::Request& req, httplib::Response& res) {
  if (!Admit(req, res, true)) return;
  std::string project = req.matches[1];
  std::string dataset = req.matches[2];
  auto body = ParseJsonObject(req.body);
  if (!body) return ReplyError(res, 400, "parseError", "Parse Error");
  const JsonObject* reference = nullptr;
  if (const Json* value = body->if_contains("tableReference")) reference = value->if_object();
  auto text = [](const JsonObject* object, const char* name) {
    const Json* value = object ? object->if_contains(name) : nullptr;
    return value != nullptr && value->is_string() ? std::string(value->get_string()) : "";
  };
  std::string table_id = text(reference, "tableId");
  if (text(reference, "projectId") != project || text(reference, "datasetId") != dataset) {
    return ReplyError(res, 400, "invalid", "tableReference does not match the request path");
  }
  if (!IsTableName(table_id)) {
    return ReplyError(res, 400, "invalid", "Invalid table ID \"" + table_id + "\".");
  }
  std::vector<FakeField> fields;
  std::string error;
  if (const Json* schema = body->if_contains("schema")) {
    const JsonObject* object = schema->if_object();
    const Json* list = object ? object->if_contains("fields") : nullptr;
    if (list == nullptr || !ParseFields(*list, fields, error)) {
      return ReplyError(res, 400, "invalid", error.empty() ? "Invalid schema" : error);
    }
  }
  if (const Json* partitioning = body->if_contains("timePartitioning")) {
    const JsonObject* object = partitioning->if_object();
    std::string type = text(object, "type");
    if (type != "DAY" && type != "HOUR" && type != "MONTH" && type != "YEAR") {
      return ReplyError(res, 400, "invalid", "Invalid time partitioning type: " + type);
    }
    std::string field_name = text(object, "field");
    if (!field_name.empty()) {
      const FakeField* field = Find(fields, field_name);
      if (field == nullptr || field->mode == "REPEATED" ||
          (field->type != "TIMESTAMP" && field->type != "DATE" && field->type != "DATETIME")) {
        return ReplyError(res, 400, "invalid",
                          "The field specified for time partitioning can only be of type "
                          "TIMESTAMP, DATE or DATETIME. The type found is: " +
                              (field ? field->type : std::string("(missing)")) + ".");
      }
    }
  }
  if (const Json* clustering = body->if_contains("clustering")) {
    const JsonObject* object = clustering->if_object();
    const Json* list = object ? object->if_contains("fields") : nullptr;
    if (list == nullptr || !list->is_array() || list->get_array().size() > 4) {
      return ReplyError(res, 400, "invalid", "Too many clustering fields (at most 4).");
    }
    for (const Json& name : list->get_array()) {
      const FakeField* field = name.is_string() ? Find(fields, name.get_string()) : nullptr;
      if (field == nullptr || field->mode == "REPEATED" || field->type == "JSON" ||
          field->type == "RECORD" || field->type == "FLOAT") {
        return ReplyError(res, 400, "invalid",
                          "Field " + (name.is_string() ? std::string(name.get_string()) : "?") +
                              " cannot be a clustering field.");
      }
    }
  }

  std::lock_guard lock(mutex);
  if (datasets.count(project + ":" + dataset) == 0) {
    return ReplyError(res, 404, "notFound", "Not found: Dataset " + project + ":" + dataset);
  }
  std::string key = project + ":" + dataset + "." + table_id;
  if (tables.count(key) != 0) {
    return ReplyError(res, 409, "duplicate", "Already Exists: Table " + key);
  }
  FakeTable table;
  table.project = project;
  table.dataset = dataset;
  table.table = table_id;
  table.schema = std::move(fields);
  table.resource = *body;
  table.resource.erase("schema");
  table.resource["kind"] = "bigquery#table";
  table.resource["id"] = key;
  table.resource["creationTime"] = std::to_string(NowLocked() * 1000);
  ++counters.tables_inserted;
  auto& stored = tables[key] = std::move(table);
  Reply(res, 200, TableResource(stored));
}

void FakeBigQuery::State::HandleTableGet(const httplib::Request& req, httplib::Response& res) {
  if (!Admit(req, res, true)) return;
  std::lock_guard lock(mutex);
  FakeTable* table = FindTable(req.matches[1], req.matches[2], req.matches[3]);
  if (table == nullptr) {
    return ReplyError(res, 404, "notFound",
                      "Not found: Table " + std::string(req.matches[1]) + ":" +
                          std::string(req.matches[2]) + "." + std::string(req.matches[3]));
  }
  Reply(res, 200, TableResource(*table));
}

void FakeBigQuery::State::HandleTablePatch(const httplib::Request& req, httplib::Response& res) {
  if (!Admit(req, res, true)) return;
  auto body = ParseJsonObject(req.body);
  if (!body) return ReplyError(res, 400, "parseError", "Parse Error");
  std::lock_guard lock(mutex);
  FakeTable* table = FindTable(req.matches[1], req.matches[2], req.matches[3]);
  if (table == nullptr) {
    return ReplyError(res, 404, "notFound", "Not found: Table " + std::string(req.matches[3]));
  }
  if (const Json* schema = body->if_contains("schema")) {
    const JsonObject* object = schema->if_object();
    const Json* list = object ? object->if_contains("fields") : nullptr;
    std::vector<FakeField> fields;
    std::string error;
    if (list == nullptr || !ParseFields(*list, fields, error)) {
      return ReplyError(res, 400, "invalid", error.empty() ? "Invalid schema" : error);
    }
    std::string name = table->project + ":" + table->dataset + "." + table->table;
    if (!CheckPatch(table->schema, fields, name, error)) {
      return ReplyError(res, 400, "invalid", error);
    }
    if (options.streaming_schema_delay_seconds > 0) {
      table->streaming_schema = table->schema;
      table->streaming_until = NowLocked() + options.streaming_schema_delay_seconds;
    }
    table->schema = std::move(fields);
  }
  ++counters.tables_patched;
  Reply(res, 200, TableResource(*table));
}

void FakeBigQuery::State::HandleInsertAll(const httplib::Request& req, httplib::Response& res) {
  if (!Admit(req, res, true)) return;
  {
    std::lock_guard lock(mutex);
    ++counters.insert_all_requests;
  }
  if (req.body.size() > options.max_request_bytes) {
    return ReplyError(res, 400, "invalid",
                      "Request payload size exceeds the limit: " +
                          std::to_string(options.max_request_bytes) + " bytes.");
  }
  auto body = ParseJsonObject(req.body);
  if (!body) return ReplyError(res, 400, "parseError", "Parse Error");
  const Json* rows = body->if_contains("rows");
  if (rows == nullptr || !rows->is_array() || rows->get_array().empty()) {
    return ReplyError(res, 400, "invalid", "No rows present in the request.");
  }
  const JsonArray& list = rows->get_array();
  if (list.size() > options.max_rows_per_request) {
    return ReplyError(res, 400, "invalid",
                      "too many rows present in the request, limit: " +
                          std::to_string(options.max_rows_per_request) +
                          " row count: " + std::to_string(list.size()) + ".");
  }
  auto flag = [&](const char* name) {
    const Json* value = body->if_contains(name);
    return value != nullptr && value->is_bool() && value->get_bool();
  };
  bool skip_invalid = flag("skipInvalidRows");
  bool ignore_unknown = flag("ignoreUnknownValues");

  std::lock_guard lock(mutex);
  requests[current_request].rows = list.size();
  counters.rows_received += static_cast<int>(list.size());
  FakeTable* table = FindTable(req.matches[1], req.matches[2], req.matches[3]);
  if (table == nullptr) {
    return ReplyError(res, 404, "notFound",
                      "Not found: Table " + std::string(req.matches[1]) + ":" +
                          std::string(req.matches[2]) + "." + std::string(req.matches[3]));
  }
  struct RowOutcome {
    std::string reason;  // empty: fits
    std::string message;
    std::string location;
    JsonObject stored;
    std::string insert_id;
  };
  std::vector<RowOutcome> outcomes(list.size());
  bool any_invalid = false;
  for (std::size_t i = 0; i < list.size(); ++i) {
    const JsonObject* row = list[i].if_object();
    const Json* json = row ? row->if_contains("json") : nullptr;
    if (json == nullptr || !json->is_object()) {
      violations.push_back("insertAll row " + std::to_string(i) + " has no json object");
      return ReplyError(res, 400, "invalid",
                        "rows[" + std::to_string(i) +
                            "].json must be "
                            "an object");
    }
    const Json* insert_id = row->if_contains("insertId");
    if (insert_id == nullptr || !insert_id->is_string() || insert_id->get_string().empty()) {
      violations.push_back("insertAll row " + std::to_string(i) + " has no insertId");
      return ReplyError(res, 400, "invalid", "fake: every row needs an insertId");
    }
    RowOutcome& outcome = outcomes[i];
    outcome.insert_id = std::string(insert_id->get_string());
    insert_ids.push_back(outcome.insert_id);
    auto failure = row_failures.find(outcome.insert_id);
    if (failure != row_failures.end() && failure->second.second > 0) {
      --failure->second.second;
      outcome.reason = failure->second.first;
      outcome.message = "fake: programmed row failure";
      continue;
    }
    const std::vector<FakeField>& schema =
        NowLocked() < table->streaming_until ? table->streaming_schema : table->schema;
    std::string error = CheckObject(schema, json->get_object(), Flavor::kStreaming, ignore_unknown,
                                    outcome.stored, "");
    if (!error.empty()) {
      outcome.reason = "invalid";
      outcome.message = error;
      std::size_t at = error.find("Field: ");
      outcome.location =
          at == std::string::npos ? "" : error.substr(at + 7, error.find(';', at) - at - 7);
      any_invalid = true;
    }
  }
  JsonArray insert_errors;
  std::int64_t now = NowLocked();
  for (auto it = table->seen_insert_ids.begin(); it != table->seen_insert_ids.end();) {
    if (it->second + options.dedup_window_seconds < now) {
      it = table->seen_insert_ids.erase(it);
    } else {
      ++it;
    }
  }
  for (std::size_t i = 0; i < outcomes.size(); ++i) {
    RowOutcome& outcome = outcomes[i];
    std::string reason = outcome.reason;
    std::string message = outcome.message;
    if (reason.empty() && any_invalid && !skip_invalid) {
      reason = "stopped";
      message = "";
    }
    if (!reason.empty()) {
      JsonObject error;
      error["reason"] = reason;
      error["location"] = outcome.location;
      error["debugInfo"] = "";
      error["message"] = message;
      JsonArray errors;
      errors.push_back(std::move(error));
      JsonObject entry;
      entry["index"] = i;
      entry["errors"] = std::move(errors);
      insert_errors.push_back(std::move(entry));
      continue;
    }
    if (table->seen_insert_ids.count(outcome.insert_id) != 0) {
      ++counters.duplicates_dropped;
      continue;
    }
    table->seen_insert_ids[outcome.insert_id] = now;
    table->rows.push_back(std::move(outcome.stored));
    table->streamed_at.push_back(now);
    ++counters.rows_stored;
  }
  JsonObject reply;
  reply["kind"] = "bigquery#tableDataInsertAllResponse";
  if (!insert_errors.empty()) reply["insertErrors"] = std::move(insert_errors);
  Reply(res, 200, reply);
}

void FakeBigQuery::State::FinishLoad(FakeTable* table, const std::string& data,
                                     const JsonObject& load, JsonObject& status,
                                     JsonObject& statistics) {
  auto flag = [&](const char* name) {
    const Json* value = load.if_contains(name);
    return value != nullptr && value->is_bool() && value->get_bool();
  };
  std::int64_t max_bad = 0;
  if (const Json* value = load.if_contains("maxBadRecords"); value && value->is_number()) {
    max_bad = static_cast<std::int64_t>(value->to_number<double>());
  }
  if (!job_failures.empty()) {
    std::string reason = job_failures.front();
    job_failures.pop_front();
    JsonObject error;
    error["reason"] = reason;
    error["message"] = "fake: programmed job failure";
    status["errorResult"] = error;
    JsonArray errors;
    errors.push_back(error);
    status["errors"] = std::move(errors);
    return;
  }
  if (table == nullptr) {
    JsonObject error;
    error["reason"] = "notFound";
    error["message"] = "Not found: Table";
    status["errorResult"] = std::move(error);
    return;
  }
  bool ignore_unknown = flag("ignoreUnknownValues");
  std::vector<JsonObject> good;
  JsonArray errors;
  std::int64_t bad = 0;
  std::size_t position = 0;
  std::size_t lines = 0;
  while (position < data.size()) {
    std::size_t end = data.find('\n', position);
    if (end == std::string::npos) end = data.size();
    std::string line = data.substr(position, end - position);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) {
      ++lines;
      std::string problem;
      JsonObject stored;
      auto parsed = ParseJsonObject(line);
      if (!parsed) {
        problem = "Parser terminated before end of string";
      } else {
        problem = CheckObject(table->schema, *parsed, Flavor::kLoad, ignore_unknown, stored, "");
      }
      if (problem.empty()) {
        good.push_back(std::move(stored));
      } else {
        ++bad;
        JsonObject error;
        error["reason"] = "invalid";
        error["location"] = "file-00000000";
        error["message"] =
            "Error while reading data, error message: JSON parsing error in row "
            "starting at position " +
            std::to_string(position) + ": " + problem;
        errors.push_back(std::move(error));
      }
    }
    position = end + 1;
  }
  counters.rows_received += static_cast<int>(lines);
  if (bad > max_bad) {
    JsonObject error;
    error["reason"] = "invalid";
    error["message"] =
        "Error while reading data, error message: JSON table encountered too "
        "many errors, giving up. Rows: " +
        std::to_string(lines) + "; errors: " + std::to_string(bad) +
        ". Please look into the errors[] collection for "
        "more details.";
    errors.insert(errors.begin(), error);
    status["errorResult"] = std::move(error);
    status["errors"] = std::move(errors);
    return;
  }
  if (!errors.empty()) status["errors"] = std::move(errors);
  for (JsonObject& row : good) {
    table->rows.push_back(std::move(row));
    table->streamed_at.push_back(0);
    ++counters.rows_stored;
  }
  JsonObject load_statistics;
  load_statistics["outputRows"] = std::to_string(good.size());
  load_statistics["badRecords"] = std::to_string(bad);
  statistics["load"] = std::move(load_statistics);
}

void FakeBigQuery::State::HandleJobInsert(const httplib::Request& req, httplib::Response& res) {
  if (!Admit(req, res, true)) return;
  std::string project = req.matches[1];
  if (req.get_param_value("uploadType") != "multipart") {
    std::lock_guard lock(mutex);
    violations.push_back("job upload without uploadType=multipart");
    return ReplyError(res, 400, "invalid", "fake: only uploadType=multipart is supported");
  }
  std::string content_type = req.get_header_value("Content-Type");
  std::size_t at = content_type.find("boundary=");
  if (content_type.rfind("multipart/related", 0) != 0 || at == std::string::npos) {
    return ReplyError(res, 400, "invalid", "Content-Type must be multipart/related; boundary=…");
  }
  std::string boundary = content_type.substr(at + 9);
  if (boundary.size() >= 2 && boundary.front() == '"')
    boundary = boundary.substr(1, boundary.size() - 2);
  std::string delimiter = "--" + boundary;
  std::vector<std::pair<std::string, std::string>> parts;  // headers, content
  std::size_t position = req.body.find(delimiter);
  if (position != 0)
    return ReplyError(res, 400, "invalid",
                      "multipart body must start with the "
                      "boundary");
  while (true) {
    position += delimiter.size();
    if (req.body.compare(position, 2, "--") == 0) break;
    if (req.body.compare(position, 2, "\r\n") != 0) {
      return ReplyError(res, 400, "invalid", "malformed multipart delimiter");
    }
    position += 2;
    std::size_t headers_end = req.body.find("\r\n\r\n", position);
    std::size_t next = req.body.find("\r\n" + delimiter, position);
    if (headers_end == std::string::npos || next == std::string::npos || headers_end > next) {
      return ReplyError(res, 400, "invalid", "malformed multipart part");
    }
    parts.emplace_back(req.body.substr(position, headers_end - position),
                       req.body.substr(headers_end + 4, next - headers_end - 4));
    position = next + 2;
  }
  if (parts.size() != 2 || Upper(parts[0].first).find("APPLICATION/JSON") == std::string::npos) {
    return ReplyError(res, 400, "invalid", "expected two parts: the JSON job, then the data");
  }
  auto job = ParseJsonObject(parts[0].second);
  if (!job) return ReplyError(res, 400, "parseError", "Parse Error in the job configuration");
  const JsonObject* configuration = nullptr;
  if (const Json* value = job->if_contains("configuration")) configuration = value->if_object();
  const JsonObject* load = nullptr;
  if (configuration != nullptr) {
    if (const Json* value = configuration->if_contains("load")) load = value->if_object();
  }
  if (load == nullptr) return ReplyError(res, 400, "invalid", "the upload needs a load job");
  auto text = [](const JsonObject* object, const char* name) {
    const Json* value = object ? object->if_contains(name) : nullptr;
    return value != nullptr && value->is_string() ? std::string(value->get_string()) : "";
  };
  if (text(load, "sourceFormat") != "NEWLINE_DELIMITED_JSON") {
    return ReplyError(res, 400, "invalid", "fake: only NEWLINE_DELIMITED_JSON loads");
  }
  const JsonObject* destination = nullptr;
  if (const Json* value = load->if_contains("destinationTable")) destination = value->if_object();
  const JsonObject* reference = nullptr;
  if (const Json* value = job->if_contains("jobReference")) reference = value->if_object();
  std::string job_id = text(reference, "jobId");
  std::string location = text(reference, "location");

  std::lock_guard lock(mutex);
  requests[current_request].rows =
      static_cast<std::size_t>(std::count(parts[1].second.begin(), parts[1].second.end(), '\n'));
  requests[current_request].location = location;
  ++counters.jobs_inserted;
  if (job_id.empty()) job_id = "fake_job_" + std::to_string(next_job++);
  for (char c : job_id) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) {
      return ReplyError(res, 400, "invalid", "Invalid job ID \"" + job_id + "\"");
    }
  }
  std::string key = project + ":" + job_id;
  if (jobs.count(key) != 0) {
    return ReplyError(res, 409, "duplicate",
                      "Already Exists: Job " + project + ":" +
                          (location.empty() ? "US" : location) + "." + job_id);
  }
  std::string table_project = text(destination, "projectId");
  std::string table_dataset = text(destination, "datasetId");
  std::string table_name = text(destination, "tableId");
  // A job runs where it is told, else where its dataset is.
  std::string dataset_location = DatasetLocationLocked(table_project, table_dataset);
  bool elsewhere =
      !location.empty() && !dataset_location.empty() && !SameLocation(location, dataset_location);
  FakeJob fake;
  fake.location = location.empty() ? dataset_location : location;
  fake.resource = *job;
  JsonObject job_reference;
  job_reference["projectId"] = project;
  job_reference["jobId"] = job_id;
  if (!fake.location.empty()) job_reference["location"] = fake.location;
  fake.resource["jobReference"] = job_reference;
  fake.resource["kind"] = "bigquery#job";
  fake.resource["id"] = key;
  std::string data = std::move(parts[1].second);
  JsonObject load_copy = *load;
  if (elsewhere) {
    std::string message = NotInLocation(table_project, table_dataset, location);
    fake.finish = [message](JsonObject& status) {
      JsonObject error;
      error["reason"] = "notFound";
      error["message"] = message;
      JsonArray errors;
      errors.push_back(error);
      status["errorResult"] = std::move(error);
      status["errors"] = std::move(errors);
    };
  } else {
    fake.finish = [this, data, load_copy, table_project, table_dataset,
                   table_name](JsonObject& status) {
      JsonObject statistics;
      FinishLoad(FindTable(table_project, table_dataset, table_name), data, load_copy, status,
                 statistics);
    };
  }
  fake.polls_left = options.job_polls_until_done;
  JsonObject status;
  if (fake.polls_left <= 0) {
    fake.finish(status);
    status["state"] = "DONE";
  } else {
    status["state"] = "RUNNING";
  }
  fake.resource["status"] = std::move(status);
  auto& stored = jobs[key] = std::move(fake);
  Reply(res, 200, stored.resource);
}

void FakeBigQuery::State::HandleJobGet(const httplib::Request& req, httplib::Response& res) {
  if (!Admit(req, res, true)) return;
  std::string project = req.matches[1];
  std::string job_id = req.matches[2];
  std::lock_guard lock(mutex);
  ++counters.job_polls;
  auto found = jobs.find(project + ":" + job_id);
  // Without ?location the service looks in the US multi-region only.
  std::string location = req.get_param_value("location");
  std::string job_location =
      found == jobs.end() || found->second.location.empty() ? "US" : found->second.location;
  if (found == jobs.end() || !SameLocation(location.empty() ? "US" : location, job_location)) {
    return ReplyError(
        res, 404, "notFound",
        "Not found: Job " + project + ":" + (location.empty() ? "" : location + ".") + job_id);
  }
  FakeJob& job = found->second;
  JsonObject& status = job.resource["status"].as_object();
  const Json* state = status.if_contains("state");
  if (state == nullptr || !state->is_string() || state->get_string() != "DONE") {
    if (--job.polls_left <= 0) {
      job.finish(status);
      status["state"] = "DONE";
    }
  }
  Reply(res, 200, job.resource);
}

namespace {

// One item of the MERGE's source SELECT.
struct SourceColumn {
  std::string name;
  std::string json_name;  // the key read from each row object
  std::string kind;       // STRING INT64 FLOAT64 NUMERIC BOOL TIMESTAMP JSON
  bool default_false = false;
};

std::vector<std::string> SplitTopLevel(std::string_view text) {
  std::vector<std::string> items;
  int depth = 0;
  bool quoted = false;
  std::size_t start = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\'') quoted = !quoted;
    if (quoted) continue;
    if (c == '(') ++depth;
    if (c == ')') --depth;
    if (c == ',' && depth == 0) {
      items.emplace_back(text.substr(start, i - start));
      start = i + 1;
      while (start < text.size() && text[start] == ' ') ++start;
    }
  }
  items.emplace_back(text.substr(start));
  return items;
}

bool StripPrefix(std::string_view& text, std::string_view prefix) {
  if (text.substr(0, prefix.size()) != prefix) return false;
  text.remove_prefix(prefix.size());
  return true;
}

bool StripSuffix(std::string_view& text, std::string_view suffix) {
  if (text.size() < suffix.size() || text.substr(text.size() - suffix.size()) != suffix) {
    return false;
  }
  text.remove_suffix(suffix.size());
  return true;
}

std::optional<std::string> JsonValueName(std::string_view text) {
  if (!StripPrefix(text, "JSON_VALUE(r, '$.") || !StripSuffix(text, "')")) return std::nullopt;
  if (!IsColumnName(text)) return std::nullopt;
  return std::string(text);
}

std::optional<SourceColumn> ParseSourceColumn(std::string_view item) {
  std::size_t as = item.rfind(" AS `");
  if (as == std::string_view::npos || item.back() != '`') return std::nullopt;
  SourceColumn column;
  column.name = std::string(item.substr(as + 5, item.size() - as - 6));
  std::string_view expression = item.substr(0, as);
  if (auto name = JsonValueName(expression)) {
    column.json_name = *name;
    column.kind = "STRING";
    return column;
  }
  if (StripPrefix(expression, "IFNULL(")) {
    if (!StripSuffix(expression, ", FALSE)")) return std::nullopt;
    column.default_false = true;
  }
  if (StripPrefix(expression, "PARSE_JSON(JSON_QUERY(r, '$.")) {
    if (!StripSuffix(expression, "'))") || !IsColumnName(expression)) return std::nullopt;
    column.json_name = std::string(expression);
    column.kind = "JSON";
    return column;
  }
  if (!StripPrefix(expression, "CAST(")) return std::nullopt;
  std::size_t type_at = expression.rfind(" AS ");
  if (type_at == std::string_view::npos || expression.back() != ')') return std::nullopt;
  std::string type(expression.substr(type_at + 4, expression.size() - type_at - 5));
  static const std::set<std::string> kTypes = {"INT64", "FLOAT64",   "NUMERIC",
                                               "BOOL",  "TIMESTAMP", "STRING"};
  if (kTypes.count(type) == 0) return std::nullopt;
  auto name = JsonValueName(expression.substr(0, type_at));
  if (!name) return std::nullopt;
  column.json_name = *name;
  column.kind = type;
  return column;
}

// The column type a source kind may be assigned to.
std::string TargetTypeOf(const std::string& kind) {
  if (kind == "INT64") return "INTEGER";
  if (kind == "FLOAT64") return "FLOAT";
  if (kind == "BOOL") return "BOOLEAN";
  return kind;
}

// Evaluates a source column for one row object; false with `error` on a failed cast.
bool Evaluate(const SourceColumn& column, const JsonObject& row, Json& out, std::string& error) {
  const Json* value = row.if_contains(column.json_name);
  if (column.kind == "JSON") {
    out = value != nullptr ? *value : Json(nullptr);
    return true;
  }
  std::optional<std::string> scalar;  // JSON_VALUE: NULL for missing, null and non-scalars
  if (value != nullptr && !value->is_null() && !value->is_object() && !value->is_array()) {
    scalar = value->is_string() ? std::string(value->get_string()) : ToJson(*value);
  }
  if (!scalar) {
    out = column.default_false ? Json(false) : Json(nullptr);
    return true;
  }
  const std::string& text = *scalar;
  if (column.kind == "STRING") {
    out = text;
  } else if (column.kind == "INT64" && IsIntegerText(text)) {
    out = std::stoll(text);
  } else if (column.kind == "FLOAT64" && IsFloatText(text)) {
    out = std::strtod(text.c_str(), nullptr);
  } else if (column.kind == "NUMERIC" && IsNumericText(text)) {
    out = text;
  } else if (column.kind == "BOOL" && (Upper(text) == "TRUE" || Upper(text) == "FALSE")) {
    out = Upper(text) == "TRUE";
  } else if (column.kind == "TIMESTAMP" && IsTimestampText(text)) {
    out = text;
  } else {
    error = "Bad " + column.kind + " value: " + text;
    return false;
  }
  return true;
}

}  // namespace

bool FakeBigQuery::State::RunMerge(const std::string& project, const std::string& sql,
                                   const std::string& rows_text, std::int64_t& affected,
                                   std::string& reason, std::string& message) {
  reason = "invalidQuery";
  auto unsupported = [&](const std::string& what) {
    message = "fake: unsupported statement (" + what +
              "); the fake runs only the BigQuery "
              "driver's MERGE";
    return false;
  };
  const std::string guard = "(target.`_rev` IS NULL OR target.`_rev` < source.`_rev`)";
  std::string_view text = sql;
  if (!StripPrefix(text, "MERGE `")) return unsupported("not a MERGE");
  std::size_t tick = text.find('`');
  if (tick == std::string_view::npos) return unsupported("table name");
  std::string table_name(text.substr(0, tick));
  text.remove_prefix(tick + 1);
  if (!StripPrefix(text, " AS target USING (SELECT ")) return unsupported("USING");
  const std::string from =
      " FROM UNNEST(JSON_QUERY_ARRAY(@rows)) AS r) AS source ON "
      "target.`id` = source.`id` ";
  std::size_t from_at = text.find(from);
  if (from_at == std::string_view::npos) return unsupported("FROM … ON");
  std::string_view select = text.substr(0, from_at);
  text.remove_prefix(from_at + from.size());
  if (!StripPrefix(text, "WHEN MATCHED AND source.`_deleted` AND " + guard +
                             " THEN DELETE WHEN MATCHED AND NOT source.`_deleted` AND " + guard +
                             " THEN UPDATE SET ")) {
    return unsupported("WHEN MATCHED clauses");
  }
  const std::string not_matched = " WHEN NOT MATCHED AND NOT source.`_deleted` THEN INSERT (";
  std::size_t insert_at = text.find(not_matched);
  if (insert_at == std::string_view::npos) return unsupported("WHEN NOT MATCHED");
  std::string_view set_list = text.substr(0, insert_at);
  text.remove_prefix(insert_at + not_matched.size());
  std::size_t values_at = text.find(") VALUES (");
  if (values_at == std::string_view::npos || text.back() != ')') return unsupported("VALUES");
  std::string_view insert_columns = text.substr(0, values_at);
  std::string_view insert_values = text.substr(values_at + 10, text.size() - values_at - 11);

  // The table: `project.dataset.table`.
  std::size_t first_dot = table_name.find('.');
  std::size_t second_dot = table_name.find('.', first_dot + 1);
  if (first_dot == std::string::npos || second_dot == std::string::npos) {
    return unsupported("table must be `project.dataset.table`");
  }
  FakeTable* table = FindTable(table_name.substr(0, first_dot),
                               table_name.substr(first_dot + 1, second_dot - first_dot - 1),
                               table_name.substr(second_dot + 1));
  if (table == nullptr || table->project != project) {
    reason = "notFound";
    message = "Not found: Table " + table_name;
    return false;
  }

  std::map<std::string, SourceColumn> source;
  for (const std::string& item : SplitTopLevel(select)) {
    auto column = ParseSourceColumn(item);
    if (!column) return unsupported("select item '" + item + "'");
    source[column->name] = *column;
  }
  for (const char* required : {"id", "_rev", "_deleted"}) {
    if (source.count(required) == 0) return unsupported(std::string("no source.") + required);
  }
  auto assign = [&](const std::string& column) -> bool {
    const FakeField* field = Find(table->schema, column);
    if (field == nullptr) {
      message = "Name " + column + " not found inside target";
      return false;
    }
    auto found = source.find(column);
    if (found == source.end()) {
      message = "Name " + column + " not found inside source";
      return false;
    }
    if (TargetTypeOf(found->second.kind) != field->type) {
      message = "Value of type " + found->second.kind + " cannot be assigned to target." + column +
                ", which has type " + field->type;
      return false;
    }
    return true;
  };
  std::vector<std::string> set_columns;
  for (const std::string& item : SplitTopLevel(set_list)) {
    std::string_view entry = item;
    std::size_t equals = entry.find("` = source.`");
    if (entry.empty() || entry.front() != '`' || equals == std::string_view::npos) {
      return unsupported("SET item '" + item + "'");
    }
    std::string left(entry.substr(1, equals - 1));
    std::string right(entry.substr(equals + 12, entry.size() - equals - 13));
    if (left != right) return unsupported("SET must copy the same column");
    if (!assign(left)) return false;
    set_columns.push_back(left);
  }
  std::vector<std::string> columns;
  std::vector<std::string> values = SplitTopLevel(insert_values);
  std::vector<std::string> names = SplitTopLevel(insert_columns);
  if (names.size() != values.size()) return unsupported("INSERT column and value counts");
  for (std::size_t i = 0; i < names.size(); ++i) {
    std::string name = names[i].size() > 2 ? names[i].substr(1, names[i].size() - 2) : "";
    if (values[i] != "source.`" + name + "`") return unsupported("INSERT values");
    if (!assign(name)) return false;
    columns.push_back(name);
  }

  // The source rows.
  auto parsed = ParseJson(rows_text);
  if (!parsed || !parsed->is_array()) {
    message = "JSON_QUERY_ARRAY: @rows is not a JSON array";
    return false;
  }
  struct SourceRow {
    std::map<std::string, Json> values;
  };
  std::vector<SourceRow> rows;
  std::set<std::string> ids;
  for (const Json& element : parsed->get_array()) {
    if (!element.is_object()) {
      message = "fake: every @rows element must be an object";
      return false;
    }
    SourceRow row;
    for (const auto& [name, column] : source) {
      std::string error;
      if (!Evaluate(column, element.get_object(), row.values[name], error)) {
        message = error;
        return false;
      }
    }
    const Json& id = row.values["id"];
    if (!id.is_string()) {
      message = "fake: source row without an id";
      return false;
    }
    if (!ids.insert(std::string(id.get_string())).second) {
      message = "UPDATE/MERGE must match at most one source row for each target row";
      return false;
    }
    rows.push_back(std::move(row));
  }

  // Apply.
  std::int64_t now = NowLocked();
  std::string display = table->project + "." + table->dataset + "." + table->table;
  affected = 0;
  for (SourceRow& row : rows) {
    std::string id(row.values["id"].get_string());
    bool deleted = row.values["_deleted"].is_bool() && row.values["_deleted"].get_bool();
    auto match = std::find_if(table->rows.begin(), table->rows.end(), [&](const JsonObject& r) {
      const Json* value = r.if_contains("id");
      return value != nullptr && value->is_string() && value->get_string() == id;
    });
    if (match != table->rows.end()) {
      std::size_t index = static_cast<std::size_t>(match - table->rows.begin());
      const Json* target_rev = match->if_contains("_rev");
      const Json& source_rev = row.values["_rev"];
      bool newer = target_rev == nullptr || target_rev->is_null() ||
                   (source_rev.is_int64() && target_rev->is_int64() &&
                    target_rev->get_int64() < source_rev.get_int64());
      if (!newer) continue;
      if (table->streamed_at[index] != 0 && table->streamed_at[index] + 1800 > now) {
        message = "UPDATE or DELETE statement over table " + display +
                  " would affect rows in the streaming buffer, which is not supported";
        return false;
      }
      if (deleted) {
        table->rows.erase(match);
        table->streamed_at.erase(table->streamed_at.begin() + static_cast<long>(index));
      } else {
        for (const std::string& column : set_columns) {
          const FakeField* field = Find(table->schema, column);
          if (row.values[column].is_null()) {
            match->erase(field->name);
          } else {
            (*match)[field->name] = row.values[column];
          }
        }
      }
      ++affected;
    } else if (!deleted) {
      JsonObject stored;
      for (const std::string& column : columns) {
        const FakeField* field = Find(table->schema, column);
        if (field->mode == "REQUIRED" && row.values[column].is_null()) {
          message = "Required field " + column + " cannot be null";
          return false;
        }
        if (!row.values[column].is_null()) stored[field->name] = row.values[column];
      }
      table->rows.push_back(std::move(stored));
      table->streamed_at.push_back(0);
      ++affected;
    }
  }
  return true;
}

void FakeBigQuery::State::HandleQuery(const httplib::Request& req, httplib::Response& res) {
  if (!Admit(req, res, true)) return;
  std::string project = req.matches[1];
  auto body = ParseJsonObject(req.body);
  if (!body) return ReplyError(res, 400, "parseError", "Parse Error");
  auto text = [&](const char* name) {
    const Json* value = body->if_contains(name);
    return value != nullptr && value->is_string() ? std::string(value->get_string()) : "";
  };
  const Json* legacy = body->if_contains("useLegacySql");
  if (legacy == nullptr || !legacy->is_bool() || legacy->get_bool()) {
    return ReplyError(res, 400, "invalidQuery",
                      "fake: jobs.query defaults to legacy SQL; set useLegacySql to false");
  }
  std::string rows_text;
  if (const Json* parameters = body->if_contains("queryParameters");
      parameters != nullptr && parameters->is_array()) {
    for (const Json& parameter : parameters->get_array()) {
      const JsonObject* object = parameter.if_object();
      const Json* name = object ? object->if_contains("name") : nullptr;
      if (name == nullptr || !name->is_string() || name->get_string() != "rows") continue;
      const JsonObject* type = nullptr;
      if (const Json* value = object->if_contains("parameterType")) type = value->if_object();
      const Json* type_name = type ? type->if_contains("type") : nullptr;
      if (type_name == nullptr || !type_name->is_string() || type_name->get_string() != "STRING") {
        return ReplyError(res, 400, "invalidQuery", "fake: @rows must be a STRING parameter");
      }
      const JsonObject* value = nullptr;
      if (const Json* item = object->if_contains("parameterValue")) value = item->if_object();
      const Json* content = value ? value->if_contains("value") : nullptr;
      if (content != nullptr && content->is_string())
        rows_text = std::string(content->get_string());
    }
  }
  if (text("parameterMode") != "NAMED") {
    return ReplyError(res, 400, "invalidQuery", "fake: named parameters need parameterMode NAMED");
  }
  std::string request_id = text("requestId");
  std::string location = text("location");
  std::string sql = text("query");

  std::lock_guard lock(mutex);
  ++counters.queries;
  requests[current_request].location = location;
  // The statement's table: "MERGE `project.dataset.table` …".
  if (sql.rfind("MERGE `", 0) == 0) {
    std::string name = sql.substr(7, sql.find('`', 7) - 7);
    std::size_t first = name.find('.');
    std::size_t second = name.find('.', first + 1);
    if (first != std::string::npos && second != std::string::npos) {
      std::string table_project = name.substr(0, first);
      std::string table_dataset = name.substr(first + 1, second - first - 1);
      std::string dataset_location = DatasetLocationLocked(table_project, table_dataset);
      if (!location.empty() && !dataset_location.empty() &&
          !SameLocation(location, dataset_location)) {
        return ReplyError(res, 404, "notFound",
                          NotInLocation(table_project, table_dataset, location));
      }
      if (location.empty()) location = dataset_location;
    }
  }
  if (!request_id.empty()) {
    auto found = query_replies.find(request_id);
    if (found != query_replies.end()) {
      res.status = 200;
      res.set_content(found->second, "application/json; charset=UTF-8");
      return;
    }
  }
  std::string job_id = "fake_query_" + std::to_string(next_job++);
  JsonObject reference;
  reference["projectId"] = project;
  reference["jobId"] = job_id;
  if (!location.empty()) reference["location"] = location;
  JsonObject reply;
  reply["kind"] = "bigquery#queryResponse";
  reply["jobReference"] = reference;

  if (options.job_polls_until_done > 0) {
    FakeJob job;
    job.location = location;
    job.polls_left = options.job_polls_until_done;
    job.resource["kind"] = "bigquery#job";
    job.resource["id"] = project + ":" + job_id;
    job.resource["jobReference"] = reference;
    JsonObject status;
    status["state"] = "RUNNING";
    job.resource["status"] = std::move(status);
    job.finish = [this, project, sql, rows_text](JsonObject& job_status) {
      std::int64_t affected = 0;
      std::string reason;
      std::string message;
      if (!RunMerge(project, sql, rows_text, affected, reason, message)) {
        JsonObject error;
        error["reason"] = reason;
        error["message"] = message;
        job_status["errorResult"] = std::move(error);
      }
    };
    jobs[project + ":" + job_id] = std::move(job);
    reply["jobComplete"] = false;
  } else {
    std::int64_t affected = 0;
    std::string reason;
    std::string message;
    if (!RunMerge(project, sql, rows_text, affected, reason, message)) {
      return ReplyError(res, reason == "notFound" ? 404 : 400, reason, message);
    }
    reply["jobComplete"] = true;
    reply["numDmlAffectedRows"] = std::to_string(affected);
  }
  std::string reply_text = ToJson(reply);
  if (!request_id.empty()) query_replies[request_id] = reply_text;
  res.status = 200;
  res.set_content(reply_text, "application/json; charset=UTF-8");
}

void FakeBigQuery::State::Register() {
  server.set_payload_max_length(64 * 1024 * 1024);
  // Replies go out as two writes (headers, body): without TCP_NODELAY every reply waits for
  // the client's delayed ACK (about 40 ms).
  server.set_tcp_nodelay(true);
  server.Post("/token",
              [this](const httplib::Request& q, httplib::Response& r) { HandleToken(q, r); });
  const std::string p = "/bigquery/v2/projects/([^/]+)";
  server.Get(p + "/datasets/([^/]+)",
             [this](const httplib::Request& q, httplib::Response& r) { HandleDatasetGet(q, r); });
  server.Post(p + "/datasets/([^/]+)/tables",
              [this](const httplib::Request& q, httplib::Response& r) { HandleTableInsert(q, r); });
  server.Get(p + "/datasets/([^/]+)/tables/([^/]+)",
             [this](const httplib::Request& q, httplib::Response& r) { HandleTableGet(q, r); });
  server.Patch(p + "/datasets/([^/]+)/tables/([^/]+)",
               [this](const httplib::Request& q, httplib::Response& r) { HandleTablePatch(q, r); });
  server.Post(p + "/datasets/([^/]+)/tables/([^/]+)/insertAll",
              [this](const httplib::Request& q, httplib::Response& r) { HandleInsertAll(q, r); });
  server.Post("/upload/bigquery/v2/projects/([^/]+)/jobs",
              [this](const httplib::Request& q, httplib::Response& r) { HandleJobInsert(q, r); });
  server.Get(p + "/jobs/([^/]+)",
             [this](const httplib::Request& q, httplib::Response& r) { HandleJobGet(q, r); });
  server.Post(p + "/queries",
              [this](const httplib::Request& q, httplib::Response& r) { HandleQuery(q, r); });
}

FakeBigQuery::FakeBigQuery() : FakeBigQuery(Options{}) {}

FakeBigQuery::FakeBigQuery(Options options) : state_(std::make_unique<State>()) {
  state_->options = std::move(options);
  TrustedKey();  // generate before serving
  state_->Register();
}

FakeBigQuery::~FakeBigQuery() { Stop(); }

bool FakeBigQuery::Start() {
  if (state_->thread.joinable()) return true;
  state_->port = state_->server.bind_to_any_port("127.0.0.1");
  if (state_->port <= 0) return false;
  state_->thread = std::thread([this] { state_->server.listen_after_bind(); });
  for (int i = 0; i < 200 && !state_->server.is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return state_->server.is_running();
}

void FakeBigQuery::Stop() {
  if (!state_->thread.joinable()) return;
  state_->server.stop();
  state_->thread.join();
}

std::string FakeBigQuery::endpoint() const {
  return "http://127.0.0.1:" + std::to_string(state_->port);
}

std::string FakeBigQuery::token_uri() const { return endpoint() + "/token"; }

JsonObject FakeBigQuery::ServiceAccountKey(const std::string& project_id) const {
  JsonObject key;
  key["type"] = "service_account";
  key["project_id"] = project_id;
  key["private_key_id"] = "fake-key-1";
  key["private_key"] = TrustedKey().pem;
  key["client_email"] = state_->options.client_email;
  key["client_id"] = "100000000000000000001";
  key["token_uri"] = token_uri();
  return key;
}

std::string FakeBigQuery::PrivateKeyPem() { return TrustedKey().pem; }

JsonObject FakeBigQuery::AuthorizedUserCredentials(bool with_token_uri) const {
  std::lock_guard lock(state_->mutex);
  JsonObject credentials;
  credentials["client_id"] = state_->user_client_id;
  credentials["client_secret"] = state_->user_client_secret;
  credentials["refresh_token"] = state_->user_refresh_token;
  credentials["type"] = "authorized_user";
  if (with_token_uri) credentials["token_uri"] = token_uri();
  return credentials;
}

void FakeBigQuery::RevokeRefreshToken() {
  std::lock_guard lock(state_->mutex);
  state_->refresh_token_revoked = true;
}

JsonObject FakeBigQuery::UntrustedServiceAccountKey() const {
  JsonObject key = ServiceAccountKey();
  key["private_key"] = OtherKey().pem;
  key["private_key_id"] = "fake-key-unknown";
  return key;
}

void FakeBigQuery::CreateDataset(const std::string& project, const std::string& dataset,
                                 const std::string& location) {
  std::lock_guard lock(state_->mutex);
  state_->datasets[project + ":" + dataset] = location;
}

void FakeBigQuery::CreateTable(const std::string& project, const std::string& dataset,
                               const std::string& table, const Json& fields) {
  FakeTable fake;
  fake.project = project;
  fake.dataset = dataset;
  fake.table = table;
  std::string error;
  if (!ParseFields(fields, fake.schema, error)) throw std::invalid_argument("fake: " + error);
  JsonObject reference;
  reference["projectId"] = project;
  reference["datasetId"] = dataset;
  reference["tableId"] = table;
  fake.resource["tableReference"] = std::move(reference);
  fake.resource["kind"] = "bigquery#table";
  fake.resource["id"] = project + ":" + dataset + "." + table;
  std::lock_guard lock(state_->mutex);
  state_->tables[project + ":" + dataset + "." + table] = std::move(fake);
}

std::optional<JsonObject> FakeBigQuery::Table(const std::string& project,
                                              const std::string& dataset,
                                              const std::string& table) const {
  std::lock_guard lock(state_->mutex);
  FakeTable* found = state_->FindTable(project, dataset, table);
  if (found == nullptr) return std::nullopt;
  return state_->TableResource(*found);
}

std::vector<JsonObject> FakeBigQuery::Rows(const std::string& project, const std::string& dataset,
                                           const std::string& table) const {
  std::lock_guard lock(state_->mutex);
  FakeTable* found = state_->FindTable(project, dataset, table);
  return found == nullptr ? std::vector<JsonObject>{} : found->rows;
}

void FakeBigQuery::FailNext(const std::string& method, const std::string& path_part,
                            FakeBigQueryReply reply, int count) {
  std::lock_guard lock(state_->mutex);
  state_->programmed.push_back({method, path_part, std::move(reply), count});
}

void FakeBigQuery::FailRow(const std::string& insert_id, const std::string& reason, int count) {
  std::lock_guard lock(state_->mutex);
  state_->row_failures[insert_id] = {reason, count};
}

void FakeBigQuery::FailNextJob(const std::string& reason, int count) {
  std::lock_guard lock(state_->mutex);
  for (int i = 0; i < count; ++i) state_->job_failures.push_back(reason);
}

void FakeBigQuery::SetJobPollsUntilDone(int polls) {
  std::lock_guard lock(state_->mutex);
  state_->options.job_polls_until_done = polls;
}

void FakeBigQuery::SetStreamingSchemaDelay(int seconds) {
  std::lock_guard lock(state_->mutex);
  state_->options.streaming_schema_delay_seconds = seconds;
}

void FakeBigQuery::RevokeTokens() {
  std::lock_guard lock(state_->mutex);
  state_->tokens.clear();
}

void FakeBigQuery::AdvanceClock(std::int64_t seconds) {
  std::lock_guard lock(state_->mutex);
  state_->clock_offset += seconds;
}

std::int64_t FakeBigQuery::Now() const {
  std::lock_guard lock(state_->mutex);
  return state_->NowLocked();
}

FakeBigQuery::Counters FakeBigQuery::counters() const {
  std::lock_guard lock(state_->mutex);
  return state_->counters;
}

std::vector<FakeBigQuery::Request> FakeBigQuery::requests() const {
  std::lock_guard lock(state_->mutex);
  return state_->requests;
}

std::vector<std::string> FakeBigQuery::insert_ids() const {
  std::lock_guard lock(state_->mutex);
  return state_->insert_ids;
}

std::vector<FakeBigQuery::TokenGrant> FakeBigQuery::token_grants() const {
  std::lock_guard lock(state_->mutex);
  return state_->grants;
}

std::vector<std::string> FakeBigQuery::violations() const {
  std::lock_guard lock(state_->mutex);
  return state_->violations;
}

}  // namespace s3db::testing
