// The `scrape` component: reads the Prometheus /metrics of model servers (vLLM, SGLang) every
// interval and turns each model's token-counter increases into token.usage.v1 events, with the
// server's serving gauges and latency percentiles beside them (docs/scrape.md). No
// configuration on the model server.
//
// Exactness across restarts rests on the state file: the counters last read and the events not
// yet acknowledged are written (atomically, one file) before publishing. After a crash the
// pending events are published again with the same ids (stored once), and the next delta starts
// from the saved counters, so no increase is lost or counted twice. While the pipeline refuses
// events, scraping pauses: the servers' counters keep the increase until it takes them again.

#include <fcntl.h>
#include <simdjson.h>
#include <unistd.h>
#include <boost/asio/io_context.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_future.hpp>
#include <cerrno>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "events/cloudevent.hpp"
#include "events/token_usage.hpp"
#include "influx/influx_writer.hpp"
#include "scrape/exposition.hpp"
#include "scrape/scrape_targets.hpp"
#include "scrape/serving_metrics.hpp"
#include "scrape/token_deltas.hpp"
#include "telemetryd/component.hpp"
#include "telemetryd/errors.hpp"
#include "telemetryd/event_inlet.hpp"
#include "telemetryd/json_writer.hpp"
#include "telemetryd/log.hpp"

namespace telemetryd::scrape {
namespace {

namespace asio = boost::asio;
using Clock = std::chrono::system_clock;

constexpr std::string_view kPendingMarker = "--- pending events\n";
// Events kept while the pipeline refuses them: about a day of 20 models at 15 s. Past it,
// scraping pauses and the servers' counters keep the increase.
constexpr std::size_t kMaxPending = 100000;

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch())
      .count();
}

// A parameter, not a reference: the coroutine frame owns the events until the inlet answers.
asio::awaitable<std::vector<Delivery>> publish_owned(EventInlet& inlet, std::vector<Event> events) {
  std::vector<Delivery> deliveries = co_await inlet.publish(events);
  co_return deliveries;
}

std::string state_path(const Config& config) {
  if (!config.str("scrape.state_file").empty()) return config.str("scrape.state_file");
  const char* dir = std::getenv("STATE_DIRECTORY");  // set by systemd's StateDirectory=
  return (std::filesystem::path(dir != nullptr && *dir != '\0' ? dir : "data") /
          "scrape-state.jsonl")
      .string();
}

std::vector<Target> configured_targets(const Config& config) {
  std::vector<Target> targets;
  for (const auto& line : config.list("scrape.targets")) {
    Result<Target> target = parse_target(line);
    if (!target) throw StartupError("scrape.targets: " + target.error().message);
    targets.push_back(std::move(target.value()));
  }
  if (const std::string& file = config.str("scrape.targets_file"); !file.empty()) {
    std::ifstream in(file);
    if (!in) throw StartupError("scrape.targets_file: cannot read " + file);
    std::stringstream text;
    text << in.rdbuf();
    Result<std::vector<Target>> listed = parse_targets_file(text.str(), file);
    if (!listed) throw StartupError("scrape.targets_file: " + listed.error().message);
    for (auto& target : listed.value()) targets.push_back(std::move(target));
  }
  std::map<std::string, int> seen;
  for (const auto& target : targets) {
    if (++seen[target.url] > 1) throw StartupError("scrape: target listed twice: " + target.url);
  }
  return targets;
}

void put_optional(JsonWriter& json, const char* key, const std::optional<double>& value,
                  double scale = 1.0) {
  if (value && std::isfinite(*value) && *value >= 0) json.key(key).value(*value * scale);
}

