#include <algorithm>
#include <stdexcept>

#include "telemetryd/source.hpp"

namespace telemetryd {

SourceRegistry& SourceRegistry::instance() {
  static SourceRegistry registry;
  return registry;
}

void SourceRegistry::add(SourceInfo info) {
  if (find(info.name) != nullptr) throw std::logic_error("source registered twice: " + info.name);
  sources_.push_back(std::move(info));
}

const SourceInfo* SourceRegistry::find(std::string_view name) const {
  const auto it = std::find_if(sources_.begin(), sources_.end(),
                               [&](const SourceInfo& s) { return s.name == name; });
  return it == sources_.end() ? nullptr : &*it;
}

std::vector<std::string> SourceRegistry::names() const {
  std::vector<std::string> out;
  for (const auto& s : sources_) out.push_back(s.name);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<const SectionSpec*> SourceRegistry::sections() const {
  std::vector<const SectionSpec*> out;
  for (const auto& name : names()) out.push_back(&find(name)->section);
  return out;
}

std::optional<std::string> SourceRegistry::check_name(std::string_view name) {
  if (instance().find(name) != nullptr) return std::nullopt;
  std::string known;
  for (const auto& n : instance().names()) known += (known.empty() ? "" : ", ") + n;
  return "unknown source (known: " + known + ")";
}

}  // namespace telemetryd
