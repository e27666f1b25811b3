#include "app/reprice_command.hpp"

#include <filesystem>
#include <fstream>
#include <iostream>

#include "app/reload.hpp"
#include "app/roles.hpp"
#include "cost/price_catalog.hpp"
#include "events/event_decoder.hpp"
#include "processor/cost_config.hpp"
#include "processor/cost_pricer.hpp"
#include "sqlite/sqlite_store.hpp"
#include "telemetryd/errors.hpp"
#include "telemetryd/json_writer.hpp"
#include "telemetryd/sink.hpp"
#include "telemetryd/time_format.hpp"

namespace telemetryd::app {
namespace {

// "MODEL=USD per hour" lines, '#' comments and blank lines skipped; a model the catalog lacks is
// added (a re-pricing may well be about a GPU that had no price).
void apply_prices_file(const std::string& path, cost::PriceCatalog& catalog) {
  std::ifstream in(path);
  if (!in) throw StartupError(path + ": cannot open the prices file");
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    const auto first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#') continue;
    const auto last = line.find_last_not_of(" \t\r");
    const std::string item = line.substr(first, last - first + 1);
    cost::PriceItem parsed;
    if (auto problem = cost::parse_price_item(item, parsed)) {
      throw StartupError(path + ":" + std::to_string(number) + ": " + *problem);
    }
    parsed.name.erase(parsed.name.find_last_not_of(" \t") + 1);
    if (catalog.set_or_add(parsed.name, parsed.price)) {
      // Maybe a typo, maybe a GPU the catalog lacks: priced either way, and said.
      std::cerr << path << ":" << number << ": '" << parsed.name
                << "' is not in the price catalog: added as a new GPU model\n";
    }
  }
}

std::int64_t parse_time(const std::string& text, const char* option) {
  std::chrono::system_clock::time_point t;
  if (!events::parse_rfc3339(text, t)) {
    throw StartupError(std::string(option) + ": '" + text +
                       "' is not an RFC 3339 time (e.g. 2026-12-01T00:00:00Z)");
  }
  return unix_ms(t);
}

void write_cost(JsonWriter& json, const std::optional<double>& amortized,
                const std::optional<double>& utilization, const std::optional<double>& energy) {
  const auto field = [&](const char* key, const std::optional<double>& v) {
    json.key(key);
    v ? json.value(*v) : json.null();
  };
  json.begin_object();
  field("amortized_usd", amortized);
  field("utilization_usd", utilization);
  field("energy_usd", energy);
  json.end_object();
}

}  // namespace

int reprice(const RepriceOptions& options) {
  Config config;
  try {
    config = load_config(
        {.file = options.config_file, .role = options.role, .overrides = options.overrides},
        role_catalog());
  } catch (const ConfigError& e) {
    log_config_problems(e);
    return kExitConfig;
  }
  try {
    const std::string& role = config.role();
    if (role != "processor" && role != "all") {
      throw StartupError("reprice works on the processor or all role's store, not " + role);
    }
    const std::string section = role == "all" ? "embedded" : "processor";
    const std::int64_t from = parse_time(options.from, "--from");
    const std::int64_t to = parse_time(options.to, "--to");
    if (to <= from) throw StartupError("--to must be after --from");

    std::unique_ptr<Store> store;
    if (role == "all") {
      const auto path =
          std::filesystem::path(config.str("embedded.data_dir")) / "telemetryd.sqlite3";
      // Never create an empty database here: a wrong data_dir must say so.
      if (!std::filesystem::exists(path)) throw StartupError(path.string() + ": no such database");
      store = std::make_unique<sqlite::SqliteStore>(path.string());
    } else {
      store = SinkRegistry::build(config);
    }
    if (!store->supports_costs()) {
      throw StartupError(
          "the processor's sinks keep no costs (processor.sinks needs one that "
          "serves queries, e.g. mongodb)");
    }
    cost::PriceCatalog prices = processor::price_catalog_from(config, section);
    // A database last written by an older release lacks the cost tables: create them (and
    // nothing else) as the daemon would.
    if (Result<bool> prepared = store->prepare(processor::catalog_from(config, section, prices));
        !prepared) {
      std::cerr << "reprice: cannot prepare the store: " << prepared.error().message << "\n";
      return kExitStartup;
    }
    if (!options.prices_file.empty()) apply_prices_file(options.prices_file, prices);

    metrics::Registry registry;
    processor::PricerSettings settings = processor::pricer_settings_from(config, section);
    processor::TenantLabels tenants(settings.tenants, settings.tenant_series);
    processor::CostPricer pricer(settings, *store, std::move(prices), registry, tenants);
    const auto report = pricer.reprice(
        from, to, options.dry_run, [](const cost::UsageRow& row, const cost::UsageCost& priced) {
          JsonWriter json;
          json.begin_object()
              .key("id")
              .value(row.id)
              .key("window_start")
              .value(rfc3339_utc(std::chrono::system_clock::time_point(
                  std::chrono::milliseconds(priced.window_start_ms))))
              .key("before");
          if (row.stored.priced) {
            write_cost(json, row.stored.amortized_usd, row.stored.utilization_usd,
                       row.stored.energy_usd);
          } else {
            json.null();
          }
          json.key("after");
          write_cost(json, priced.amortized_usd, priced.utilization_usd, priced.energy_usd);
          json.end_object();
          std::cout << json.str() << "\n";
        });
    if (!report) {
      std::cerr << "reprice: the store failed: " << report.error().message << "\n";
      return kExitStartup;
    }
    JsonWriter summary;
    summary.begin_object()
        .key("windows")
        .value(static_cast<std::int64_t>(report.value().windows))
        .key("documents")
        .value(static_cast<std::int64_t>(report.value().documents))
        .key("changed")
        .value(static_cast<std::int64_t>(report.value().changed))
        .key("dry_run")
        .value(options.dry_run)
        .end_object();
    std::cout << summary.str() << "\n";
    return 0;
  } catch (const ConfigError& e) {
    log_config_problems(e);
    return kExitConfig;
  } catch (const StartupError& e) {
    std::cerr << "reprice: " << e.what() << "\n";
    return kExitConfig;
  }
}

}  // namespace telemetryd::app
