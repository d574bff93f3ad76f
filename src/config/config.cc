// YAML configuration: YAML -> JSON with positions, environment substitution, and the
// sections of the s3db configuration file.
#include "config/config.h"

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <utility>

#include "s3db/schema.h"

namespace s3db::config {
namespace {

tl::unexpected<Error> Invalid(std::string message) {
  return MakeError(ErrorCode::kInvalidArgument, std::move(message));
}

std::string Position(const std::string& source, const SourceMark& mark) {
  if (mark.line <= 0) return source;
  return source + ":" + std::to_string(mark.line) + ":" + std::to_string(mark.column);
}

SourceMark ToMark(const YAML::Mark& mark) {
  if (mark.line < 0) return {};
  return {mark.line + 1, mark.column + 1};
}

std::string Child(const std::string& parent, std::string_view key) {
  return parent.empty() ? std::string(key) : parent + "." + std::string(key);
}

bool IsPlain(const YAML::Node& node) { return node.Tag() == "?"; }

bool AllDigits(std::string_view text, int base) {
  if (text.empty()) return false;
  for (char c : text) {
    bool ok = base == 16  ? std::isxdigit(static_cast<unsigned char>(c)) != 0
              : base == 8 ? (c >= '0' && c <= '7')
                          : (c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

// Integers of the YAML 1.2 core schema; nullopt when `text` is not one.
std::optional<Result<Json>> ResolveInteger(std::string_view text) {
  bool negative = false;
  std::string_view digits = text;
  if (!digits.empty() && (digits[0] == '+' || digits[0] == '-')) {
    negative = digits[0] == '-';
    digits.remove_prefix(1);
  }
  int base = 10;
  if (text.size() > 2 && (text.substr(0, 2) == "0x" || text.substr(0, 2) == "0o")) {
    base = text[1] == 'x' ? 16 : 8;
    digits = text.substr(2);
    negative = false;
  }
  if (!AllDigits(digits, base)) return std::nullopt;

  auto too_big = [&]() -> Result<Json> {
    return Invalid("the integer " + std::string(text) +
                   " does not fit in 64 bits; quote it to keep it as a string");
  };
  if (negative) {
    std::string with_sign = "-" + std::string(digits);
    std::int64_t value = 0;
    auto [end, error] =
        std::from_chars(with_sign.data(), with_sign.data() + with_sign.size(), value, base);
    if (error != std::errc() || end != with_sign.data() + with_sign.size()) return too_big();
    return Result<Json>(Json(value));
  }
  std::uint64_t value = 0;
  auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), value, base);
  if (error != std::errc() || end != digits.data() + digits.size()) return too_big();
  if (value <= static_cast<std::uint64_t>(INT64_MAX)) {
    return Result<Json>(Json(static_cast<std::int64_t>(value)));
  }
  return Result<Json>(Json(value));
}

bool LooksLikeFloat(std::string_view text) {
  // [-+]? ( \.[0-9]+ | [0-9]+ ( \.[0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
  std::size_t i = 0;
  if (i < text.size() && (text[i] == '+' || text[i] == '-')) ++i;
  std::size_t int_digits = 0, frac_digits = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i, ++int_digits;
  bool dot = false;
  if (i < text.size() && text[i] == '.') {
    dot = true;
    ++i;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
      ++i, ++frac_digits;
    }
  }
  if (int_digits == 0 && frac_digits == 0) return false;
  bool exponent = false;
  if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
    exponent = true;
    ++i;
    if (i < text.size() && (text[i] == '+' || text[i] == '-')) ++i;
    std::size_t exp_digits = 0;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
      ++i, ++exp_digits;
    }
    if (exp_digits == 0) return false;
  }
  return i == text.size() && (dot || exponent);
}

// Types a plain scalar by the YAML 1.2 core schema.
Result<Json> ResolvePlain(const std::string& text) {
  if (text.empty() || text == "~" || text == "null" || text == "Null" || text == "NULL") {
    return Json(nullptr);
  }
  if (text == "true" || text == "True" || text == "TRUE") return Json(true);
  if (text == "false" || text == "False" || text == "FALSE") return Json(false);
  if (auto integer = ResolveInteger(text)) return std::move(*integer);
  if (LooksLikeFloat(text)) {
    std::string_view digits = text;
    if (digits[0] == '+') digits.remove_prefix(1);
    double value = 0;
    auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    if (error != std::errc() || end != digits.data() + digits.size()) {
      return Invalid("the number " + text + " is out of range; quote it to keep it as a string");
    }
    return Json(value);
  }
  std::string lower;
  for (char c : text) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower == ".inf" || lower == "+.inf" || lower == "-.inf" || lower == ".nan") {
    return Invalid(text + " has no JSON form; quote it to keep it as a string");
  }
  return Json(boost::json::string(text));
}

