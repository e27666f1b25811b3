#include <dlfcn.h>
#include <simdjson.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "events/event_decoder.hpp"
#include "sources/nvml_api.hpp"
#include "sources/nvml_device.hpp"
#include "support/child_process.hpp"
#include "telemetryd/config.hpp"
#include "telemetryd/errors.hpp"
#include "telemetryd/source.hpp"

using namespace telemetryd;

namespace {

constexpr const char* kUuid0 = "GPU-f3a91e20-b3d1-e186-8a03-82a07e7a586a";  // the H200
constexpr const char* kUuid1 = "GPU-3f0e1b2c-4d5e-0190-f6c2-7a1b7c3e9a51";

// Built by tests/unit/meson.build and passed by `meson test`; there is no GPU on CI machines.
std::string fake_library() {
  const char* path = std::getenv("TELEMETRYD_FAKE_NVML");
  if (path == nullptr) FAIL("TELEMETRYD_FAKE_NVML is unset: run the suite through `meson test`");
  return path;
}

const SourceInfo& nvml_info() {
  const SourceInfo* info = SourceRegistry::instance().find("nvml");
  REQUIRE(info != nullptr);
  return *info;
}

// Validates overrides against the real `nvml:` section, so defaults come from the schema.
Config nvml_config(std::vector<std::string> overrides) {
  const SectionSpec* section = &nvml_info().section;
  RoleCatalog catalog;
  catalog.roles = {"nvml-test"};
  catalog.sections_for =
      [section](std::string_view) -> std::optional<std::vector<const SectionSpec*>> {
    return std::vector<const SectionSpec*>{section};
  };
  catalog.all_sections = {section};
  return load_config({.role = "nvml-test", .overrides = std::move(overrides)}, catalog);
}

std::unique_ptr<Source> make_source(std::vector<std::string> overrides, const Topics& topics = {}) {
  return nvml_info().create(nvml_config(std::move(overrides)), topics);
}

std::string startup_error_of(std::vector<std::string> overrides) {
  try {
    make_source(std::move(overrides));
  } catch (const StartupError& e) {
    return e.what();
  }
  FAIL("no StartupError thrown");
  return {};
}

class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) { setenv(name, value, 1); }
  ~ScopedEnv() { unsetenv(name_); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
};

bool has(simdjson::dom::element object, const char* key) {
  return object[key].error() == simdjson::SUCCESS;
}

// The fake library as the test's own reference: the same copy the source loads, so its counters
// and injected events are the source's.
class FakeLibrary {
 public:
  FakeLibrary() : handle_(dlopen(fake_library().c_str(), RTLD_NOW | RTLD_LOCAL)) {
    REQUIRE(handle_ != nullptr);
  }
  ~FakeLibrary() { dlclose(handle_); }
  FakeLibrary(const FakeLibrary&) = delete;
  FakeLibrary& operator=(const FakeLibrary&) = delete;

  int count(const char* name) const {
    const auto fn = reinterpret_cast<int (*)()>(dlsym(handle_, name));
    REQUIRE(fn != nullptr);
    return fn();
  }
  void inject_xid(unsigned gpu, unsigned long long xid) const {
    const auto fn = reinterpret_cast<void (*)(unsigned, unsigned long long)>(
        dlsym(handle_, "fake_nvml_inject_xid"));
    REQUIRE(fn != nullptr);
    fn(gpu, xid);
  }
  void inject_wait_error(int rc) const {
    const auto fn = reinterpret_cast<void (*)(int)>(dlsym(handle_, "fake_nvml_inject_wait_error"));
    REQUIRE(fn != nullptr);
    fn(rc);
  }

 private:
  void* handle_;
};

// A /proc with one process's cgroup file, removed at the end of the test.
class FakeProc {
 public:
  FakeProc()
      : root_(std::filesystem::temp_directory_path() /
              ("telemetryd-proc-" + std::to_string(getpid()))) {
    std::filesystem::create_directories(root_ / "484");
    std::ofstream(root_ / "484" / "cgroup")
        << "0::/kubepods.slice/kubepods-burstable.slice/"
           "kubepods-burstable-pod0d4fb6b4_7a0e_4b3c_9f6e_2a51c7d3e8f1.slice/"
           "cri-containerd-8f2c1b9e4a7d6c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b."
           "scope\n";
  }
  ~FakeProc() { std::filesystem::remove_all(root_); }
  // <root>/1/ns/pid, as the kernel names a PID namespace.
  void set_pid_namespace(const std::string& name) const {
    std::filesystem::create_directories(root_ / "1" / "ns");
    std::filesystem::remove(root_ / "1" / "ns" / "pid");
    std::filesystem::create_symlink(name, root_ / "1" / "ns" / "pid");
  }
  FakeProc(const FakeProc&) = delete;
  FakeProc& operator=(const FakeProc&) = delete;
  std::string root() const { return root_.string(); }

 private:
  std::filesystem::path root_;
};

std::vector<std::string> sample_data(Source& source) {
  std::vector<Event> events;
  std::string error;
  REQUIRE(source.sample(events, error));
  CHECK(error.empty());
  std::vector<std::string> out;
  for (const Event& e : events) {
    simdjson::dom::parser parser;
    out.push_back(simdjson::minify(parser.parse(e.payload)["data"]));
  }
  return out;
}

// GPM compares two samples only when more than 100 ms apart (nvml.h), so ticks that expect
// activity are this far apart.
void wait_past_gpm_interval() {
  std::this_thread::sleep_for(nvml::kGpmMinInterval + std::chrono::milliseconds(10));
}

// memory.used (MiB) of an nvidia-smi --query-gpu line of tests/fixtures/nvml/h200 (column 4).
long long smi_memory_used_mib(const std::string& file) {
  std::ifstream in(test_support::source_root() + "/tests/fixtures/nvml/h200/" + file);
  REQUIRE(in);
  std::string line;
  REQUIRE(std::getline(in, line));
  std::istringstream fields(line);
  std::string field;
  for (int i = 0; i < 4; ++i) REQUIRE(std::getline(fields, field, ','));
  return std::stoll(field);
}

}  // namespace

