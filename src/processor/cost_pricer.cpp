#include "processor/cost_pricer.hpp"

#include <algorithm>
#include <map>

#include "telemetryd/log.hpp"
#include "telemetryd/time_format.hpp"

namespace telemetryd::processor {
namespace {}  // namespace

CostPricer::CostPricer(PricerSettings settings, Store& store, cost::PriceCatalog prices,
                       metrics::Registry& metrics, TenantLabels& tenants)
    : settings_(std::move(settings)),
      store_(store),
      prices_(std::move(prices)),
      tenants_(tenants),
      model_cost_(metrics.counter("processor_cost_usd_total",
                                  "Cost of the stored token usage, by model and cost basis "
                                  "(amortized, utilization, energy).",
                                  {"model", "basis"})),
      tenant_cost_(metrics.counter("processor_tenant_cost_usd_total",
                                   "Cost of the stored token usage, by tenant (bounded: "
                                   "cost.tenant_series, the rest tenant=\"other\") and basis.",
                                   {"tenant", "basis"})),
      cost_per_token_(metrics.gauge("processor_cost_per_token_usd",
                                    "Amortised cost per token in the latest priced window, by "
                                    "model (or deployment: cost.key).",
                                    {"model"})),
      unpriced_gpus_(metrics.gauge("processor_unpriced_gpus",
                                   "GPUs that ran tokens but whose model has no price.",
                                   {"model"})),
      windows_priced_(metrics
                          .counter("processor_cost_windows_priced_total",
                                   "Cost windows priced (or priced again after new events).")
                          .with({})),
      minutes_rolled_(metrics
                          .counter("processor_usage_rollups_total",
                                   "Usage minutes rolled up for /v1/usage (again after new "
                                   "requests or costs).")
                          .with({})),
      rollup_failures_(metrics
                           .counter("processor_usage_rollup_failures_total",
                                    "Rounds of usage roll-up that failed on the store (retried).")
                           .with({})),
      failures_(metrics
                    .counter("processor_cost_pricing_failures_total",
                             "Rounds of pricing that failed on the store (retried).")
                    .with({})) {}

CostPricer::~CostPricer() {
  stop();
}

// Spend moves by the net change of a window per series: when a late request joins a priced
// window the others' shares shrink as much as its own grows, so the counters move by nothing
// and the window is counted once. A net decrease (cheaper re-pricing) is not taken back:
// counters only go up.
void CostPricer::count_spend(const std::vector<const cost::UsageRow*>& rows,
                             const std::vector<const cost::UsageCost*>& priced) {
  std::map<std::pair<std::string, std::string>, double> by_model, by_tenant;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const cost::UsageRow& row = *rows[i];
    const cost::UsageCost& now = *priced[i];
    const std::string tenant = tenants_.label(row.tenant_id);
    const std::pair<const char*, double> bases[] = {
        {"amortized", now.amortized_usd.value_or(0) - row.stored.amortized_usd.value_or(0)},
        {"utilization", now.utilization_usd.value_or(0) - row.stored.utilization_usd.value_or(0)},
        {"energy", now.energy_usd.value_or(0) - row.stored.energy_usd.value_or(0)},
    };
    for (const auto& [basis, change] : bases) {
      by_model[{row.model, basis}] += change;
      by_tenant[{tenant, basis}] += change;
    }
  }
  for (const auto& [key, change] : by_model) {
    model_cost_.with({key.first, key.second}).Increment(std::max(0.0, change));
  }
  for (const auto& [key, change] : by_tenant) {
    tenant_cost_.with({key.first, key.second}).Increment(std::max(0.0, change));
  }
}

void CostPricer::note_unpriced(const cost::WindowResult& result) {
  for (const auto& [uuid, model] : result.unpriced_gpus) {
    auto& gpus = unpriced_[model];
    if (gpus.empty()) {
      log::warn("cost", "GPU model has no price: its tokens get a null cost",
                {{"model", model},
                 {"gpu_uuid", uuid},
                 {"fix", "add it with cost.extra_gpus: 'MODEL=USD per hour'"}});
    }
    if (gpus.insert(uuid).second) {
      unpriced_gpus_.with({model}).Set(static_cast<double>(gpus.size()));
    }
  }
}

