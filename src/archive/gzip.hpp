#pragma once
// gzip over zlib. The header carries no time or file name, so the same input and level always
// give the same bytes: a re-upload of a sealed batch is byte-identical.

#include <cstddef>
#include <string>
#include <string_view>

#include "telemetryd/result.hpp"

namespace telemetryd::archive {

std::string gzip_compress(std::string_view data, int level = 6);
/// Permanent error on corrupt or truncated input; concatenated members are all decoded. Output
/// past `max_size` stops the work (a small body can inflate to gigabytes) with a permanent error
/// and, when given, `*too_large` set.
Result<std::string> gzip_decompress(std::string_view data,
                                    std::size_t max_size = static_cast<std::size_t>(-1),
                                    bool* too_large = nullptr);

}  // namespace telemetryd::archive