TEST_CASE("nvml source reads every metric through the loaded library", "[nvml]") {
  Topics topics;
  topics.gpu_metrics = "gpu.test";
  const auto source = make_source(
      {"nvml.library=" + fake_library(), "nvml.host=gpu-node-01", "nvml.sample_interval_ms=5000"},
      topics);
  CHECK(source->interval() == std::chrono::milliseconds(5000));

  std::vector<Event> events;
  std::string error = "stale";
  const auto before = std::chrono::system_clock::now();
  REQUIRE(source->sample(events, error));
  const auto after = std::chrono::system_clock::now();
  CHECK(error.empty());
  REQUIRE(events.size() == 2);

  const Event& event = events[0];
  CHECK(event.topic == "gpu.test");
  CHECK(event.key == kUuid0);
  CHECK(event.time >= before);
  CHECK(event.time <= after);
  REQUIRE(event.id.size() == 36);
  CHECK(event.id[8] == '-');
  CHECK(event.id[14] == '7');  // version nibble
  CHECK(events[1].id != event.id);
  // Shortest round-trip form: 694388 mW is exactly "694.388", not 694.38800000000003.
  CHECK(event.payload.find("\"power_draw_watts\":694.388,") != std::string::npos);

  simdjson::dom::parser parser;
  const simdjson::dom::element doc = parser.parse(event.payload);
  CHECK(std::string_view(doc["specversion"]) == "1.0");
  CHECK(std::string_view(doc["id"]) == event.id);
  CHECK(std::string_view(doc["type"]) == kGpuMetricsType);
  CHECK(std::string_view(doc["source"]) == "//telemetryd/gpu-node-01/nvml");
  CHECK(std::string_view(doc["subject"]) == kUuid0);

  const simdjson::dom::element data = doc["data"];
  CHECK(std::string_view(data["gpu_uuid"]) == kUuid0);
  CHECK(std::string_view(data["host"]) == "gpu-node-01");
  CHECK(std::string_view(data["model_name"]) == "NVIDIA H200");
  CHECK(std::string_view(data["collector"]) == "nvml");
  CHECK(std::int64_t(data["gpu_index"]) == 0);
  CHECK(std::int64_t(data["interval_ms"]) == 5000);
  CHECK(double(data["utilization_gpu_percent"]) == 99.0);
  CHECK(double(data["utilization_memory_percent"]) == 22.0);
  // nvmlDeviceGetMemoryInfo_v2: used without the driver's reserved memory.
  CHECK(std::int64_t(data["memory_total_bytes"]) == 150754820096);
  CHECK(std::int64_t(data["memory_used_bytes"]) == 925696000);
  CHECK(std::int64_t(data["memory_reserved_bytes"]) == 644939776);
  CHECK(std::int64_t(data["memory_free_bytes"]) == 149184184320);
  CHECK(double(data["power_draw_watts"]) == 694.388);
  CHECK(double(data["power_limit_watts"]) == 700.0);
  CHECK(std::int64_t(data["energy_consumed_mj"]) == 6979160);
  CHECK(double(data["temperature_gpu_celsius"]) == 62.0);
  CHECK(double(data["temperature_memory_celsius"]) == 40.0);
  CHECK(std::int64_t(data["clock_sm_mhz"]) == 1470);
  CHECK(std::int64_t(data["clock_mem_mhz"]) == 3201);
  CHECK(std::int64_t(data["pstate"]) == 0);
  CHECK(std::int64_t(data["clock_event_reasons_mask"]) == 1);
  const simdjson::dom::array reasons = data["clock_event_reasons"];
  REQUIRE(reasons.size() == 1);
  CHECK(std::string_view(reasons.at(0)) == "gpu_idle");

  const simdjson::dom::element pcie = data["pcie"];
  // Throughput, like activity, is the difference of two GPM samples: not on the first tick.
  CHECK_FALSE(has(pcie, "tx_bytes_per_second"));
  CHECK_FALSE(has(pcie, "rx_bytes_per_second"));
  CHECK(std::int64_t(pcie["link_gen"]) == 5);
  CHECK(std::int64_t(pcie["link_width"]) == 16);
  CHECK(std::int64_t(pcie["link_gen_max"]) == 5);
  CHECK(std::int64_t(pcie["link_width_max"]) == 16);

  const simdjson::dom::element rows = data["remapped_rows"];
  CHECK(std::int64_t(rows["correctable"]) == 0);
  CHECK(std::int64_t(rows["uncorrectable"]) == 0);
  CHECK_FALSE(bool(rows["pending"]));
  CHECK_FALSE(bool(rows["failure"]));
  CHECK(std::int64_t(data["xid"]["count"]) == 0);
  CHECK_FALSE(has(data["xid"], "last"));
  // GPM activity needs a previous sample: not on the first tick.
  CHECK_FALSE(has(data, "activity"));
  CHECK_FALSE(has(data, "mig"));

  const simdjson::dom::element ecc = data["ecc"];
  CHECK(bool(ecc["mode_enabled"]));
  CHECK(std::int64_t(ecc["volatile_corrected"]) == 2);
  CHECK(std::int64_t(ecc["volatile_uncorrected"]) == 0);
  CHECK(std::int64_t(ecc["aggregate_corrected"]) == 17);
  CHECK(std::int64_t(ecc["aggregate_uncorrected"]) == 1);

  const simdjson::dom::array processes = data["processes"];
  REQUIRE(processes.size() == 2);
  CHECK(std::int64_t(processes.at(0)["pid"]) == 484);
  CHECK(std::int64_t(processes.at(0)["used_memory_bytes"]) == 916455424);
  CHECK(double(processes.at(0)["utilization_sm_percent"]) == 97.0);  // the newer of two samples
  CHECK(double(processes.at(0)["utilization_memory_percent"]) == 22.0);
  CHECK(std::int64_t(processes.at(1)["pid"]) == 4343);
  CHECK_FALSE(has(processes.at(1), "used_memory_bytes"));       // NVML_VALUE_NOT_AVAILABLE
  CHECK_FALSE(has(processes.at(1), "utilization_sm_percent"));  // 101: out of range
  CHECK(double(processes.at(1)["utilization_memory_percent"]) == 0.0);
}

