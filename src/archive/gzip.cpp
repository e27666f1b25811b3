#include "archive/gzip.hpp"

#include <zlib.h>

#include <stdexcept>

namespace telemetryd::archive {
namespace {
constexpr int kGzipWindow = 15 + 16;  // 15-bit window, gzip wrapper
constexpr std::size_t kChunk = 64 * 1024;
}  // namespace

std::string gzip_compress(std::string_view data, int level) {
  z_stream zs{};
  if (deflateInit2(&zs, level, Z_DEFLATED, kGzipWindow, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    throw std::runtime_error("deflateInit2 failed");  // bad level or out of memory
  }
  std::string out;
  out.resize(deflateBound(&zs, static_cast<uLong>(data.size())) + 32);
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&zs, Z_FINISH);
  const auto produced = zs.total_out;
  deflateEnd(&zs);
  // deflateBound guarantees one call suffices.
  if (rc != Z_STREAM_END) throw std::runtime_error("deflate did not finish");
  out.resize(produced);
  return out;
}

Result<std::string> gzip_decompress(std::string_view data, std::size_t max_size, bool* too_large) {
  if (too_large != nullptr) *too_large = false;
  std::string out;
  std::size_t consumed = 0;
  char buffer[kChunk];
  while (consumed < data.size()) {
    z_stream zs{};
    if (inflateInit2(&zs, kGzipWindow) != Z_OK) return Error::permanent("inflateInit2 failed");
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data() + consumed));
    zs.avail_in = static_cast<uInt>(data.size() - consumed);
    int rc = Z_OK;
    while (rc != Z_STREAM_END) {
      zs.next_out = reinterpret_cast<Bytef*>(buffer);
      zs.avail_out = sizeof buffer;
      rc = inflate(&zs, Z_NO_FLUSH);
      if (rc != Z_OK && rc != Z_STREAM_END) {
        inflateEnd(&zs);
        return Error::permanent(std::string("gzip data is corrupt or truncated") +
                                (zs.msg != nullptr ? std::string(": ") + zs.msg : ""));
      }
      if (out.size() + (sizeof buffer - zs.avail_out) > max_size) {
        inflateEnd(&zs);
        if (too_large != nullptr) *too_large = true;
        return Error::permanent("gzip data inflates past " + std::to_string(max_size) + " bytes");
      }
      out.append(buffer, sizeof buffer - zs.avail_out);
      if (rc == Z_OK && zs.avail_in == 0 && zs.avail_out != 0) {
        inflateEnd(&zs);
        return Error::permanent("gzip data is truncated");
      }
    }
    consumed += zs.total_in;
    inflateEnd(&zs);
  }
  return out;
}

}  // namespace telemetryd::archive
