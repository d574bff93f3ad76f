#include "formats/format_options.h"

#include "core/option_keys.h"

namespace s3db::formats {
namespace {

constexpr std::string_view kCsvKeys[] = {"delimiter", "bom", "escapeFormulas"};
constexpr std::string_view kJsonlKeys[] = {"compress", "gzipLevel"};
constexpr std::string_view kParquetKeys[] = {"compression", "rowGroupSize", "dictionary"};
constexpr std::string_view kExcelKeys[] = {"freezeHeaders", "autoFilter", "sheetName"};

}  // namespace

std::span<const std::string_view> FormatOptionKeys(FileFormat format) {
  switch (format) {
    case FileFormat::kCsv:
      return kCsvKeys;
    case FileFormat::kJsonl:
      return kJsonlKeys;
    case FileFormat::kParquet:
      return kParquetKeys;
    case FileFormat::kExcel:
      return kExcelKeys;
  }
  return {};
}

Status RefuseUnknownFormatOptions(FileFormat format, const JsonObject& options) {
  return RefuseUnknownOptions(options, FormatOptionKeys(format), "");
}

}  // namespace s3db::formats