TEST_CASE("nvml source omits what a GPU does not support, never writing 0", "[nvml]") {
  const auto source = make_source({"nvml.library=" + fake_library()});
  std::vector<Event> events;
  std::string error;
  REQUIRE(source->sample(events, error));
  REQUIRE(events.size() == 2);
  CHECK(events[1].key == kUuid1);

  simdjson::dom::parser parser;
  const simdjson::dom::element data = parser.parse(events[1].payload)["data"];
  CHECK(std::int64_t(data["gpu_index"]) == 1);
  CHECK(std::string_view(data["model_name"]) == "NVIDIA GeForce RTX 3090");
  for (const char* absent :
       {"power_draw_watts", "energy_consumed_mj", "ecc", "processes", "memory_reserved_bytes",
        "temperature_memory_celsius", "clock_event_reasons_mask", "clock_event_reasons",
        "remapped_rows", "xid", "activity", "mig"}) {
    INFO(absent);
    CHECK_FALSE(has(data, absent));
  }
  CHECK(double(data["power_limit_watts"]) == 350.0);
  CHECK(double(data["temperature_gpu_celsius"]) == 45.0);
  // No v2 memory call on this card: v1, whose used includes the reserved memory.
  CHECK(std::int64_t(data["memory_used_bytes"]) == 1073741824);
  CHECK(std::int64_t(data["memory_free_bytes"]) == 24696061952);
  CHECK(std::int64_t(data["pstate"]) == 8);
  // Link state but no throughput: the object holds only what was read.
  const simdjson::dom::element pcie = data["pcie"];
  CHECK_FALSE(has(pcie, "tx_bytes_per_second"));
  CHECK_FALSE(has(pcie, "rx_bytes_per_second"));
  CHECK(std::int64_t(pcie["link_gen"]) == 4);
  CHECK(std::int64_t(pcie["link_width"]) == 8);
  CHECK(std::int64_t(pcie["link_gen_max"]) == 4);
  CHECK(std::int64_t(pcie["link_width_max"]) == 16);

  // Nothing NOT_SUPPORTED turns up on later ticks either (GPM needs two).
  events.clear();
  REQUIRE(source->sample(events, error));
  const simdjson::dom::element again = parser.parse(events[1].payload)["data"];
  CHECK_FALSE(has(again, "activity"));
  CHECK_FALSE(has(again, "xid"));
}

TEST_CASE("nvml source defaults host and source to this machine", "[nvml]") {
  char name[HOST_NAME_MAX + 1] = {};
  REQUIRE(gethostname(name, sizeof name - 1) == 0);
  std::vector<Event> events;
  std::string error;
  REQUIRE(make_source({"nvml.library=" + fake_library()})->sample(events, error));
  simdjson::dom::parser parser;
  const simdjson::dom::element doc = parser.parse(events.at(0).payload);
  CHECK(std::string_view(doc["data"]["host"]) == name);
  CHECK(std::string_view(doc["source"]) == "//telemetryd/" + std::string(name) + "/nvml");
  CHECK(std::int64_t(doc["data"]["interval_ms"]) == 1000);

  events.clear();
  REQUIRE(make_source({"nvml.library=" + fake_library(), "nvml.source_uri=//fleet/a"})
              ->sample(events, error));
  CHECK(std::string_view(parser.parse(events.at(0).payload)["source"]) == "//fleet/a");
}

TEST_CASE("nvml source skips a lost GPU and names it", "[nvml]") {
  const auto source = make_source({"nvml.library=" + fake_library()});
  std::vector<Event> events;
  std::string error;
  {
    const ScopedEnv lost("TELEMETRYD_FAKE_NVML_LOST", "2");
    CHECK(source->sample(events, error));
  }
  REQUIRE(events.size() == 1);
  CHECK(events[0].key == kUuid0);
  CHECK_THAT(error,
             Catch::Contains("GPU 1") && Catch::Contains(kUuid1) && Catch::Contains("GPU is lost"));

  events.clear();
  {
    const ScopedEnv lost("TELEMETRYD_FAKE_NVML_LOST", "3");
    CHECK_FALSE(source->sample(events, error));
  }
  CHECK(events.empty());
  CHECK_THAT(error, Catch::Contains("GPU 0") && Catch::Contains("GPU 1"));

  // Recovered devices are read again on the next tick.
  CHECK(source->sample(events, error));
  CHECK(events.size() == 2);
  CHECK(error.empty());
}

TEST_CASE("nvml source refuses to start without a usable library", "[nvml]") {
  const std::string missing = startup_error_of({"nvml.library=/nonexistent/libnvidia-ml.so.1"});
  CHECK_THAT(missing, Catch::Contains("nvml: cannot load /nonexistent/libnvidia-ml.so.1") &&
                          Catch::Contains("producer.source: synthetic"));

  // A real library that is not NVML.
  CHECK_THAT(startup_error_of({"nvml.library=libm.so.6"}),
             Catch::Contains("libm.so.6 has no symbol nvmlInit_v2"));

  const ScopedEnv fail("TELEMETRYD_FAKE_NVML_INIT_FAIL", "1");
  CHECK_THAT(startup_error_of({"nvml.library=" + fake_library()}),
             Catch::Contains("nvmlInit failed") && Catch::Contains("Driver Not Loaded"));
}

TEST_CASE("nvml source shuts NVML down when destroyed", "[nvml]") {
  // Our own reference keeps the fake loaded, so its counters outlive the source's dlclose.
  const FakeLibrary fake;
  CHECK(fake.count("fake_nvml_live_inits") == 0);
  {
    const auto source = make_source({"nvml.library=" + fake_library()});
    CHECK(fake.count("fake_nvml_live_inits") == 1);
    std::vector<Event> events;
    std::string error;
    REQUIRE(source->sample(events, error));
  }
  CHECK(fake.count("fake_nvml_live_inits") == 0);
  CHECK(fake.count("fake_nvml_live_event_sets") == 0);
  CHECK(fake.count("fake_nvml_live_gpm_samples") == 0);
}

TEST_CASE("sample_device needs only the mandatory entry points", "[nvml]") {
  nvml::NvmlFunctions f;
  f.device_get_uuid = [](nvml::nvmlDevice_t, char* out, unsigned) -> nvml::nvmlReturn_t {
    std::strcpy(out, "GPU-minimal");
    return nvml::NVML_SUCCESS;
  };
  f.device_get_name = [](nvml::nvmlDevice_t, char* out, unsigned) -> nvml::nvmlReturn_t {
    std::strcpy(out, "Tesla K80");
    return nvml::NVML_SUCCESS;
  };
  std::string error;
  const auto sample = nvml::sample_device(f, nullptr, 3, error);
  REQUIRE(sample);
  CHECK(error.empty());
  CHECK(events::encode_gpu_metrics_data(*sample) ==
        R"({"gpu_uuid":"GPU-minimal","host":"","model_name":"Tesla K80","collector":"nvml",)"
        R"("gpu_index":3})");

  f.device_get_name = [](nvml::nvmlDevice_t, char*, unsigned) -> nvml::nvmlReturn_t {
    return nvml::NVML_ERROR_GPU_IS_LOST;
  };
  CHECK_FALSE(nvml::sample_device(f, nullptr, 3, error));
  // Without nvmlErrorString the code itself is reported.
  CHECK(error == "GPU 3 (GPU-minimal): nvmlDeviceGetName failed: NVML error 15");
}