class ScrapeComponent final : public Component {
 public:
  explicit ScrapeComponent(ComponentContext& ctx)
      : io_(ctx.io),
        inlet_(ctx.inlet.get()),
        readiness_(ctx.readiness),
        targets_(configured_targets(ctx.config)),
        interval_(ctx.config.integer("scrape.interval_ms")),
        timeout_(ctx.config.integer("scrape.timeout_ms")),
        tenant_(ctx.config.str("scrape.tenant")),
        state_file_(state_path(ctx.config)),
        topic_(inlet_.token_usage_topic()),
        source_(events::local_source("scrape")),
        up_(ctx.metrics.gauge("scrape_target_up",
                              "1 when the target's last scrape gave a valid exposition.",
                              {"target"})),
        errors_(ctx.metrics.counter("scrape_errors_total",
                                    "Failed scrapes, by target and reason (http, status, "
                                    "malformed, counter).",
                                    {"target", "reason"})),
        tokens_(ctx.metrics.counter(
            "scrape_tokens_total",
            "Token increases read from model servers and published as usage, by target, model "
            "and type (prompt, generation, cached_prompt).",
            {"target", "model", "type"})),
        kv_cache_(ctx.metrics.gauge("scrape_kv_cache_usage_ratio",
                                    "KV-cache usage (0-1) the model server last reported.",
                                    {"target", "model", "server_kind"})),
        running_(ctx.metrics.gauge("scrape_requests_running",
                                   "Requests the model server was running at the last scrape.",
                                   {"target", "model", "server_kind"})),
        waiting_(ctx.metrics.gauge("scrape_requests_waiting",
                                   "Requests waiting in the model server's queue at the last "
                                   "scrape.",
                                   {"target", "model", "server_kind"})),
        ttft_(ctx.metrics.gauge("scrape_time_to_first_token_seconds",
                                "Time to first token since the server started, by quantile, from "
                                "its histogram.",
                                {"target", "model", "server_kind", "quantile"})),
        itl_(ctx.metrics.gauge("scrape_inter_token_latency_seconds",
                               "Inter-token latency since the server started, by quantile, from "
                               "its histogram.",
                               {"target", "model", "server_kind", "quantile"})) {
    if (targets_.empty()) {
      throw ConfigError({{.file = ctx.config.source(),
                          .path = "scrape.targets",
                          .message = "lists no target while scrape.enabled is true",
                          .hint = "a /metrics URL per item, or scrape.targets_file"}});
    }
    load_state();
    readiness_.declare("scrape", "no scrape yet");
    for (const auto& target : targets_) {
      clients_.push_back(std::make_unique<influx::InfluxWriter>(client_settings(target)));
    }
    log::info("scrape", "scraping model servers",
              {{"targets", static_cast<std::int64_t>(targets_.size())},
               {"interval_ms", interval_.count()},
               {"state_file", state_file_}});
  }

  ~ScrapeComponent() override {
    stop();
    if (thread_.joinable()) thread_.join();
  }