Result<PricedWindow> CostPricer::price(
    std::int64_t start_ms, const std::optional<CostWindowMark>& mark, bool dry_run,
    const std::function<void(const cost::UsageRow&, const cost::UsageCost&)>& on_change) {
  const std::int64_t window = settings_.model.window_ms;
  Result<cost::WindowInputs> inputs =
      store_.cost_window_inputs(start_ms, start_ms + window, window);
  if (!inputs) return inputs.error();
  const cost::WindowResult result =
      cost::price_window(start_ms, inputs.value(), settings_.model, prices_);
  std::vector<cost::UsageCost> changed;
  std::vector<const cost::UsageRow*> changed_rows;
  std::map<std::string, std::pair<double, std::int64_t>> per_key;  // amortised cost, tokens
  for (std::size_t i = 0; i < result.costs.size(); ++i) {
    const cost::UsageRow& row = inputs.value().usage[i];
    const cost::UsageCost& priced = result.costs[i];
    if (priced.amortized_usd) {
      auto& [amount, tokens] =
          per_key[settings_.key_by_deployment && !row.deployment.empty() ? row.deployment
                                                                         : row.model];
      amount += *priced.amortized_usd;
      tokens += priced.tokens;
    }
    // Unchanged documents are not written again: re-pricing unchanged data changes nothing.
    if (!cost::cost_changed(row.stored, priced)) continue;
    changed.push_back(priced);
    changed_rows.push_back(&row);
  }
  const PricedWindow counts{result.costs.size(), changed.size()};
  const auto report = [&] {
    if (!on_change) return;
    for (std::size_t i = 0; i < changed.size(); ++i) on_change(*changed_rows[i], changed[i]);
  };
  if (dry_run) {
    report();
    return counts;
  }
  if (!changed.empty() || mark) {
    Result<bool> written = store_.write_costs(changed, mark);
    if (!written) return written.error();
    if (!written.value()) {
      // Another pricer took the window over (our lease ran out): it counts, not us.
      return PricedWindow{result.costs.size(), 0};
    }
  }
  report();
  std::vector<const cost::UsageCost*> priced;
  for (const auto& c : changed) priced.push_back(&c);
  count_spend(changed_rows, priced);
  for (const auto& [key, totals] : per_key) {
    if (totals.second > 0) {
      cost_per_token_.with({key}).Set(totals.first / static_cast<double>(totals.second));
    }
  }
  note_unpriced(result);
  windows_priced_.Increment();
  return counts;
}

Result<std::size_t> CostPricer::run_once(std::int64_t now) {
  Result<std::vector<CostWindowMark>> marks =
      store_.settled_cost_windows(now - settings_.settle.count(), now, settings_.windows_per_round);
  if (!marks) return marks.error();
  std::size_t priced = 0;
  for (CostWindowMark mark : marks.value()) {
    // A round can take minutes on a slow store: a stop waits for one window at most. The
    // windows left keep their marks, for the next start or another processor.
    if (stop_requested()) break;
    // A window is priced once it has ended and settled; an earlier quiet spell would only mean
    // pricing it again.
    if (mark.start_ms + settings_.model.window_ms > now - settings_.settle.count()) continue;
    const std::int64_t lease = std::max<std::int64_t>(30000, 3 * settings_.settle.count());
    // A new token per claim: a pricer that lost its lease and claims again is a new holder.
    Result<bool> claimed = store_.claim_cost_window(mark, cost::random_token(), now, now + lease);
    if (!claimed) return claimed.error();
    if (!claimed.value()) continue;  // another processor prices it
    Result<PricedWindow> done = price(mark.start_ms, mark, false, {});
    if (!done) {
      if (done.error().kind == Error::Kind::kRetryable) return done.error();
      // A window the store refuses for good must not block the others: leave it unpriced,
      // say which, and let `telemetryd reprice` retry it once the cause is fixed.
      failures_.Increment();
      log::error("cost", "cannot price a cost window; skipping it",
                 {{"window_start", mark.start_ms}, {"error", done.error().message}});
      if (Result<bool> cleared = store_.write_costs({}, mark); !cleared) return cleared.error();
      continue;
    }
    ++priced;
  }
  return priced;
}