TEST_CASE("sample_device drops a process list written in a wider layout", "[nvml]") {
  nvml::NvmlFunctions f;
  f.device_get_uuid = [](nvml::nvmlDevice_t, char* out, unsigned) -> nvml::nvmlReturn_t {
    std::strcpy(out, "GPU-wide");
    return nvml::NVML_SUCCESS;
  };
  f.device_get_name = f.device_get_uuid;
  // A driver filling nvmlProcessInfo_v2_t (24 bytes) where v1 (16 bytes) was asked for, with as
  // many processes as the room offered: it must not overrun the buffer (ASan watches), and
  // entry 1 then decodes with entry 0's instance id (0xFFFFFFFF outside MIG) as its PID.
  f.device_get_compute_running_processes = [](nvml::nvmlDevice_t, unsigned* count,
                                              nvml::nvmlProcessInfo_v1_t* infos) {
    struct V2 {
      unsigned pid;
      unsigned long long used;
      unsigned gpu_instance;
      unsigned compute_instance;
    };
    if (infos == nullptr) {
      *count = 2;
      return nvml::NVML_ERROR_INSUFFICIENT_SIZE;
    }
    auto* bytes = reinterpret_cast<unsigned char*>(infos);
    for (unsigned i = 0; i < *count; ++i) {
      const V2 entry{100 + i, 1 << 20, ~0u, ~0u};
      std::memcpy(bytes + i * sizeof(V2), &entry, sizeof entry);
    }
    return nvml::NVML_SUCCESS;
  };
  std::string error;
  const auto sample = nvml::sample_device(f, nullptr, 0, error);
  REQUIRE(sample);
  CHECK_FALSE(sample->processes.has_value());
}

TEST_CASE("sample_device survives the wall clock stepping back", "[nvml]") {
  static unsigned long long asked_since = 1;
  nvml::NvmlFunctions f;
  f.device_get_uuid = [](nvml::nvmlDevice_t, char* out, unsigned) -> nvml::nvmlReturn_t {
    std::strcpy(out, "GPU-clock");
    return nvml::NVML_SUCCESS;
  };
  f.device_get_name = f.device_get_uuid;
  f.device_get_compute_running_processes = [](nvml::nvmlDevice_t, unsigned* count,
                                              nvml::nvmlProcessInfo_v1_t* infos) {
    if (infos == nullptr || *count < 1) {
      *count = 1;
      return nvml::NVML_ERROR_INSUFFICIENT_SIZE;
    }
    *count = 1;
    infos[0] = {7, 1024};
    return nvml::NVML_SUCCESS;
  };
  // Like the driver: only samples newer than last_seen, stamped with the (stepped) wall clock.
  f.device_get_process_utilization = [](nvml::nvmlDevice_t,
                                        nvml::nvmlProcessUtilizationSample_t* samples,
                                        unsigned* count, unsigned long long last_seen) {
    asked_since = last_seen;
    const auto now =
        static_cast<unsigned long long>(std::chrono::duration_cast<std::chrono::microseconds>(
                                            std::chrono::system_clock::now().time_since_epoch())
                                            .count());
    if (now <= last_seen) return nvml::NVML_ERROR_NOT_FOUND;
    if (samples == nullptr || *count < 1) {
      *count = 1;
      return nvml::NVML_ERROR_INSUFFICIENT_SIZE;
    }
    *count = 1;
    samples[0] = {7, now, 50, 5, 0, 0};
    return nvml::NVML_SUCCESS;
  };
  nvml::DeviceState state(f, "/nonexistent");
  // Seen an hour from now: what a sample taken before the clock went back an hour says.
  state.process_utilization_seen_us =
      static_cast<unsigned long long>(std::chrono::duration_cast<std::chrono::microseconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count()) +
      3600ULL * 1000000ULL;
  std::string error;
  const auto sample = nvml::sample_device(f, nullptr, 0, state, error);
  REQUIRE(sample);
  CHECK(asked_since == 0);
  REQUIRE(sample->processes);
  REQUIRE(sample->processes->size() == 1);
  CHECK(sample->processes->at(0).utilization_sm_percent == 50.0);
  CHECK(state.process_utilization_seen_us > 0);
}

TEST_CASE("nvml source reports memory used as nvidia-smi does", "[nvml][h200]") {
  // nvidia-smi rounds bytes to the nearest MiB: 925696000 B = 882.8125 MiB prints as 883.
  const auto mib = [](std::int64_t bytes) { return std::llround(bytes / 1048576.0); };
  simdjson::dom::parser parser;
  {
    const auto source = make_source({"nvml.library=" + fake_library()});
    const auto data = sample_data(*source);
    const std::int64_t used = parser.parse(data.at(0))["memory_used_bytes"];
    CHECK(used == 925696000);
    CHECK(mib(used) == smi_memory_used_mib("smi_load.csv"));
    CHECK(mib(used) == 883);
    const std::int64_t total = parser.parse(data.at(0))["memory_total_bytes"];
    CHECK(total / 1048576 == 143771);  // smi's memory.total, exactly
  }
  {
    const ScopedEnv idle("TELEMETRYD_FAKE_NVML_IDLE", "1");
    const auto source = make_source({"nvml.library=" + fake_library()});
    const auto data = sample_data(*source);
    const std::int64_t used = parser.parse(data.at(0))["memory_used_bytes"];
    CHECK(used == 0);
    CHECK(mib(used) == smi_memory_used_mib("smi_idle.csv"));
    CHECK(std::int64_t(parser.parse(data.at(0))["memory_reserved_bytes"]) == 644939776);
  }
}

TEST_CASE("nvml source falls back to the v1 memory call", "[nvml][h200]") {
  const ScopedEnv no_v2("TELEMETRYD_FAKE_NVML_NO_MEMORY_V2", "1");
  const auto source = make_source({"nvml.library=" + fake_library()});
  simdjson::dom::parser parser;
  const simdjson::dom::element data = parser.parse(sample_data(*source).at(0));
  // v1 counts the reserved memory as used: what telemetryd reported before (gpuinfo_load.json).
  CHECK(std::int64_t(data["memory_used_bytes"]) == 1570635776);
  CHECK(std::int64_t(data["memory_total_bytes"]) == 150754820096);
  CHECK(std::int64_t(data["memory_free_bytes"]) == 149184184320);
  CHECK_FALSE(has(data, "memory_reserved_bytes"));

  // A library without the symbol at all.
  nvml::NvmlFunctions f;
  f.device_get_uuid = [](nvml::nvmlDevice_t, char* out, unsigned) -> nvml::nvmlReturn_t {
    std::strcpy(out, "GPU-old-driver");
    return nvml::NVML_SUCCESS;
  };
  f.device_get_name = f.device_get_uuid;
  f.device_get_memory_info = [](nvml::nvmlDevice_t, nvml::nvmlMemory_t* m) -> nvml::nvmlReturn_t {
    *m = {100, 30, 70};
    return nvml::NVML_SUCCESS;
  };
  std::string error;
  const auto sample = nvml::sample_device(f, nullptr, 0, error);
  REQUIRE(sample);
  CHECK(sample->memory_used_bytes == 70);
  CHECK(sample->memory_free_bytes == 30);
  CHECK_FALSE(sample->memory_reserved_bytes);
}