  void start() override {
    thread_ = std::thread([this] { run(); });
  }
  void stop() override {
    {
      const std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
  }

 private:
  influx::WriterSettings client_settings(const Target& target) const {
    // The InfluxDB writer's client is the project's one blocking HTTP(S) client (keep-alive,
    // a deadline on every step, verified TLS): with no credentials it sends a plain GET.
    influx::WriterSettings settings;
    settings.url = target.origin;
    settings.timeout = timeout_;
    return settings;
  }

  bool sleep_until(Clock::time_point due) {
    std::unique_lock lock(mutex_);
    return !wake_.wait_until(lock, due, [this] { return stopping_; });
  }

  void run() {
    auto next_scrape = Clock::now();
    while (!stopping()) {
      // Scraping goes on while the pipeline refuses events (a reset during an outage would
      // otherwise hide the increase before it): the new intervals join the pending events,
      // each with its own id, up to kMaxPending.
      if (Clock::now() >= next_scrape && pending_.size() < kMaxPending) {
        scrape_all();
        const auto interval = std::chrono::duration_cast<Clock::duration>(interval_);
        // Aligned to the interval's grid, so every instance scrapes at the same moments.
        next_scrape =
            Clock::time_point((Clock::now().time_since_epoch() / interval + 1) * interval);
      }
      // Nothing is published that a restart could not find again in the state file.
      if (!pending_.empty() && (state_dirty_ ? save_state() : true)) publish_pending();
      const auto wake = pending_.empty()
                            ? next_scrape
                            : std::min(next_scrape, Clock::now() + std::chrono::seconds(1));
      if (!sleep_until(wake)) return;
    }
  }

  bool stopping() {
    const std::lock_guard lock(mutex_);
    return stopping_;
  }

  void scrape_all() {
    std::vector<Event> events;
    std::string failing;
    std::size_t ok = 0;
    for (std::size_t i = 0; i < targets_.size(); ++i) {
      // A drain does not wait for the remaining targets' timeouts: their increases stay on the
      // servers until the next start.
      if (stopping()) break;
      std::string problem = scrape_one(targets_[i], *clients_[i], events);
      up_.with({targets_[i].url}).Set(problem.empty() ? 1 : 0);
      if (problem.empty()) {
        ++ok;
      } else {
        if (!failing.empty()) failing += "; ";
        failing += targets_[i].url + ": " + problem;
      }
    }
    readiness_.set("scrape", true,
                   std::to_string(ok) + " of " + std::to_string(targets_.size()) +
                       " targets scraped" + (failing.empty() ? "" : "; " + failing));
    for (auto& event : events) pending_.push_back(std::move(event));
    if (state_dirty_) save_state();
  }

  // Empty on success, else the problem (also counted and logged).
  std::string scrape_one(const Target& target, influx::InfluxWriter& client,
                         std::vector<Event>& events) {
    std::string& last_problem = last_problem_[target.url];
    const auto fail = [&](const char* reason, std::string message) {
      errors_.with({target.url, reason}).Increment();
      // Logged when it starts or changes, not every interval; the counter counts each.
      if (message != last_problem) {
        log::warn("scrape", "scrape failed",
                  {{"target", target.url}, {"reason", reason}, {"error", message}});
        last_problem = message;
      }
      return message;
    };
    Result<influx::Reply> reply = client.get(target.path);
    if (!reply) return fail("http", reply.error().message);
    if (reply->status != 200) {
      return fail("status", "HTTP " + std::to_string(reply->status));
    }
    const std::int64_t scraped_at = now_ms();
    Result<Exposition> exposition =
        parse_exposition(reply->body, is_openmetrics(reply->content_type));
    if (!exposition)
      return fail("malformed", "malformed exposition: " + exposition.error().message);
    const std::vector<ModelServing> models = serving_by_model(exposition.value());
    export_serving(target, models);
    std::vector<std::string> problems;
    const std::vector<TokenDelta> deltas =
        deltas_.observe(target.url, scraped_at, models, problems);
    state_dirty_ = true;
    for (const auto& problem : problems) fail("counter", problem);
    for (const TokenDelta& delta : deltas) {
      const ModelServing* serving = nullptr;
      for (const auto& m : models) {
        if (m.model == delta.model && m.server_kind == delta.server_kind) serving = &m;
      }
      events.push_back(to_event(target, delta, serving));
      tokens_.with({target.url, delta.model, "prompt"})
          .Increment(static_cast<double>(delta.prompt_tokens));
      tokens_.with({target.url, delta.model, "generation"})
          .Increment(static_cast<double>(delta.generation_tokens));
      tokens_.with({target.url, delta.model, "cached_prompt"})
          .Increment(static_cast<double>(delta.cached_prompt_tokens));
    }
    if (!last_problem.empty()) {
      log::info("scrape", "scrape works again", {{"target", target.url}});
      last_problem.clear();
    }
    return {};
  }

  void export_serving(const Target& target, const std::vector<ModelServing>& models) {
    for (const auto& m : models) {
      const std::initializer_list<std::string_view> labels{target.url, m.model, m.server_kind};
      if (m.kv_cache_usage_ratio) kv_cache_.with(labels).Set(*m.kv_cache_usage_ratio);
      if (m.requests_running) running_.with(labels).Set(*m.requests_running);
      if (m.requests_waiting) waiting_.with(labels).Set(*m.requests_waiting);
      const auto quantiles = [&](metrics::Family<metrics::Gauge>& family,
                                 const LatencyQuantiles& q) {
        const std::pair<const char*, const std::optional<double>*> points[] = {
            {"0.5", &q.p50}, {"0.9", &q.p90}, {"0.99", &q.p99}};
        for (const auto& [quantile, value] : points) {
          if (*value) family.with({target.url, m.model, m.server_kind, quantile}).Set(**value);
        }
      };
      quantiles(ttft_, m.ttft);
      quantiles(itl_, m.itl);
    }
  }

  Event to_event(const Target& target, const TokenDelta& delta, const ModelServing* serving) const {
    events::TokenUsage usage;
    usage.model = delta.model;
    usage.tenant_id = tenant_;
    usage.input_tokens = delta.prompt_tokens;
    usage.output_tokens = delta.generation_tokens;
    if (delta.cached_prompt_tokens > 0) usage.cache_read_tokens = delta.cached_prompt_tokens;
    if (!target.deployment.empty()) usage.deployment = target.deployment;
    if (!target.host.empty()) usage.host = target.host;
    usage.provider = delta.server_kind;
    usage.source_kind = "scrape";
    JsonWriter json;
    json.begin_object()
        .key("server_kind")
        .value(delta.server_kind)
        .key("interval_ms")
        .value(delta.to_ms - delta.from_ms)
        .key("counter_reset")
        .value(delta.reset);
    if (serving != nullptr) {
      put_optional(json, "kv_cache_usage_ratio", serving->kv_cache_usage_ratio);
      put_optional(json, "requests_running", serving->requests_running);
      put_optional(json, "requests_waiting", serving->requests_waiting);
      put_optional(json, "ttft_p50_ms", serving->ttft.p50, 1e3);
      put_optional(json, "ttft_p90_ms", serving->ttft.p90, 1e3);
      put_optional(json, "ttft_p99_ms", serving->ttft.p99, 1e3);
      put_optional(json, "itl_p50_ms", serving->itl.p50, 1e3);
      put_optional(json, "itl_p90_ms", serving->itl.p90, 1e3);
      put_optional(json, "itl_p99_ms", serving->itl.p99, 1e3);
    }
    json.end_object();
    usage.serving_json = json.take();
    Event event;
    event.topic = topic_;
    event.key = usage.deployment.value_or(usage.model);
    event.id = delta.event_id;
    event.time = Clock::time_point(std::chrono::milliseconds(delta.to_ms));
    event.payload =
        events::encode_cloudevent(event.id, source_, kTokenUsageType, event.time, usage.tenant_id,
                                  events::encode_token_usage_data(usage));
    return event;
  }

  bool publish_pending() {
    std::future<std::vector<Delivery>> future =
        asio::co_spawn(io_, publish_owned(inlet_, pending_), asio::use_future);
    // Bounded, so a drain whose io loop has ended does not hold this thread: the events stay
    // pending in the state file and are published at the next start.
    while (future.wait_for(std::chrono::milliseconds(200)) != std::future_status::ready) {
      if (stopping() && future.wait_for(std::chrono::seconds(5)) != std::future_status::ready) {
        return false;
      }
    }
    const std::vector<Delivery> deliveries = future.get();
    for (const auto& delivery : deliveries) {
      if (!delivery.ok) {
        log::warn(
            "scrape", "the pipeline did not take the usage events; retrying",
            {{"error", delivery.error}, {"events", static_cast<std::int64_t>(pending_.size())}});
        return false;
      }
    }
    pending_.clear();
    // If this save fails the old file still lists them: a restart publishes them again under
    // the same ids, which the stores keep once.
    state_dirty_ = true;
    save_state();
    return true;
  }

  // Writes the counters and the pending events to a new file, syncs it and renames it over
  // the old one (then syncs the folder), so that a crash at any moment leaves one whole state.
  // False (logged) when the disk refuses: nothing is published until it takes the state.
  bool save_state() {
    std::string text = deltas_.save_json();
    text += kPendingMarker;
    for (const Event& event : pending_) {
      JsonWriter json;
      json.begin_object()
          .key("topic")
          .value(event.topic)
          .key("key")
          .value(event.key)
          .key("id")
          .value(event.id)
          .key("time_ms")
          .value(static_cast<std::int64_t>(
              std::chrono::duration_cast<std::chrono::milliseconds>(event.time.time_since_epoch())
                  .count()))
          .key("payload")
          .value(event.payload)
          .end_object();
      text += json.take();
      text += '\n';
    }
    const std::filesystem::path path(state_file_);
    const std::string temp = path.string() + ".tmp";
    std::error_code ec;
    if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path(), ec);
    const auto refuse = [&](const char* what) {
      if (!state_error_logged_) {
        log::error("scrape", "cannot save the scrape state; publishing waits until it can",
                   {{"file", path.string()}, {"step", what}, {"error", std::strerror(errno)}});
        state_error_logged_ = true;
      }
      return false;
    };
    const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0) return refuse("open");
    std::size_t written = 0;
    while (written < text.size()) {
      const ssize_t n = ::write(fd, text.data() + written, text.size() - written);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        ::close(fd);
        return refuse("write");
      }
      written += static_cast<std::size_t>(n);
    }
    if (::fsync(fd) != 0) {
      ::close(fd);
      return refuse("fsync");
    }
    ::close(fd);
    if (::rename(temp.c_str(), path.c_str()) != 0) return refuse("rename");
    const std::string dir = path.has_parent_path() ? path.parent_path().string() : ".";
    if (const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dir_fd >= 0) {
      ::fsync(dir_fd);
      ::close(dir_fd);
    }
    if (state_error_logged_) log::info("scrape", "the scrape state is saved again");
    state_error_logged_ = false;
    state_dirty_ = false;
    return true;
  }

  void load_state() {
    std::ifstream in(state_file_, std::ios::binary);
    if (!in) return;  // first start: every target begins with a baseline scrape
    std::stringstream buffer;
    buffer << in.rdbuf();
    const std::string text = buffer.str();
    const std::size_t marker = text.find(kPendingMarker);
    const std::string_view counters = std::string_view(text).substr(0, marker);
    Result<TokenDeltas> loaded = TokenDeltas::load_json(counters);
    if (!loaded) {
      throw StartupError("scrape: the state file " + state_file_ +
                         " cannot be read: " + loaded.error().message +
                         " (move it away to start over with a baseline scrape)");
    }
    deltas_ = std::move(loaded.value());
    if (marker == std::string::npos) return;
    simdjson::dom::parser parser;
    std::string_view rest = std::string_view(text).substr(marker + kPendingMarker.size());
    while (!rest.empty()) {
      const std::size_t end = rest.find('\n');
      const std::string_view line = rest.substr(0, end);
      rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
      if (line.empty()) continue;
      simdjson::dom::element doc;
      std::string_view topic, key, id, payload;
      std::int64_t time_ms = 0;
      if (parser.parse(line).get(doc) || doc["topic"].get(topic) || doc["key"].get(key) ||
          doc["id"].get(id) || doc["payload"].get(payload) || doc["time_ms"].get(time_ms)) {
        throw StartupError("scrape: the state file " + state_file_ +
                           " has a pending event that cannot be read");
      }
      Event event;
      // Published where the configuration says now, with the id and payload saved.
      event.topic = topic_;
      event.key = std::string(key);
      event.id = std::string(id);
      event.payload = std::string(payload);
      event.time = Clock::time_point(std::chrono::milliseconds(time_ms));
      pending_.push_back(std::move(event));
    }
    if (!pending_.empty()) {
      log::info("scrape", "publishing usage events left pending by the last run",
                {{"events", static_cast<std::int64_t>(pending_.size())}});
    }
  }

  asio::io_context& io_;
  EventInlet& inlet_;
  Readiness& readiness_;
  std::vector<Target> targets_;
  std::vector<std::unique_ptr<influx::InfluxWriter>> clients_;
  std::chrono::milliseconds interval_;
  std::chrono::milliseconds timeout_;
  std::string tenant_;
  std::string state_file_;
  std::string topic_;
  std::string source_;  // read once: the host name does not change under a running process
  TokenDeltas deltas_;
  std::vector<Event> pending_;
  bool state_dirty_ = false;
  bool state_error_logged_ = false;
  std::map<std::string, std::string> last_problem_;  // target -> its current problem
  metrics::Family<metrics::Gauge>& up_;
  metrics::Family<metrics::Counter>& errors_;
  metrics::Family<metrics::Counter>& tokens_;
  metrics::Family<metrics::Gauge>& kv_cache_;
  metrics::Family<metrics::Gauge>& running_;
  metrics::Family<metrics::Gauge>& waiting_;
  metrics::Family<metrics::Gauge>& ttft_;
  metrics::Family<metrics::Gauge>& itl_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

