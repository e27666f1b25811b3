// FanOutStage: offsets are done only once every stage has them done, a message refused by one
// stage is not given twice to the others, and a failing stage holds the offsets back.

#include "core/fan_out_stage.hpp"

#include <catch2/catch.hpp>

using namespace telemetryd;
using namespace telemetryd::core;

namespace {

// A stage that keeps what it accepts in memory and acknowledges up to a chosen offset, like an
// archive that has uploaded only part of what it holds.
class HoldingStage final : public BatchStage {
 public:
  std::vector<std::int64_t> accepted;
  std::int64_t acknowledged_up_to = -1;  // highest offset it reports done
  int refusals_left = 0;
  bool failing = false;
  bool report_then_fail = false;  // reports its progress, then fails (another partition failed)

  bool accept(const IncomingMessage& message) override {
    if (refusals_left > 0) {
      --refusals_left;
      return false;
    }
    accepted.push_back(message.offset);
    if (pending_ == 0) oldest_ = std::chrono::steady_clock::now();
    ++pending_;
    return true;
  }
  std::size_t pending() const override { return pending_; }
  std::chrono::steady_clock::time_point oldest_pending() const override { return oldest_; }
  Result<bool> flush(DoneOffsets& done) override {
    if (failing) return Error::retryable("sink away");
    done.clear();
    std::int64_t highest = -1;
    for (const auto offset : accepted)
      if (offset <= acknowledged_up_to) highest = std::max(highest, offset);
    if (highest >= 0) done[{"t", 0}] = highest;
    pending_ = 0;
    if (report_then_fail) {
      report_then_fail = false;
      return Error::retryable("another partition's upload failed");
    }
    return true;
  }
  void abandon(const std::function<bool(const PartitionKey&)>& revoked) override {
    if (revoked({"t", 0})) {
      accepted.clear();
      pending_ = 0;
    }
  }

 private:
  std::size_t pending_ = 0;
  std::chrono::steady_clock::time_point oldest_{};
};

IncomingMessage message(std::int64_t offset) {
  return {"t", 0, offset, "k", "v"};
}

}  // namespace

TEST_CASE("fan-out: an offset is done only once every stage has it done", "[fan_out]") {
  HoldingStage store, archive;
  FanOutStage both({&store, &archive});
  for (std::int64_t i = 0; i < 10; ++i) REQUIRE(both.accept(message(i)));
  CHECK(store.accepted.size() == 10);
  CHECK(archive.accepted.size() == 10);
  CHECK(both.pending() == 10);

  store.acknowledged_up_to = 9;
  archive.acknowledged_up_to = 4;  // half uploaded
  DoneOffsets done;
  REQUIRE(both.flush(done));
  CHECK(done == DoneOffsets{{{"t", 0}, 4}});

  // Nothing new acknowledged: nothing new reported.
  REQUIRE(both.flush(done));
  CHECK(done.empty());

  archive.acknowledged_up_to = 9;
  REQUIRE(both.flush(done));
  CHECK(done == DoneOffsets{{{"t", 0}, 9}});
}

TEST_CASE("fan-out: a stage that fails holds every offset back until it succeeds", "[fan_out]") {
  HoldingStage store, archive;
  FanOutStage both({&store, &archive});
  for (std::int64_t i = 0; i < 3; ++i) REQUIRE(both.accept(message(i)));
  store.acknowledged_up_to = 2;
  archive.acknowledged_up_to = 2;
  archive.failing = true;
  DoneOffsets done;
  CHECK_FALSE(both.flush(done).ok());
  archive.failing = false;
  REQUIRE(both.flush(done));  // the store's earlier success is remembered
  CHECK(done == DoneOffsets{{{"t", 0}, 2}});
}

TEST_CASE("fan-out: a refused message is offered again only to the stages that refused it",
          "[fan_out]") {
  HoldingStage store, archive;
  FanOutStage both({&store, &archive});
  archive.refusals_left = 2;
  CHECK_FALSE(both.accept(message(0)));
  CHECK_FALSE(both.accept(message(0)));
  CHECK(both.accept(message(0)));
  CHECK(store.accepted == std::vector<std::int64_t>{0});
  CHECK(archive.accepted == std::vector<std::int64_t>{0});
  CHECK(both.accept(message(1)));
  CHECK(store.accepted == std::vector<std::int64_t>{0, 1});
}

TEST_CASE("fan-out: a revoked partition is forgotten everywhere", "[fan_out]") {
  HoldingStage store, archive;
  FanOutStage both({&store, &archive});
  for (std::int64_t i = 0; i < 5; ++i) REQUIRE(both.accept(message(i)));
  store.acknowledged_up_to = 4;
  archive.acknowledged_up_to = 4;
  DoneOffsets done;
  REQUIRE(both.flush(done));
  CHECK(done.at({"t", 0}) == 4);
  both.abandon([](const PartitionKey& key) { return key.first == "t"; });
  CHECK(store.accepted.empty());
  CHECK(archive.accepted.empty());
  CHECK(both.pending() == 0);
  // Assigned again and redelivered from the committed offset: reported afresh.
  REQUIRE(both.accept(message(5)));
  store.acknowledged_up_to = archive.acknowledged_up_to = 5;
  REQUIRE(both.flush(done));
  CHECK(done == DoneOffsets{{{"t", 0}, 5}});
}

TEST_CASE("fan-out: progress a stage reports beside an error is not lost", "[fan_out]") {
  HoldingStage store, archive;
  FanOutStage both({&store, &archive});
  for (std::int64_t i = 0; i < 5; ++i) REQUIRE(both.accept(message(i)));
  store.acknowledged_up_to = 4;
  archive.acknowledged_up_to = 4;
  archive.report_then_fail = true;  // reports 4 once, with an error, and never again
  DoneOffsets done;
  CHECK_FALSE(both.flush(done).ok());
  archive.acknowledged_up_to = -1;  // nothing new from the archive from now on
  REQUIRE(both.flush(done));
  CHECK(done == DoneOffsets{{{"t", 0}, 4}});
}