TEST_CASE("nvml source reads GPM activity over consecutive ticks", "[nvml][gpm]") {
  const FakeLibrary fake;
  {
    const auto source = make_source({"nvml.library=" + fake_library()});
    simdjson::dom::parser parser;
    CHECK_FALSE(has(parser.parse(sample_data(*source).at(0)), "activity"));
    CHECK(fake.count("fake_nvml_live_gpm_samples") == 2);  // GPU 0 only: GPU 1 has no GPM

    wait_past_gpm_interval();
    const auto data = sample_data(*source);
    const simdjson::dom::element activity = parser.parse(data.at(0))["activity"];
    CHECK(double(activity["sm_active_percent"]) == 97.25);
    CHECK(double(activity["sm_occupancy_percent"]) == 48.5);
    CHECK(double(activity["tensor_active_percent"]) == 71.75);
    CHECK(double(activity["dram_active_percent"]) == 35.5);
    CHECK(double(activity["fp16_active_percent"]) == 0.5);
    CHECK(double(activity["fp32_active_percent"]) == 2.25);
    CHECK_FALSE(has(activity, "fp64_active_percent"));  // NOT_SUPPORTED for this one metric
    CHECK_FALSE(has(parser.parse(data.at(1)), "activity"));
    // PCIe from the same two samples: MiB/s times 1048576.
    const simdjson::dom::element pcie = parser.parse(data.at(0))["pcie"];
    CHECK(std::int64_t(pcie["tx_bytes_per_second"]) == 1310720);  // 1.25 MiB/s
    CHECK(std::int64_t(pcie["rx_bytes_per_second"]) == 524288);   // 0.5 MiB/s
    CHECK(fake.count("fake_nvml_live_gpm_samples") == 2);         // reused, not reallocated
  }
  CHECK(fake.count("fake_nvml_live_gpm_samples") == 0);
}

TEST_CASE("GPM samples 100 ms apart or less are not compared", "[nvml][gpm]") {
  static std::chrono::steady_clock::time_point now{};
  const nvml::NvmlApi api(fake_library());
  const nvml::NvmlFunctions& f = api.functions();
  nvml::nvmlDevice_t device = nullptr;
  REQUIRE(f.device_get_handle_by_index(0, &device) == nvml::NVML_SUCCESS);
  {
    nvml::DeviceState state(f, "/nonexistent");
    state.now = [] { return now; };
    std::string error;
    const auto tick = [&](std::chrono::milliseconds after) {
      now += after;
      auto sample = nvml::sample_device(f, device, 0, state, error);
      REQUIRE(sample);
      return sample->activity;
    };
    CHECK(tick(std::chrono::milliseconds(0)).empty());    // the first sample
    CHECK(tick(std::chrono::milliseconds(100)).empty());  // exactly 100 ms: dropped
    // Compared with the first sample, kept: 101 ms.
    CHECK(tick(std::chrono::milliseconds(1)).sm_active_percent == 97.25);
    CHECK(tick(std::chrono::milliseconds(50)).empty());
    CHECK(tick(std::chrono::milliseconds(51)).sm_active_percent == 97.25);  // 101 ms since
    CHECK(tick(std::chrono::milliseconds(60)).empty());
  }
}

TEST_CASE("nvml source reads GPM activity per MIG GPU instance", "[nvml][gpm]") {
  const FakeLibrary fake;
  const ScopedEnv mig("TELEMETRYD_FAKE_NVML_MIG", "1");
  {
    const auto source = make_source({"nvml.library=" + fake_library()});
    simdjson::dom::parser parser;
    CHECK_FALSE(has(parser.parse(sample_data(*source).at(0)), "mig"));
    // The whole GPU and GPU instances 1 and 2 (two compute instances share 2): three pairs.
    CHECK(fake.count("fake_nvml_live_gpm_samples") == 6);
    wait_past_gpm_interval();
    const simdjson::dom::element data = parser.parse(sample_data(*source).at(0));
    CHECK(double(data["activity"]["sm_active_percent"]) == 97.25);
    const simdjson::dom::array instances = data["mig"];
    REQUIRE(instances.size() == 2);
    CHECK(std::int64_t(instances.at(0)["gpu_instance_id"]) == 1);
    CHECK(double(instances.at(0)["activity"]["sm_active_percent"]) == 97.25 / 2);
    CHECK(std::int64_t(instances.at(1)["gpu_instance_id"]) == 2);
    CHECK(double(instances.at(1)["activity"]["tensor_active_percent"]) == 71.75 / 3);
  }
  CHECK(fake.count("fake_nvml_live_gpm_samples") == 0);
}

TEST_CASE("nvml source counts XID errors through the event API", "[nvml][xid]") {
  const FakeLibrary fake;
  {
    const auto source = make_source({"nvml.library=" + fake_library()});
    CHECK(fake.count("fake_nvml_live_event_sets") == 1);
    simdjson::dom::parser parser;
    auto data = sample_data(*source);
    CHECK(std::int64_t(parser.parse(data.at(0))["xid"]["count"]) == 0);

    fake.inject_xid(0, 79);  // fell off the bus
    fake.inject_xid(1, 13);  // GPU 1 is not registered: never delivered
    data = sample_data(*source);
    simdjson::dom::element xid = parser.parse(data.at(0))["xid"];
    CHECK(std::int64_t(xid["count"]) == 1);
    CHECK(std::int64_t(xid["last"]) == 79);
    CHECK_FALSE(has(parser.parse(data.at(1)), "xid"));

    fake.inject_xid(0, 48);
    fake.inject_xid(0, 63);
    data = sample_data(*source);
    xid = parser.parse(data.at(0))["xid"];
    CHECK(std::int64_t(xid["count"]) == 3);
    CHECK(std::int64_t(xid["last"]) == 63);

    data = sample_data(*source);  // counts are kept, not per tick
    CHECK(std::int64_t(parser.parse(data.at(0))["xid"]["count"]) == 3);
  }
  CHECK(fake.count("fake_nvml_live_event_sets") == 0);

  // Without an event set the samples carry no xid; everything else is read.
  const ScopedEnv no_events("TELEMETRYD_FAKE_NVML_NO_EVENTS", "1");
  const auto source = make_source({"nvml.library=" + fake_library()});
  simdjson::dom::parser parser;
  const simdjson::dom::element data = parser.parse(sample_data(*source).at(0));
  CHECK_FALSE(has(data, "xid"));
  CHECK(std::int64_t(data["memory_used_bytes"]) == 925696000);
}

