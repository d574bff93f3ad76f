#include "drivers/source_attributes.h"

#include <algorithm>

namespace s3db::replicator {

std::optional<std::vector<Attribute>> LoadSourceAttributes(const DriverContext& context,
                                                           std::string_view resource) {
  if (!context.resource_definition) return std::nullopt;
  std::optional<JsonObject> definition = context.resource_definition(resource);
  if (!definition) return std::nullopt;
  const JsonObject* attributes = &*definition;
  if (const Json* nested = definition->if_contains("attributes"); nested != nullptr) {
    if (!nested->is_object()) return std::nullopt;
    attributes = &nested->get_object();
  }
  auto schema = Schema::Parse(*attributes);
  if (!schema) return std::nullopt;
  std::vector<Attribute> result = schema->attributes();
  const Json* timestamps = definition->if_contains("timestamps");
  if (timestamps != nullptr && timestamps->is_bool() && timestamps->get_bool()) {
    for (const char* name : {"createdAt", "updatedAt"}) {
      bool declared = std::any_of(result.begin(), result.end(),
                                  [&](const Attribute& a) { return a.name == name; });
      if (declared) continue;
      Attribute attribute;
      attribute.name = name;
      attribute.type = AttributeType::kDatetime;
      result.push_back(std::move(attribute));
    }
  }
  return result;
}

}  // namespace s3db::replicator