std::vector<ConfigProblem> check_scrape(const Config& config) {
  if (!config.flag("scrape.enabled") || !config.list("scrape.targets").empty() ||
      !config.str("scrape.targets_file").empty()) {
    return {};
  }
  return {{.file = config.source(),
           .path = "scrape.targets",
           .message = "lists no target while scrape.enabled is true",
           .hint = "a /metrics URL per item, or scrape.targets_file"}};
}

std::optional<std::string> check_target(std::string_view line) {
  Result<Target> target = parse_target(line);
  if (!target) return target.error().message;
  return std::nullopt;
}

const ComponentRegistration kRegistration{
    {"scrape",
     {"scrape",
      "Reads vLLM and SGLang /metrics and turns token-counter increases into usage events "
      "(docs/scrape.md).",
      {
          {.name = "enabled",
           .type = ValueType::kBool,
           .description = "Run the scrape source.",
           .default_value = "false"},
          {.name = "targets",
           .type = ValueType::kStringList,
           .description = "`URL [host=NODE] [deployment=NAME]` per model server.",
           .default_value = "",
           .check = check_target},
          {.name = "targets_file",
           .description = "File with one target per line ('#' comments), read at start and on "
                          "SIGHUP (which reloads the whole configuration).",
           .default_value = "",
           .check = check_readable_file},
          {.name = "interval_ms",
           .type = ValueType::kInt,
           .description = "Time between scrapes; each usage event covers one interval.",
           .default_value = "15000",
           .min = 1000,
           .max = 3600000},
          {.name = "timeout_ms",
           .type = ValueType::kInt,
           .description = "Deadline of each step of one scrape (connect, send, receive).",
           .default_value = "5000",
           .min = 100,
           .max = 60000},
          {.name = "tenant",
           .description = "tenant_id of scraped usage (model servers know no tenant).",
           .default_value = "unattributed"},
          {.name = "state_file",
           .description = "Counters last read and events not yet acknowledged; empty: "
                          "$STATE_DIRECTORY/scrape-state.jsonl, else data/scrape-state.jsonl.",
           .default_value = ""},
      }},
     [](ComponentContext& ctx) -> std::unique_ptr<Component> {
       if (!ctx.config.flag("scrape.enabled")) return std::make_unique<DisabledComponent>();
       return std::make_unique<ScrapeComponent>(ctx);
     },
     nullptr,
     check_scrape}};

}  // namespace
}  // namespace telemetryd::scrape