// The usage rollups (query/usage_rollup.hpp) ride on the pricer's thread and settle time: a
// minute is rolled up once no request or cost has landed in it for `settle`, so a busy minute
// is recomputed once, not once per batch. Pricing a window marks its minutes again.
Result<std::size_t> CostPricer::roll_up_once(std::int64_t now) {
  if (!store_.keeps_usage_rollups()) return std::size_t{0};
  Result<std::size_t> rolled =
      store_.roll_up_usage(now - settings_.settle.count(), settings_.minutes_per_round);
  if (rolled) minutes_rolled_.Increment(static_cast<double>(rolled.value()));
  return rolled;
}

Result<RepriceReport> CostPricer::reprice(
    std::int64_t from_ms, std::int64_t to_ms, bool dry_run,
    const std::function<void(const cost::UsageRow&, const cost::UsageCost&)>& on_change) {
  const std::int64_t window = settings_.model.window_ms;
  Result<std::vector<std::int64_t>> starts =
      store_.usage_window_starts(cost::window_start(from_ms, window), to_ms, window);
  if (!starts) return starts.error();
  RepriceReport report;
  for (const std::int64_t start : starts.value()) {
    Result<PricedWindow> priced = price(start, std::nullopt, dry_run, on_change);
    if (!priced) return priced.error();
    ++report.windows;
    report.documents += priced.value().documents;
    report.changed += priced.value().changed;
  }
  return report;
}

bool CostPricer::stop_requested() {
  const std::lock_guard lock(mutex_);
  return stopping_;
}

void CostPricer::start() {
  thread_ = std::thread([this] { run(); });
}

void CostPricer::stop() {
  {
    const std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void CostPricer::run() {
  // Often enough that a settled window waits at most half the settle time more; a store outage
  // backs off to 30 s and logs once per outage. Pricing and the usage roll-up are independent:
  // either failing does not hold the other back.
  const auto tick = std::clamp(settings_.settle / 2, std::chrono::milliseconds(100),
                               std::chrono::milliseconds(1000));
  auto wait = tick;
  bool pricing_failing = false, rollup_failing = false;
  const auto note = [](bool& failing, const Result<std::size_t>& result, metrics::Counter& failures,
                       const char* what) {
    if (result) {
      if (failing) log::info("cost", std::string(what) + " again");
      failing = false;
      return;
    }
    failures.Increment();
    if (!failing) {
      log::warn("cost", std::string(what) + " failed; retrying",
                {{"error", result.error().message}});
    }
    failing = true;
  };
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    wake_.wait_for(lock, wait, [this] { return stopping_; });
    if (stopping_) break;
    lock.unlock();
    const std::int64_t now = unix_ms(std::chrono::system_clock::now());
    const Result<std::size_t> priced = run_once(now);
    const Result<std::size_t> rolled = roll_up_once(now);
    lock.lock();
    note(pricing_failing, priced, failures_, "pricing cost windows");
    note(rollup_failing, rolled, rollup_failures_, "rolling up usage minutes");
    // A full round means more windows (or minutes) are waiting: go on at once. Otherwise a
    // failure backs off.
    const bool more = (priced && priced.value() >= settings_.windows_per_round) ||
                      (rolled && rolled.value() >= settings_.minutes_per_round);
    wait = more ? std::chrono::milliseconds(0)
           : priced && rolled
               ? tick
               : std::min(std::max(wait * 2, tick), std::chrono::milliseconds(30000));
  }
}

}  // namespace telemetryd::processor
