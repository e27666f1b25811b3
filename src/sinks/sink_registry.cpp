// The registry of the processor's stores, and the one place that reads processor.sinks (and the
// deprecated processor.store it replaced).

#include <algorithm>
#include <set>
#include <stdexcept>

#include "sinks/tee_store.hpp"
#include "telemetryd/errors.hpp"
#include "telemetryd/log.hpp"
#include "telemetryd/sink.hpp"

namespace telemetryd {
namespace {

constexpr const char* kSinksKey = "processor.sinks";
constexpr const char* kStoreKey = "processor.store";

// What each value of the deprecated processor.store meant.
std::vector<std::string> sinks_of_store(const std::string& store) {
  if (store == "both") return {"mongodb", "influxdb"};
  return {store};
}

std::string known_names() {
  std::string known;
  for (const auto& n : SinkRegistry::instance().names()) known += (known.empty() ? "" : ", ") + n;
  return known;
}

ConfigProblem problem_at(const Config& config, std::string path, std::string message,
                         std::string hint = {}) {
  return {config.source(), 0, 0, std::move(path), std::move(message), std::move(hint), {}};
}

// A sink that serves queries: the query API and the cost windows come from the first one.
bool queryable(const std::unique_ptr<Store>& store) {
  return store->supports_queries();
}

}  // namespace

SinkRegistry& SinkRegistry::instance() {
  static SinkRegistry registry;
  return registry;
}

void SinkRegistry::add(SinkInfo info) {
  if (find(info.name) != nullptr) throw std::logic_error("sink registered twice: " + info.name);
  if (info.section == nullptr || !info.create) {
    throw std::logic_error("sink " + info.name + " registered without a section or factory");
  }
  sinks_.push_back(std::move(info));
}

const SinkInfo* SinkRegistry::find(std::string_view name) const {
  const auto it =
      std::find_if(sinks_.begin(), sinks_.end(), [&](const SinkInfo& s) { return s.name == name; });
  return it == sinks_.end() ? nullptr : &*it;
}

std::vector<std::string> SinkRegistry::names() const {
  std::vector<std::string> out;
  for (const auto& s : sinks_) out.push_back(s.name);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<const SectionSpec*> SinkRegistry::sections() const {
  std::vector<const SectionSpec*> out;
  for (const auto& name : names()) out.push_back(find(name)->section);
  return out;
}

std::vector<KeySpec> SinkRegistry::keys() {
  // Registrations run at static initialisation, possibly after this is called: names are
  // checked when a file is loaded, not listed here.
  return {
      {.name = "sinks",
       .type = ValueType::kStringList,
       .description =
           "The stores events are written to; each has its own section (mongodb, influxdb, "
           "postgresql, ...). A batch is done once every sink acknowledged it. The first that "
           "serves queries (influxdb is write-only) is written first, answers the query API and "
           "keeps the cost windows; the others follow in the order given. Unset: [mongodb], or "
           "what the deprecated `store` says.",
       .check = [](std::string_view name) -> std::optional<std::string> {
         // Runs for each item of the list.
         if (instance().find(name) != nullptr) return std::nullopt;
         std::string message = "unknown sink";
         if (const auto guess = closest_match(name, instance().names())) {
           message += " (did you mean '" + *guess + "'?)";
         }
         return message + "; known: " + known_names();
       },
       .hint = "e.g. [mongodb] or [postgresql, influxdb]"},
      {.name = "store",
       .description = "Deprecated: use `sinks`. mongodb, influxdb, or both (= [mongodb, "
                      "influxdb]); still honoured, with a warning at start.",
       .allowed = {"mongodb", "influxdb", "both"}},
  };
}

std::vector<std::string> SinkRegistry::in_use(const Config& config) {
  if (config.has(kSinksKey)) return config.list(kSinksKey);
  if (config.has(kStoreKey)) return sinks_of_store(config.str(kStoreKey));
  // Only the processor role declares these keys; every other role writes to no sink.
  if (config.role() != "processor") return {};
  return {"mongodb"};
}

bool SinkRegistry::uses(const Config& config, std::string_view name) {
  const auto sinks = in_use(config);
  return std::find(sinks.begin(), sinks.end(), name) != sinks.end();
}

std::string SinkRegistry::chosen_by(const Config& config) {
  return !config.has(kSinksKey) && config.has(kStoreKey) ? kStoreKey : kSinksKey;
}

std::vector<ConfigProblem> SinkRegistry::check(const Config& config) {
  std::vector<ConfigProblem> problems;
  if (config.has(kSinksKey) && config.has(kStoreKey)) {
    problems.push_back(problem_at(config, kStoreKey, "is deprecated and processor.sinks is set too",
                                  "remove processor.store; processor.sinks decides"));
    return problems;
  }
  const std::vector<std::string> names = in_use(config);
  if (config.has(kSinksKey) && names.empty()) {
    problems.push_back(problem_at(config, kSinksKey, "names no sink", "e.g. [mongodb]"));
  }
  std::set<std::string> seen;
  for (const auto& name : names) {
    if (!seen.insert(name).second) {
      problems.push_back(problem_at(config, kSinksKey, "names " + name + " twice"));
    }
  }
  for (const auto& name : names) {
    const SinkInfo* info = instance().find(name);
    if (info == nullptr || !info->check) continue;  // an unknown name is the key's own error
    for (auto& p : info->check(config)) problems.push_back(std::move(p));
  }
  return problems;
}

std::unique_ptr<Store> SinkRegistry::build(const Config& config) {
  const std::vector<std::string> names = in_use(config);
  if (names.empty()) throw StartupError("processor.sinks names no sink");
  if (!config.has(kSinksKey) && config.has(kStoreKey)) {
    log::warn("processor", "processor.store is deprecated; use processor.sinks",
              {{"store", config.str(kStoreKey)}});
  }
  std::vector<std::unique_ptr<Store>> stores;
  for (const auto& name : names) {
    const SinkInfo* info = instance().find(name);
    if (info == nullptr) throw StartupError("processor.sinks: unknown sink " + name);
    stores.push_back(info->create(config));
  }
  // The primary (queries, costs) first, the others in the order given.
  const auto primary = std::find_if(stores.begin(), stores.end(), queryable);
  if (primary != stores.end()) std::rotate(stores.begin(), primary, primary + 1);
  std::unique_ptr<Store> store = std::move(stores.back());
  for (std::size_t i = stores.size() - 1; i-- > 0;) {
    store = std::make_unique<sinks::TeeStore>(std::move(stores[i]), std::move(store));
  }
  return store;
}

}  // namespace telemetryd
