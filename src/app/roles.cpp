#include "app/roles.hpp"

#include <algorithm>
#include <map>
#include <stdexcept>

#include "telemetryd/component.hpp"

namespace telemetryd::app {
namespace {

// Roles grow as their stages land (producer sources, processor sinks, worker archive); a role
// lists the connections it needs so /ready reflects them from the first release.
const std::map<std::string, std::vector<std::string>, std::less<>>& role_table() {
  static const std::map<std::string, std::vector<std::string>, std::less<>> table{
      {"producer", {"http", "kafka", "producer"}},
      {"processor", {"http", "kafka", "processor", "ingest", "otlp", "scrape"}},
      {"worker", {"http", "kafka", "mongodb", "worker"}},
      {"all", {"http", "embedded", "otlp", "scrape"}},
      {"gpu-exporter", {"http", "gpu_exporter"}},
  };
  return table;
}

const SectionSpec& daemon_section() {
  static const SectionSpec section{
      "daemon",
      "Process-wide settings.",
      {
          {.name = "log_level",
           .description = "Lowest level written to the JSON log.",
           .default_value = "info",
           .allowed = {"debug", "info", "warn", "error"}},
          {.name = "shutdown_timeout_ms",
           .type = ValueType::kInt,
           .description = "Longest drain after SIGTERM before the process exits anyway.",
           .default_value = "10000",
           .min = 100,
           .max = 600000},
      }};
  return section;
}

// Sources are subsections of both the producer and the embedded pipeline, and the mongodb
// section is the worker's component's and the processor's sink's: list each name once.
void add_unique(std::vector<const SectionSpec*>& sections, const SectionSpec* section) {
  if (std::none_of(sections.begin(), sections.end(),
                   [&](const SectionSpec* s) { return s->name == section->name; })) {
    sections.push_back(section);
  }
}

}  // namespace

std::vector<std::string> components_for_role(std::string_view role) {
  const auto it = role_table().find(role);
  return it == role_table().end() ? std::vector<std::string>{} : it->second;
}

const RoleCatalog& role_catalog() {
  static const RoleCatalog catalog = [] {
    RoleCatalog c;
    for (const auto& [role, unused] : role_table()) c.roles.push_back(role);
    c.sections_for = [](std::string_view role) -> std::optional<std::vector<const SectionSpec*>> {
      const auto it = role_table().find(role);
      if (it == role_table().end()) return std::nullopt;
      std::vector<const SectionSpec*> sections{&daemon_section()};
      for (const auto& name : it->second) {
        const ComponentInfo* info = ComponentRegistry::instance().find(name);
        if (info == nullptr)
          throw std::logic_error("role " + std::string(role) + " names unregistered component " +
                                 name);
        sections.push_back(&info->section);
        if (info->subsections) {
          for (const SectionSpec* sub : info->subsections()) add_unique(sections, sub);
        }
      }
      return sections;
    };
    c.check = [](const Config& config) {
      std::vector<ConfigProblem> problems;
      for (const auto& name : components_for_role(config.role())) {
        const ComponentInfo* info = ComponentRegistry::instance().find(name);
        if (info == nullptr || !info->check) continue;
        for (auto& problem : info->check(config)) problems.push_back(std::move(problem));
      }
      return problems;
    };
    c.all_sections.push_back(&daemon_section());
    for (const auto& name : ComponentRegistry::instance().names()) {
      const ComponentInfo* info = ComponentRegistry::instance().find(name);
      add_unique(c.all_sections, &info->section);
      if (info->subsections) {
        for (const SectionSpec* sub : info->subsections()) add_unique(c.all_sections, sub);
      }
    }
    return c;
  }();
  return catalog;
}

}  // namespace telemetryd::app
