#include <algorithm>
#include <stdexcept>

#include "telemetryd/component.hpp"
#include "telemetryd/event_inlet.hpp"

namespace telemetryd {

ComponentRegistry& ComponentRegistry::instance() {
  static ComponentRegistry registry;
  return registry;
}

void ComponentRegistry::add(ComponentInfo info) {
  if (find(info.name) != nullptr)
    throw std::logic_error("component registered twice: " + info.name);
  components_.push_back(std::move(info));
}

const ComponentInfo* ComponentRegistry::find(std::string_view name) const {
  const auto it = std::find_if(components_.begin(), components_.end(),
                               [&](const ComponentInfo& c) { return c.name == name; });
  return it == components_.end() ? nullptr : &*it;
}

std::vector<std::string> ComponentRegistry::names() const {
  std::vector<std::string> out;
  for (const auto& c : components_) out.push_back(c.name);
  std::sort(out.begin(), out.end());
  return out;
}

EventInlet& EventInletSlot::get() const {
  if (!factory_) throw std::logic_error("no component of this role provides an event inlet");
  return factory_();
}

}  // namespace telemetryd
