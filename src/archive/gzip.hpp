#pragma once
// gzip over zlib. The header carries no time or file name, so the same input and level always
// give the same bytes: a re-upload of a sealed batch is byte-identical.

#include <string>
#include <string_view>

#include "telemetryd/result.hpp"

namespace telemetryd::archive {

std::string gzip_compress(std::string_view data, int level = 6);
/// Permanent error on corrupt or truncated input; concatenated members are all decoded.
Result<std::string> gzip_decompress(std::string_view data);

}  // namespace telemetryd::archive