TEST_CASE("nvml source keeps counting XIDs past a failed wait", "[nvml][xid]") {
  const FakeLibrary fake;
  const auto source = make_source({"nvml.library=" + fake_library()});
  simdjson::dom::parser parser;
  sample_data(*source);
  // One GPU off the bus fails a wait; the XID queued behind it is still counted.
  fake.inject_wait_error(nvml::NVML_ERROR_GPU_IS_LOST);
  fake.inject_xid(0, 79);
  simdjson::dom::element xid = parser.parse(sample_data(*source).at(0))["xid"];
  CHECK(std::int64_t(xid["count"]) == 1);
  CHECK(std::int64_t(xid["last"]) == 79);

  // A run of failures ends the drain for this tick; what is behind it is read on the next one.
  for (int i = 0; i < 5; ++i) fake.inject_wait_error(nvml::NVML_ERROR_GPU_IS_LOST);
  fake.inject_xid(0, 48);
  xid = parser.parse(sample_data(*source).at(0))["xid"];
  CHECK(std::int64_t(xid["count"]) == 1);
  xid = parser.parse(sample_data(*source).at(0))["xid"];
  CHECK(std::int64_t(xid["count"]) == 2);
  CHECK(std::int64_t(xid["last"]) == 48);
}

TEST_CASE("nvml source frees an event set NVML reports UNKNOWN for", "[nvml][xid]") {
  const FakeLibrary fake;
  {
    const auto source = make_source({"nvml.library=" + fake_library()});
    simdjson::dom::parser parser;
    CHECK(std::int64_t(parser.parse(sample_data(*source).at(0))["xid"]["count"]) == 0);
    CHECK(fake.count("fake_nvml_live_event_sets") == 1);
    fake.inject_wait_error(nvml::NVML_ERROR_UNKNOWN);
    fake.inject_xid(0, 79);
    // The set is freed and XIDs are no longer counted: the field goes, the rest stays.
    auto data = sample_data(*source);
    CHECK(fake.count("fake_nvml_live_event_sets") == 0);
    CHECK_FALSE(has(parser.parse(data.at(0)), "xid"));
    CHECK(std::int64_t(parser.parse(data.at(0))["memory_used_bytes"]) == 925696000);
    data = sample_data(*source);
    CHECK_FALSE(has(parser.parse(data.at(0)), "xid"));
  }
  CHECK(fake.count("fake_nvml_live_event_sets") == 0);
}

TEST_CASE("nvml source retries an XID registration that failed for a lost GPU", "[nvml][xid]") {
  const FakeLibrary fake;
  const auto source = make_source({"nvml.library=" + fake_library()});
  const int calls = fake.count("fake_nvml_register_calls");
  std::vector<Event> events;
  std::string error;
  {
    const ScopedEnv lost("TELEMETRYD_FAKE_NVML_LOST", "1");
    CHECK(source->sample(events, error));  // GPU 0 lost: neither read nor registered
  }
  CHECK(fake.count("fake_nvml_register_calls") == calls + 2);
  simdjson::dom::parser parser;
  fake.inject_xid(0, 13);  // raised before the registration: not this set's
  auto data = sample_data(*source);
  CHECK(std::int64_t(parser.parse(data.at(0))["xid"]["count"]) == 0);
  // GPU 0 registered again, GPU 1 (NOT_SUPPORTED) not asked again.
  CHECK(fake.count("fake_nvml_register_calls") == calls + 3);
  fake.inject_xid(0, 94);
  data = sample_data(*source);
  CHECK(std::int64_t(parser.parse(data.at(0))["xid"]["count"]) == 1);
  CHECK_FALSE(has(parser.parse(data.at(1)), "xid"));
  CHECK(fake.count("fake_nvml_register_calls") == calls + 3);
}

TEST_CASE("nvml source falls back to the deprecated throttle-reasons call", "[nvml]") {
  const ScopedEnv old("TELEMETRYD_FAKE_NVML_NO_EVENT_REASONS", "1");
  const auto source = make_source({"nvml.library=" + fake_library()});
  simdjson::dom::parser parser;
  const simdjson::dom::element data = parser.parse(sample_data(*source).at(0));
  CHECK(std::int64_t(data["clock_event_reasons_mask"]) == 5);
  const simdjson::dom::array names = data["clock_event_reasons"];
  REQUIRE(names.size() == 2);
  CHECK(std::string_view(names.at(0)) == "gpu_idle");
  CHECK(std::string_view(names.at(1)) == "sw_power_cap");
}

TEST_CASE("nvml source attributes GPU processes to their container and pod", "[nvml][cgroup]") {
  const FakeProc proc;
  const auto source =
      make_source({"nvml.library=" + fake_library(), "nvml.proc_root=" + proc.root()});
  simdjson::dom::parser parser;
  const simdjson::dom::array processes = parser.parse(sample_data(*source).at(0))["processes"];
  REQUIRE(processes.size() == 2);
  CHECK(std::string_view(processes.at(0)["pod_uid"]) == "0d4fb6b4-7a0e-4b3c-9f6e-2a51c7d3e8f1");
  CHECK(std::string_view(processes.at(0)["container_id"]) ==
        "8f2c1b9e4a7d6c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b");
  CHECK_FALSE(has(processes.at(1), "pod_uid"));  // no cgroup file for 4343 there
  CHECK_FALSE(has(processes.at(1), "container_id"));
}

