#include "core/batch_driver.hpp"

#include <algorithm>
#include <thread>

#include "telemetryd/log.hpp"

namespace telemetryd::core {
namespace {

std::int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

BatchDriver::BatchDriver(BatchDriverSettings settings, BatchStage& stage, BatchInput& input,
                         Readiness& readiness)
    : settings_(std::move(settings)), stage_(stage), input_(input), readiness_(readiness) {}

bool BatchDriver::due() const {
  const std::size_t pending = stage_.pending();
  if (pending == 0) return false;
  return pending >= settings_.batch_size ||
         std::chrono::steady_clock::now() - stage_.oldest_pending() >= settings_.batch_timeout;
}

void BatchDriver::note_progress() {
  progress_ms_ = steady_ms();
}

Result<bool> BatchDriver::flush_once() {
  DoneOffsets done;
  in_store_call_since_ms_ = steady_ms();
  Result<bool> result = stage_.flush(done);
  in_store_call_since_ms_ = 0;
  if (!result) return result;
  note_progress();
  if (!done.empty()) input_.commit(done);
  return true;
}

void BatchDriver::flush_until_done() {
  const std::string& name = settings_.name;
  auto backoff = settings_.backoff_initial;
  for (;;) {
    Result<bool> result = flush_once();
    if (result) {
      if (paused_) {
        input_.set_paused(false);
        paused_ = false;
        log::info(name, "store reachable again, consumption resumed");
      }
      readiness_.set(name, true, settings_.ready_reason);
      return;
    }
    readiness_.set(name, false, "store unavailable: " + result.error().message);
    const bool was_paused = paused_;
    input_.set_paused(true);
    paused_ = true;
    if (!was_paused) {
      log::warn(name, "store unavailable, consumption paused",
                {{"error", result.error().message}, {"pending", stage_.pending()}});
    }
    input_.wait(backoff);
    if (input_.stopping()) return;
    backoff = std::min(backoff * 2, settings_.backoff_max);
  }
}

bool BatchDriver::final_flush(int attempts) {
  for (int attempt = 0; attempt < attempts; ++attempt) {
    if (stage_.pending() == 0) return true;
    Result<bool> result = flush_once();
    if (result) return true;
    log::warn(settings_.name, "final batch not stored",
              {{"attempt", attempt + 1}, {"error", result.error().message}});
    // A plain sleep: the transport is stopping, and its wait() would return at once.
    if (attempt + 1 < attempts) std::this_thread::sleep_for(settings_.backoff_initial);
  }
  return stage_.pending() == 0;
}

}  // namespace telemetryd::core