class Converter {
 public:
  Converter(std::string source, YamlDocument& document)
      : source_(std::move(source)), document_(document) {}

  Result<Json> Convert(const YAML::Node& node, const std::string& path, SourceMark mark,
                       int depth) {
    if (depth > 200) return Fail(path, mark, "nested too deeply (more than 200 levels)");
    document_.marks.emplace(path, mark);
    switch (node.Type()) {
      case YAML::NodeType::Undefined:
      case YAML::NodeType::Null:
        return Json(nullptr);
      case YAML::NodeType::Scalar:
        return ConvertScalar(node, path, mark);
      case YAML::NodeType::Sequence: {
        JsonArray array;
        std::size_t index = 0;
        for (const YAML::Node& item : node) {
          std::string item_path = path + "[" + std::to_string(index++) + "]";
          S3DB_ASSIGN_OR_RETURN(Json value,
                                Convert(item, item_path, ToMark(item.Mark()), depth + 1));
          array.push_back(std::move(value));
        }
        return Json(std::move(array));
      }
      case YAML::NodeType::Map:
        return ConvertMap(node, path, depth);
    }
    return Json(nullptr);
  }

  tl::unexpected<Error> Fail(const std::string& path, SourceMark mark,
                             const std::string& message) const {
    return Invalid(Position(source_, mark) + ": " + (path.empty() ? "" : path + ": ") + message);
  }

 private:
  Result<Json> ConvertScalar(const YAML::Node& node, const std::string& path, SourceMark mark) {
    auto substituted = SubstituteEnvironment(node.Scalar());
    if (!substituted) return Fail(path, mark, substituted.error().message);
    const std::string& tag = node.Tag();
    if (tag == "!" || tag == "tag:yaml.org,2002:str") {
      return Json(boost::json::string(*substituted));
    }
    if (tag != "?" && tag.rfind("tag:yaml.org,2002:", 0) != 0) {
      return Fail(path, mark, "the tag '" + tag + "' is not supported; remove it");
    }
    if (substituted->empty() && !node.Scalar().empty()) return Json(boost::json::string());
    auto value = ResolvePlain(*substituted);
    if (!value) return Fail(path, mark, value.error().message);
    return value;
  }

  Result<Json> ConvertMap(const YAML::Node& node, const std::string& path, int depth) {
    JsonObject object;
    std::vector<std::pair<YAML::Node, std::string>> merges;  // "<<" values, merged after
    for (auto it = node.begin(); it != node.end(); ++it) {
      YAML::Node key = it->first;  // copies: the iterator's pair is a temporary
      SourceMark key_mark = ToMark(key.Mark());
      if (!key.IsScalar()) {
        return Fail(path, key_mark, "a key must be a plain name, not a list or a map");
      }
      std::string name = key.Scalar();
      if (name == "<<" && IsPlain(key)) {
        merges.emplace_back(it->second, path);
        continue;
      }
      std::string child_path = Child(path, name);
      if (object.contains(name)) {
        return Fail(child_path, key_mark, "the key is given twice; keep one");
      }
      YAML::Node value_node = it->second;
      S3DB_ASSIGN_OR_RETURN(Json value, Convert(value_node, child_path, key_mark, depth + 1));
      object[name] = std::move(value);
    }
    for (auto& [merge, merge_path] : merges) {
      std::vector<YAML::Node> sources;
      if (merge.IsMap()) {
        sources.push_back(merge);
      } else if (merge.IsSequence()) {
        for (const YAML::Node& item : merge) sources.push_back(item);
      }
      for (const YAML::Node& source : sources) {
        if (!source.IsMap()) {
          return Fail(Child(merge_path, "<<"), ToMark(merge.Mark()),
                      "a merge key (<<) takes a map or a list of maps");
        }
        for (auto it = source.begin(); it != source.end(); ++it) {
          YAML::Node key = it->first;
          YAML::Node value_node = it->second;
          std::string name = key.Scalar();
          if (object.contains(name)) continue;  // explicit keys win over merged ones
          S3DB_ASSIGN_OR_RETURN(
              Json value, Convert(value_node, Child(path, name), ToMark(key.Mark()), depth + 1));
          object[name] = std::move(value);
        }
      }
    }
    return Json(std::move(object));
  }

