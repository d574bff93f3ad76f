#include "drivers/files/file_options.h"

#include <vector>

#include "core/option_keys.h"
#include "formats/format_options.h"

namespace s3db::replicator::files {
namespace {

constexpr std::string_view kDriverKeys[] = {"output",           "outputPath", "mode",
                                            "rotateBy",         "rotateSize", "flushIntervalMs",
                                            "closeAfterIdleMs", "timezone"};
constexpr std::string_view kOutputKeys[] = {"driver", "path", "connectionString"};

}  // namespace

Status RefuseUnknownFileDriverOptions(std::string_view format, const JsonObject& config) {
  S3DB_ASSIGN_OR_RETURN(formats::FileFormat parsed, formats::ParseFileFormat(format));
  std::vector<std::string_view> known(std::begin(kDriverKeys), std::end(kDriverKeys));
  for (std::string_view key : formats::FormatOptionKeys(parsed)) {
    // A workbook has one sheet per target, named after it; its file name is the option.
    if (parsed == formats::FileFormat::kExcel && key == "sheetName") continue;
    known.push_back(key);
  }
  if (parsed == formats::FileFormat::kExcel) known.push_back("filename");
  S3DB_RETURN_IF_ERROR(RefuseUnknownOptions(config, known, ""));
  if (const Json* output = config.if_contains("output"); output && output->is_object()) {
    S3DB_RETURN_IF_ERROR(RefuseUnknownOptions(output->get_object(), kOutputKeys, "output"));
  }
  return Ok();
}

}  // namespace s3db::replicator::files