TEST_CASE("nvml source attributes no process in another PID namespace", "[nvml][cgroup]") {
  const FakeProc proc;
  simdjson::dom::parser parser;
  proc.set_pid_namespace("pid:[4026531836]");  // the host's initial namespace
  {
    const auto source =
        make_source({"nvml.library=" + fake_library(), "nvml.proc_root=" + proc.root()});
    const simdjson::dom::array processes = parser.parse(sample_data(*source).at(0))["processes"];
    CHECK(std::string_view(processes.at(0)["pod_uid"]) == "0d4fb6b4-7a0e-4b3c-9f6e-2a51c7d3e8f1");
  }
  // A container's /proc: PID 484 there is not NVML's 484, so it is not read.
  proc.set_pid_namespace("pid:[4026532413]");
  const auto source =
      make_source({"nvml.library=" + fake_library(), "nvml.proc_root=" + proc.root()});
  const simdjson::dom::array processes = parser.parse(sample_data(*source).at(0))["processes"];
  REQUIRE(processes.size() == 2);
  CHECK(std::int64_t(processes.at(0)["pid"]) == 484);
  CHECK(std::int64_t(processes.at(0)["used_memory_bytes"]) == 916455424);
  CHECK_FALSE(has(processes.at(0), "pod_uid"));
  CHECK_FALSE(has(processes.at(0), "container_id"));
}

TEST_CASE("nvml source events pass the decoder and the gpu.metrics.v1 schema", "[nvml][schema]") {
  // Every field at once: MIG on, an XID, a pod, and the second tick (GPM activity).
  const FakeLibrary fake;
  const FakeProc proc;
  const ScopedEnv mig("TELEMETRYD_FAKE_NVML_MIG", "1");
  const auto source =
      make_source({"nvml.library=" + fake_library(), "nvml.proc_root=" + proc.root()});
  std::vector<Event> events;
  std::string error;
  REQUIRE(source->sample(events, error));
  fake.inject_xid(0, 94);
  wait_past_gpm_interval();
  REQUIRE(source->sample(events, error));
  REQUIRE(events.size() == 4);
  for (const char* field : {"\"activity\"", "\"mig\"", "\"xid\":{\"count\":1,\"last\":94}",
                            "\"pod_uid\"", "\"pcie\"", "\"remapped_rows\""}) {
    INFO(field);
    CHECK(events[2].payload.find(field) != std::string::npos);
  }
  const std::string path = std::filesystem::temp_directory_path() /
                           ("telemetryd-nvml-" + std::to_string(getpid()) + ".ndjson");
  std::ofstream out(path);
  simdjson::dom::parser parser;
  for (const Event& e : events) {
    const auto decoded = telemetryd::events::decode_event(e.payload, parser);
    const auto* failure = std::get_if<telemetryd::events::DecodeError>(&decoded);
    INFO((failure ? failure->detail : std::string()));
    CHECK(failure == nullptr);
    out << e.payload << "\n";
  }
  out.close();
  const auto result = test_support::run_command(
      {"/usr/bin/python3", test_support::source_root() + "/scripts/validate_events.py", path});
  INFO(result.output.substr(0, 3000));
  CHECK(result.status == 0);
  std::filesystem::remove(path);
}

TEST_CASE("sample_device maps each remapped-row and field-value argument", "[nvml]") {
  nvml::NvmlFunctions f;
  f.device_get_uuid = [](nvml::nvmlDevice_t, char* out, unsigned) -> nvml::nvmlReturn_t {
    std::strcpy(out, "GPU-table");
    return nvml::NVML_SUCCESS;
  };
  f.device_get_name = f.device_get_uuid;
  // Distinct values, so a swapped argument shows up.
  f.device_get_remapped_rows = [](nvml::nvmlDevice_t, unsigned* corr, unsigned* unc,
                                  unsigned* pending, unsigned* failure) -> nvml::nvmlReturn_t {
    *corr = 3;
    *unc = 1;
    *pending = 1;
    *failure = 0;
    return nvml::NVML_SUCCESS;
  };
  // A driver that reports the memory temperature as a double, and has no PCIe byte counters.
  f.device_get_field_values = [](nvml::nvmlDevice_t, int count,
                                 nvml::nvmlFieldValue_t* values) -> nvml::nvmlReturn_t {
    for (int i = 0; i < count; ++i) {
      values[i].nvmlReturn = nvml::NVML_ERROR_NOT_SUPPORTED;
      if (values[i].fieldId != nvml::NVML_FI_DEV_MEMORY_TEMP) continue;
      values[i].valueType = nvml::NVML_VALUE_TYPE_DOUBLE;
      values[i].nvmlReturn = nvml::NVML_SUCCESS;
      values[i].value.dVal = 41.5;
    }
    return nvml::NVML_SUCCESS;
  };
  f.device_get_performance_state = [](nvml::nvmlDevice_t,
                                      nvml::nvmlPstates_t* p) -> nvml::nvmlReturn_t {
    *p = nvml::NVML_PSTATE_UNKNOWN;  // not a pstate: omitted
    return nvml::NVML_SUCCESS;
  };
  std::string error;
  const auto sample = nvml::sample_device(f, nullptr, 0, error);
  REQUIRE(sample);
  CHECK(sample->remapped_rows.correctable == 3);
  CHECK(sample->remapped_rows.uncorrectable == 1);
  CHECK(sample->remapped_rows.pending == true);
  CHECK(sample->remapped_rows.failure == false);
  CHECK(sample->temperature_memory_celsius == 41.5);
  CHECK(sample->pcie.empty());
  CHECK_FALSE(sample->pstate);
  CHECK_FALSE(sample->xid);
  CHECK(sample->activity.empty());
}