  std::string source_;
  YamlDocument& document_;
};

// ---- sections ----

class SectionReader {
 public:
  explicit SectionReader(const Config& config) : config_(config) {}

  tl::unexpected<Error> Fail(const std::string& path, const std::string& message) const {
    return Invalid(config_.Locate(path, message));
  }

  Result<std::string> String(const Json& value, const std::string& path) const {
    if (!value.is_string()) return Fail(path, "expected a string");
    return std::string(value.get_string());
  }
  Result<bool> Bool(const Json& value, const std::string& path) const {
    if (!value.is_bool()) return Fail(path, "expected true or false");
    return value.get_bool();
  }
  Result<std::int64_t> Integer(const Json& value, const std::string& path, std::int64_t min,
                               std::int64_t max) const {
    if (!value.is_int64()) return Fail(path, "expected a whole number");
    std::int64_t number = value.get_int64();
    if (number < min || number > max) {
      return Fail(path, std::to_string(number) + " is outside " + std::to_string(min) + ".." +
                            std::to_string(max));
    }
    return number;
  }
  Result<const JsonObject*> Object(const Json& value, const std::string& path,
                                   const std::string& example) const {
    if (!value.is_object()) return Fail(path, "expected a map, for example " + example);
    return &value.get_object();
  }
  Status OnlyKeys(const JsonObject& object, const std::string& path,
                  const std::vector<std::string>& known) const {
    for (const auto& field : object) {
      bool found = false;
      for (const auto& name : known) found = found || field.key() == name;
      if (!found) {
        std::string list;
        for (const auto& name : known) list += (list.empty() ? "" : ", ") + name;
        return Fail(Child(path, field.key()), "unknown key (known: " + list + ")");
      }
    }
    return Ok();
  }

 private:
  const Config& config_;
};

Status ReadResources(const Json& section, const SectionReader& reader, Config& config) {
  if (section.is_null()) return Ok();
  S3DB_ASSIGN_OR_RETURN(
      const JsonObject* resources,
      reader.Object(section, "resources", "'users: { attributes: { name: string } }'"));
  for (const auto& [name, value] : *resources) {
    std::string path = Child("resources", name);
    ResourceDefinition definition;
    definition.name = std::string(name);
    if (!value.is_null()) {
      S3DB_ASSIGN_OR_RETURN(const JsonObject* fields,
                            reader.Object(value, path, "'{ attributes: { name: string } }'"));
      S3DB_RETURN_IF_ERROR(reader.OnlyKeys(*fields, path, {"attributes", "timestamps", "idSize"}));
      if (const Json* attributes = fields->if_contains("attributes")) {
        std::string attributes_path = path + ".attributes";
        if (!attributes->is_null()) {
          S3DB_ASSIGN_OR_RETURN(
              const JsonObject* object,
              reader.Object(*attributes, attributes_path, "'{ name: \"string|required\" }'"));
          definition.attributes = *object;
        }
        auto schema = Schema::Parse(definition.attributes);
        if (!schema) return reader.Fail(attributes_path, schema.error().message);
      }
      if (const Json* timestamps = fields->if_contains("timestamps")) {
        S3DB_ASSIGN_OR_RETURN(definition.timestamps,
                              reader.Bool(*timestamps, path + ".timestamps"));
      }
      if (const Json* id_size = fields->if_contains("idSize")) {
        S3DB_ASSIGN_OR_RETURN(std::int64_t size,
                              reader.Integer(*id_size, path + ".idSize", 4, 255));
        definition.id_size = static_cast<int>(size);
      }
    }
    config.resources.push_back(std::move(definition));
  }
  return Ok();
}

