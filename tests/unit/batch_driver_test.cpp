// core::BatchDriver, the run loop of the processor, the worker and the all role: when a batch is
// due, how an outage pauses the input and backs off, and what a stop leaves.

#include "core/batch_driver.hpp"

#include <catch2/catch.hpp>
#include <deque>
#include <vector>

using namespace telemetryd;
using namespace telemetryd::core;
using namespace std::chrono_literals;

namespace {

// A stage whose flushes answer from a script (true: stored); it marks its pending messages done
// on success.
class ScriptedStage final : public BatchStage {
 public:
  std::deque<bool> answers;
  std::size_t flushes = 0;
  std::size_t pending_ = 0;
  std::int64_t next_offset = 0;
  std::chrono::steady_clock::time_point oldest = std::chrono::steady_clock::now();

  bool accept(const IncomingMessage&) override {
    if (pending_ == 0) oldest = std::chrono::steady_clock::now();
    ++pending_;
    return true;
  }
  std::size_t pending() const override { return pending_; }
  std::chrono::steady_clock::time_point oldest_pending() const override { return oldest; }
  Result<bool> flush(DoneOffsets& done) override {
    ++flushes;
    const bool ok = answers.empty() || answers.front();
    if (!answers.empty()) answers.pop_front();
    if (!ok) return Error::retryable("store away");
    next_offset += static_cast<std::int64_t>(pending_);
    done[{"t", 0}] = next_offset - 1;
    pending_ = 0;
    return true;
  }
  void abandon(const std::function<bool(const PartitionKey&)>&) override { pending_ = 0; }
};

class RecordingInput final : public BatchInput {
 public:
  std::vector<DoneOffsets> commits;
  std::vector<bool> pauses;
  std::vector<std::chrono::milliseconds> waits;
  bool stop_after_waits = false;
  std::size_t waits_before_stop = 0;

  void commit(const DoneOffsets& done) override { commits.push_back(done); }
  void set_paused(bool paused) override { pauses.push_back(paused); }
  void wait(std::chrono::milliseconds duration) override { waits.push_back(duration); }
  bool stopping() const override { return stop_after_waits && waits.size() >= waits_before_stop; }
};

BatchDriverSettings settings() {
  return {.name = "test",
          .batch_size = 3,
          .batch_timeout = 50ms,
          .backoff_initial = 10ms,
          .backoff_max = 40ms};
}

void take(ScriptedStage& stage, int n) {
  for (int i = 0; i < n; ++i) stage.accept({});
}

}  // namespace

TEST_CASE("a batch is due when full or when its oldest message waited the timeout",
          "[batch_driver]") {
  ScriptedStage stage;
  RecordingInput input;
  Readiness readiness;
  BatchDriver driver(settings(), stage, input, readiness);
  CHECK_FALSE(driver.due());  // nothing pending
  take(stage, 2);
  CHECK_FALSE(driver.due());
  take(stage, 1);
  CHECK(driver.due());  // full
  stage.pending_ = 1;
  stage.oldest = std::chrono::steady_clock::now() - 60ms;
  CHECK(driver.due());  // old enough
}

TEST_CASE("an outage pauses once, backs off exponentially up to the cap, then resumes",
          "[batch_driver]") {
  ScriptedStage stage;
  stage.answers = {false, false, false, false, true};
  RecordingInput input;
  Readiness readiness;
  BatchDriver driver(settings(), stage, input, readiness);
  take(stage, 3);
  driver.flush_until_done();

  CHECK(stage.flushes == 5);
  CHECK(input.waits == std::vector<std::chrono::milliseconds>{10ms, 20ms, 40ms, 40ms});
  // Paused on every failure (a rebalance may have assigned new partitions), resumed once.
  CHECK(input.pauses == std::vector<bool>{true, true, true, true, false});
  CHECK_FALSE(driver.paused());
  REQUIRE(input.commits.size() == 1);
  CHECK(input.commits[0].at({"t", 0}) == 2);
  CHECK(stage.pending() == 0);
  CHECK(readiness.all_ready());
  CHECK(driver.progress_ms() > 0);
  CHECK(driver.in_store_call_since_ms() == 0);
}

TEST_CASE("a stop during an outage keeps the batch, and the final flush is bounded",
          "[batch_driver]") {
  ScriptedStage stage;
  stage.answers = {false, false, false, false, false, false};
  RecordingInput input;
  input.stop_after_waits = true;
  input.waits_before_stop = 2;
  Readiness readiness;
  BatchDriver driver(settings(), stage, input, readiness);
  take(stage, 3);
  driver.flush_until_done();
  CHECK(stage.flushes == 2);
  CHECK(driver.paused());
  CHECK(stage.pending() == 3);  // nothing dropped
  CHECK(input.commits.empty());
  CHECK_FALSE(readiness.all_ready());

  CHECK_FALSE(driver.final_flush(3));
  CHECK(stage.flushes == 5);
  CHECK(stage.pending() == 3);

  stage.answers = {false, true};
  CHECK(driver.final_flush(3));
  CHECK(stage.flushes == 7);
  CHECK(input.commits.size() == 1);
}