TEST_CASE("sample_device takes PCIe throughput from the byte counters without GPM", "[nvml]") {
  // The counters each field-value call reports, and the clock the source reads them by.
  static unsigned long long tx = 0;
  static unsigned long long rx = 0;
  static std::vector<unsigned> asked;
  static std::chrono::steady_clock::time_point now{};
  nvml::NvmlFunctions f;
  f.device_get_uuid = [](nvml::nvmlDevice_t, char* out, unsigned) -> nvml::nvmlReturn_t {
    std::strcpy(out, "GPU-counters");
    return nvml::NVML_SUCCESS;
  };
  f.device_get_name = f.device_get_uuid;
  f.device_get_field_values = [](nvml::nvmlDevice_t, int count,
                                 nvml::nvmlFieldValue_t* values) -> nvml::nvmlReturn_t {
    asked.clear();
    for (int i = 0; i < count; ++i) {
      nvml::nvmlFieldValue_t& v = values[i];
      asked.push_back(v.fieldId);
      v.nvmlReturn = nvml::NVML_SUCCESS;
      if (v.fieldId == nvml::NVML_FI_DEV_PCIE_COUNT_TX_BYTES) {
        v.valueType = nvml::NVML_VALUE_TYPE_UNSIGNED_LONG_LONG;
        v.value.ullVal = tx;
      } else if (v.fieldId == nvml::NVML_FI_DEV_PCIE_COUNT_RX_BYTES) {
        v.valueType = nvml::NVML_VALUE_TYPE_UNSIGNED_INT;  // a driver with a 32-bit counter
        v.value.uiVal = static_cast<unsigned>(rx);
      } else {
        v.nvmlReturn = nvml::NVML_ERROR_NOT_SUPPORTED;
      }
    }
    return nvml::NVML_SUCCESS;
  };
  nvml::DeviceState state(f, "/nonexistent");
  state.now = [] { return now; };
  std::string error;
  const auto tick = [&](std::chrono::milliseconds after, unsigned long long tx_now,
                        unsigned long long rx_now) {
    now += after;
    tx = tx_now;
    rx = rx_now;
    auto sample = nvml::sample_device(f, nullptr, 0, state, error);
    REQUIRE(sample);
    return sample->pcie;
  };
  auto pcie = tick(std::chrono::milliseconds(0), 5000000, 1000);
  CHECK(asked == std::vector<unsigned>{nvml::NVML_FI_DEV_MEMORY_TEMP,
                                       nvml::NVML_FI_DEV_PCIE_COUNT_TX_BYTES,
                                       nvml::NVML_FI_DEV_PCIE_COUNT_RX_BYTES});
  CHECK_FALSE(pcie.tx_bytes_per_second);  // one reading: no rate yet
  CHECK_FALSE(pcie.rx_bytes_per_second);

  pcie = tick(std::chrono::milliseconds(500), 6000000, 1500);
  CHECK(pcie.tx_bytes_per_second == 2000000);  // 1 MB in half a second
  CHECK(pcie.rx_bytes_per_second == 1000);

  // The 32-bit counter wrapped (or the driver reloaded): that tick has no rate, the next has.
  pcie = tick(std::chrono::milliseconds(1000), 9000000, 200);
  CHECK(pcie.tx_bytes_per_second == 3000000);
  CHECK_FALSE(pcie.rx_bytes_per_second);
  pcie = tick(std::chrono::milliseconds(2000), 9000000, 4200);
  CHECK(pcie.tx_bytes_per_second == 0);
  CHECK(pcie.rx_bytes_per_second == 2000);
}

TEST_CASE("nvml source rates the PCIe byte counters of a GPU without GPM", "[nvml]") {
  // GPU 1 of the fake: counters that grow 3 MiB (tx) and 1 MiB (rx) with every read.
  const auto source = make_source({"nvml.library=" + fake_library()});
  simdjson::dom::parser parser;
  const auto first_start = std::chrono::steady_clock::now();
  const auto first = sample_data(*source);
  const auto first_end = std::chrono::steady_clock::now();
  CHECK_FALSE(has(parser.parse(first.at(1))["pcie"], "tx_bytes_per_second"));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const auto second_start = std::chrono::steady_clock::now();
  const auto second = sample_data(*source);
  const auto second_end = std::chrono::steady_clock::now();
  // The source timed its two reads somewhere within these bounds.
  const double longest = std::chrono::duration<double>(second_end - first_start).count();
  const double shortest = std::chrono::duration<double>(second_start - first_end).count();
  const simdjson::dom::element pcie = parser.parse(second.at(1))["pcie"];
  const double tx = std::int64_t(pcie["tx_bytes_per_second"]);
  const double rx = std::int64_t(pcie["rx_bytes_per_second"]);
  CHECK(tx >= 3 * 1048576 / longest - 1);
  CHECK(tx <= 3 * 1048576 / shortest + 1);
  CHECK(rx >= 1048576 / longest - 1);
  CHECK(rx <= 1048576 / shortest + 1);
}

TEST_CASE("nvml source falls back to the byte counters when GPM has no PCIe", "[nvml][gpm]") {
  const ScopedEnv no_pcie("TELEMETRYD_FAKE_NVML_NO_GPM_PCIE", "1");
  const auto source = make_source({"nvml.library=" + fake_library()});
  simdjson::dom::parser parser;
  sample_data(*source);
  wait_past_gpm_interval();
  const simdjson::dom::element second = parser.parse(sample_data(*source).at(0));
  CHECK(double(second["activity"]["sm_active_percent"]) == 97.25);
  CHECK_FALSE(has(second["pcie"], "tx_bytes_per_second"));  // GPM said NOT_SUPPORTED
  sample_data(*source);                                     // the counters' first reading
  const simdjson::dom::element pcie = parser.parse(sample_data(*source).at(0))["pcie"];
  CHECK(std::int64_t(pcie["tx_bytes_per_second"]) > 0);
  CHECK(std::int64_t(pcie["rx_bytes_per_second"]) > 0);
}

TEST_CASE("clock-event reasons are named as nvidia-smi names them", "[nvml]") {
  CHECK(nvml::clock_event_reason_names(0).empty());
  CHECK(nvml::clock_event_reason_names(0x1FF) ==
        std::vector<std::string>{"gpu_idle", "applications_clocks_setting", "sw_power_cap",
                                 "hw_slowdown", "sync_boost", "sw_thermal_slowdown",
                                 "hw_thermal_slowdown", "hw_power_brake_slowdown",
                                 "display_clocks_setting"});
  // A bit this build has no name for is only in the mask.
  CHECK(nvml::clock_event_reason_names(0x200 | 0x40) ==
        std::vector<std::string>{"hw_thermal_slowdown"});
}

TEST_CASE("the nvml source is registered with a described section", "[nvml][registry]") {
  const SourceInfo& info = nvml_info();
  CHECK(info.section.name == "nvml");
  CHECK_FALSE(info.section.description.empty());
  std::set<std::string> names;
  for (const auto& key : info.section.keys) {
    INFO(key.name);
    CHECK_FALSE(key.description.empty());
    names.insert(key.name);
  }
  CHECK(names ==
        std::set<std::string>{"library", "sample_interval_ms", "host", "source_uri", "proc_root"});

  const Config defaults = nvml_config({});
  CHECK(defaults.str("nvml.library") == "libnvidia-ml.so.1");
  CHECK(defaults.integer("nvml.sample_interval_ms") == 1000);
  CHECK(defaults.str("nvml.host").empty());
  CHECK(defaults.str("nvml.source_uri").empty());
  CHECK(defaults.str("nvml.proc_root") == "/proc");
  CHECK_THROWS_AS(nvml_config({"nvml.sample_interval_ms=50"}), ConfigError);
}