Status ReadHttp(const Json& section, const SectionReader& reader, Config& config) {
  if (section.is_null()) return Ok();
  S3DB_ASSIGN_OR_RETURN(const JsonObject* http,
                        reader.Object(section, "http", "'{ listen: 127.0.0.1:9464 }'"));
  S3DB_RETURN_IF_ERROR(reader.OnlyKeys(*http, "http", {"listen", "threads"}));
  if (const Json* threads = http->if_contains("threads")) {
    S3DB_ASSIGN_OR_RETURN(std::int64_t count, reader.Integer(*threads, "http.threads", 1, 1024));
    config.http.threads = static_cast<int>(count);
  }
  const Json* listen = http->if_contains("listen");
  if (!listen) return Ok();
  std::string text;
  if (listen->is_int64()) {
    text = "127.0.0.1:" + std::to_string(listen->get_int64());
  } else {
    S3DB_ASSIGN_OR_RETURN(text, reader.String(*listen, "http.listen"));
  }
  std::size_t colon = text.rfind(':');
  if (colon == std::string::npos) {
    return reader.Fail("http.listen", "'" + text + "' is not host:port, e.g. 127.0.0.1:9464");
  }
  std::string host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  int port = -1;
  std::string port_text = text.substr(colon + 1);
  auto [end, error] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (host.empty() || error != std::errc() || end != port_text.data() + port_text.size() ||
      port < 0 || port > 65535) {
    return reader.Fail("http.listen",
                       "'" + text + "' is not host:port with a port 0..65535, e.g. 127.0.0.1:9464");
  }
  config.http.host = host;
  config.http.port = port;
  return Ok();
}

Status ReadLua(const Json& section, const SectionReader& reader, Config& config) {
  if (section.is_null()) return Ok();
  S3DB_ASSIGN_OR_RETURN(const JsonObject* lua,
                        reader.Object(section, "lua", "'{ instructionLimit: 10000000 }'"));
  S3DB_RETURN_IF_ERROR(reader.OnlyKeys(*lua, "lua", {"instructionLimit", "memoryLimitMb"}));
  if (const Json* limit = lua->if_contains("instructionLimit")) {
    S3DB_ASSIGN_OR_RETURN(std::int64_t value,
                          reader.Integer(*limit, "lua.instructionLimit", 1000, INT64_MAX));
    config.lua.instruction_limit = static_cast<std::uint64_t>(value);
  }
  if (const Json* limit = lua->if_contains("memoryLimitMb")) {
    S3DB_ASSIGN_OR_RETURN(std::int64_t value,
                          reader.Integer(*limit, "lua.memoryLimitMb", 1, 1 << 20));
    config.lua.memory_limit_bytes = static_cast<std::size_t>(value) * 1024 * 1024;
  }
  return Ok();
}

}  // namespace

Result<std::string> SubstituteEnvironment(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '$') {
      out += text[i];
      continue;
    }
    if (text.substr(i, 3) == "$${") {
      out += "${";
      i += 2;
      continue;
    }
    if (text.substr(i, 2) != "${") {
      out += '$';
      continue;
    }
    std::size_t close = text.find('}', i + 2);
    if (close == std::string_view::npos) {
      return Invalid("'${' without a closing '}'; write $${ for a literal ${");
    }
    std::string_view inside = text.substr(i + 2, close - i - 2);
    std::string_view name = inside;
    std::optional<std::string_view> fallback;
    if (std::size_t dash = inside.find(":-"); dash != std::string_view::npos) {
      name = inside.substr(0, dash);
      fallback = inside.substr(dash + 2);
    }
    bool valid = !name.empty() && !std::isdigit(static_cast<unsigned char>(name[0]));
    for (char c : name) valid = valid && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
    if (!valid) {
      return Invalid("'${" + std::string(inside) +
                     "}' is not a variable reference; use ${NAME} or ${NAME:-default}");
    }
    const char* value = std::getenv(std::string(name).c_str());
    if (value && (*value != '\0' || !fallback)) {
      out += value;
    } else if (fallback) {
      out += *fallback;
    } else {
      return Invalid("the environment variable " + std::string(name) +
                     " is not set; set it or write ${" + std::string(name) + ":-default}");
    }
    i = close;
  }
  return out;
}

Result<YamlDocument> ParseYaml(std::string_view text, const std::string& source_name) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::ParserException& e) {
    return Invalid(Position(source_name, ToMark(e.mark)) + ": YAML syntax error: " + e.msg);
  } catch (const YAML::Exception& e) {
    return Invalid(source_name + ": YAML error: " + e.what());
  }
  YamlDocument document;
  Converter converter(source_name, document);
  try {
    S3DB_ASSIGN_OR_RETURN(document.root, converter.Convert(root, "", ToMark(root.Mark()), 0));
  } catch (const YAML::Exception& e) {
    return Invalid(source_name + ": YAML error: " + e.what());
  }
  return document;
}

