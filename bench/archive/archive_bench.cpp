// Archive throughput: records/s and compression ratio of the batcher (seal, gzip, upload,
// exactly-once bookkeeping) into a filesystem store and, when TELEMETRYD_TEST_S3_* is set, into
// the S3 server, next to a baseline in the same run: gzip alone over the same NDJSON, which is
// the ceiling the batcher can reach on this machine. Prints numbers; never fails on them.
//
//   build/bench/archive_bench [--records N] [--batch N] [--partitions N]

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "archive/archive_batcher.hpp"
#include "archive/filesystem_store.hpp"
#include "archive/gzip.hpp"
#include "archive/s3_store.hpp"

using namespace telemetryd;
using namespace telemetryd::archive;
using Clock = std::chrono::steady_clock;

namespace {

// gpu.metadata and gpu.metrics-like events with varying numbers, ids and times, so gzip sees
// roughly the entropy of real traffic rather than one repeated line.
std::vector<std::string> make_events(std::size_t n) {
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> util(0, 100);
  std::uniform_int_distribution<int> gpu(0, 255);
  std::vector<std::string> events;
  events.reserve(n);
  char buffer[1024];
  for (std::size_t i = 0; i < n; ++i) {
    const int g = gpu(rng);
    std::snprintf(
        buffer, sizeof buffer,
        "{\"specversion\":\"1.0\",\"id\":\"%016llx-%04zx\",\"source\":\"//telemetryd/"
        "gpu-node-%02d/nvml\",\"type\":\"io.telemetryd.gpu.metadata.v1\",\"time\":"
        "\"2026-11-22T12:%02zu:%02zu.%03zuZ\",\"data\":{\"gpu_uuid\":\"GPU-%08x-e5f6-4a7b-"
        "8c9d-%012llx\",\"host\":\"gpu-node-%02d\",\"model_name\":\"NVIDIA H100 80GB "
        "HBM3\",\"utilization_gpu_percent\":%.1f,\"power_draw_watts\":%.1f,"
        "\"memory_used_bytes\":%llu}}",
        static_cast<unsigned long long>(rng()), i & 0xffff, g / 8, (i / 60000) % 60,
        (i / 1000) % 60, i % 1000, static_cast<unsigned>(g * 2654435761u),
        static_cast<unsigned long long>(g) * 0x9E3779B9ULL, g / 8, util(rng), util(rng) * 7,
        static_cast<unsigned long long>(rng() % 85520809984ULL));
    events.emplace_back(buffer);
  }
  return events;
}

struct Run {
  double seconds = 0;
  std::size_t objects = 0;
  std::size_t raw = 0;
  std::size_t stored = 0;
};

Run run_batcher(ArchiveStore& store, const std::vector<std::string>& events, std::size_t batch,
                int partitions, const std::string& prefix) {
  ArchiveBatcher batcher({.prefix = prefix, .max_records = batch, .max_bytes = 64 << 20}, store);
  Run run;
  const auto start = Clock::now();
  for (std::size_t i = 0; i < events.size(); ++i) {
    const auto partition = static_cast<std::int32_t>(i % static_cast<std::size_t>(partitions));
    batcher.add({"gpu-metadata", partition, static_cast<std::int64_t>(i), events[i]});
    if (i % 1000 == 999) {
      auto report = batcher.flush(false);
      if (!report.ok()) {
        std::fprintf(stderr, "flush failed: %s\n", report.error().message.c_str());
        std::exit(1);
      }
      run.objects += report.value().objects;
      run.raw += report.value().uncompressed_bytes;
      run.stored += report.value().bytes;
    }
  }
  auto report = batcher.flush(true);
  if (!report.ok()) {
    std::fprintf(stderr, "flush failed: %s\n", report.error().message.c_str());
    std::exit(1);
  }
  run.objects += report.value().objects;
  run.raw += report.value().uncompressed_bytes;
  run.stored += report.value().bytes;
  run.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return run;
}

void print(const char* name, std::size_t records, const Run& run) {
  std::printf(
      "%-28s %10.0f records/s  %6zu objects  %5.1f MB -> %5.1f MB (ratio %.1fx)\n", name,
      static_cast<double>(records) / run.seconds, run.objects, static_cast<double>(run.raw) / 1e6,
      static_cast<double>(run.stored) / 1e6,
      static_cast<double>(run.raw) / static_cast<double>(std::max<std::size_t>(1, run.stored)));
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t records = 200000;
  std::size_t batch = 10000;
  int partitions = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--records") records = std::strtoull(argv[i + 1], nullptr, 10);
    if (flag == "--batch") batch = std::strtoull(argv[i + 1], nullptr, 10);
    if (flag == "--partitions") partitions = std::atoi(argv[i + 1]);
  }
  const auto events = make_events(records);
  std::printf("archive bench: %zu records, batches of %zu, %d partitions, gzip level 6\n", records,
              batch, partitions);

  // Baseline: gzip alone over the same NDJSON in the same batch sizes.
  {
    Run run;
    const auto start = Clock::now();
    std::string ndjson;
    for (std::size_t i = 0; i < events.size(); ++i) {
      ndjson += events[i];
      ndjson.push_back('\n');
      if ((i + 1) % batch == 0 || i + 1 == events.size()) {
        run.raw += ndjson.size();
        run.stored += gzip_compress(ndjson, 6).size();
        ++run.objects;
        ndjson.clear();
      }
    }
    run.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    print("baseline: gzip only", records, run);
  }

  char dir_template[] = "/tmp/telemetryd-archive-bench-XXXXXX";
  const std::string dir = mkdtemp(dir_template);
  {
    FilesystemStore store(dir);
    print("batcher -> filesystem", records, run_batcher(store, events, batch, partitions, ""));
  }
  std::filesystem::remove_all(dir);

  const char* endpoint = std::getenv("TELEMETRYD_TEST_S3_ENDPOINT");
  if (endpoint != nullptr) {
    S3Settings s;
    std::string error;
    if (!parse_endpoint(endpoint, s.endpoint, error)) {
      std::fprintf(stderr, "TELEMETRYD_TEST_S3_ENDPOINT: %s\n", error.c_str());
      return 1;
    }
    s.bucket = std::getenv("TELEMETRYD_TEST_S3_BUCKET");
    s.credentials.access_key_id = std::getenv("TELEMETRYD_TEST_S3_ACCESS_KEY");
    s.credentials.secret_access_key = std::getenv("TELEMETRYD_TEST_S3_SECRET_KEY");
    S3Store store(s);
    const std::string prefix = "bench-" + std::to_string(getpid()) + "/";
    print("batcher -> s3 (versitygw)", records,
          run_batcher(store, events, batch, partitions, prefix));
  } else {
    std::printf("(TELEMETRYD_TEST_S3_ENDPOINT not set: no S3 run; source <state>/env)\n");
  }
  return 0;
}
