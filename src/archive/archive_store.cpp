#include "archive/archive_store.hpp"

#include <algorithm>

namespace telemetryd::archive {

bool valid_key(std::string_view key) {
  if (key.empty() || key.front() == '/' || key.size() > 1024) return false;
  std::size_t start = 0;
  while (start <= key.size()) {
    const auto end = std::min(key.find('/', start), key.size());
    const std::string_view segment = key.substr(start, end - start);
    if (segment.empty() || segment == "." || segment == "..") return false;
    start = end + 1;
  }
  for (char c : key) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return false;
  }
  return true;
}

Result<std::vector<ObjectInfo>> list_all(ArchiveStore& store, const std::string& prefix,
                                         int page_size) {
  std::vector<ObjectInfo> all;
  std::string token;
  do {
    Result<ListPage> page = store.list(prefix, token, page_size);
    if (!page) return page.error();
    for (auto& object : page->objects) all.push_back(std::move(object));
    // A server that repeats its token would loop forever; that is its bug, not a retry.
    if (!page->next_token.empty() && page->next_token == token) {
      return Error::permanent("list of '" + prefix + "' returned the same continuation token");
    }
    token = std::move(page->next_token);
  } while (!token.empty());
  return all;
}

}  // namespace telemetryd::archive