std::string Config::Locate(std::string_view path, std::string_view message) const {
  std::string probe(path);
  SourceMark mark;
  while (true) {
    auto found = document.marks.find(probe);
    if (found != document.marks.end() && found->second.line > 0) {
      mark = found->second;
      break;
    }
    std::size_t cut = probe.find_last_of(".[");
    if (cut == std::string::npos || probe.empty()) break;
    probe.resize(cut);
  }
  std::string out = Position(source_name, mark) + ": ";
  if (!path.empty()) out += std::string(path) + ": ";
  out += message;
  return out;
}

Result<replicator::ReplicatorPluginOptions> Config::BuildReplicatorOptions() const {
  if (!replicator) {
    return MakeError(ErrorCode::kNotFound,
                     source_name + ": no 'replicator' section; add one with 'replicators: [...]'");
  }
  replicator::MappingFunctions functions = LuaMappingFunctions(lua);
  auto options = replicator::ReplicatorPluginOptions::FromJson(*replicator, &functions);
  if (options) return options;

  // The engine's messages start with the option path ("replicators[0].driver: ...").
  const std::string& message = options.error().message;
  std::size_t separator = message.find(": ");
  std::string inner_path = separator == std::string::npos ? "" : message.substr(0, separator);
  bool is_path = !inner_path.empty() && inner_path.find(' ') == std::string::npos;
  if (!is_path) return MakeError(options.error().code, Locate("replicator", message));
  return MakeError(options.error().code,
                   Locate("replicator." + inner_path, message.substr(separator + 2)));
}

Result<Config> ParseConfig(std::string_view yaml_text, const std::string& source_name) {
  Config config;
  config.source_name = source_name;
  S3DB_ASSIGN_OR_RETURN(config.document, ParseYaml(yaml_text, source_name));
  SectionReader reader(config);
  const Json& root = config.document.root;
  if (root.is_null()) {
    return Invalid(source_name +
                   ": the configuration is empty; start with 'connection: "
                   "file://./data'");
  }
  if (!root.is_object()) {
    return reader.Fail("",
                       "the configuration must be a map of keys such as connection, "
                       "resources, replicator");
  }
  const JsonObject& top = root.get_object();
  S3DB_RETURN_IF_ERROR(reader.OnlyKeys(
      top, "",
      {"connection", "connectionString", "stateDir", "resources", "replicator", "http", "lua"}));
  if (top.contains("connection") && top.contains("connectionString")) {
    return reader.Fail("connectionString", "give either connection or connectionString, not both");
  }
  for (const char* key : {"connection", "connectionString"}) {
    if (const Json* value = top.if_contains(key)) {
      S3DB_ASSIGN_OR_RETURN(config.connection, reader.String(*value, key));
    }
  }
  if (const Json* value = top.if_contains("stateDir")) {
    S3DB_ASSIGN_OR_RETURN(config.state_dir, reader.String(*value, "stateDir"));
  }
  if (const Json* value = top.if_contains("resources")) {
    S3DB_RETURN_IF_ERROR(ReadResources(*value, reader, config));
  }
  if (const Json* value = top.if_contains("replicator")) {
    if (!value->is_null()) {
      S3DB_ASSIGN_OR_RETURN(const JsonObject* section,
                            reader.Object(*value, "replicator", "'{ replicators: [...] }'"));
      config.replicator = *section;
    }
  }
  if (const Json* value = top.if_contains("http")) {
    S3DB_RETURN_IF_ERROR(ReadHttp(*value, reader, config));
  }
  if (const Json* value = top.if_contains("lua")) {
    S3DB_RETURN_IF_ERROR(ReadLua(*value, reader, config));
  }
  return config;
}

Result<Config> LoadConfigFile(const std::string& path) {
  // An ifstream opens a directory and then reads nothing, which would look like an empty file.
  if (std::error_code ec; std::filesystem::is_directory(path, ec)) {
    return MakeError(ErrorCode::kInvalidArgument,
                     "the config file '" + path + "' is a directory; -c takes a YAML file");
  }
  errno = 0;
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    int error = errno;
    std::error_code ec;
    if (error == 0 && !std::filesystem::exists(path, ec)) error = ENOENT;
    std::string reason = error == 0 ? "it cannot be opened" : std::strerror(error);
    return MakeError(
        error == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIo,
        "cannot read the config file '" + path + "': " + reason + "; check the path given to -c");
  }
  std::ostringstream text;
  text << file.rdbuf();
  if (file.bad()) {
    return MakeError(ErrorCode::kIo,
                     "error reading the config file '" + path + "': " + std::strerror(errno));
  }
  return ParseConfig(text.str(), path);
}

}  // namespace s3db::config
