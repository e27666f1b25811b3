#include <dlfcn.h>
#include <simdjson.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <set>

#include "sources/nvml_device.hpp"
#include "telemetryd/config.hpp"
#include "telemetryd/errors.hpp"
#include "telemetryd/source.hpp"

using namespace telemetryd;

namespace {

constexpr const char* kUuid0 = "GPU-604ac76c-d9cf-fef3-62e9-d92044ab6e52";
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
  // Shortest round-trip form: 231400 mW is exactly "231.4", not 231.40000000000001.
  CHECK(event.payload.find("\"power_draw_watts\":231.4,") != std::string::npos);

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
  CHECK(std::string_view(data["model_name"]) == "NVIDIA A100-PCIE-40GB");
  CHECK(std::string_view(data["collector"]) == "nvml");
  CHECK(std::int64_t(data["gpu_index"]) == 0);
  CHECK(std::int64_t(data["interval_ms"]) == 5000);
  CHECK(double(data["utilization_gpu_percent"]) == 87.0);
  CHECK(double(data["utilization_memory_percent"]) == 41.0);
  CHECK(std::int64_t(data["memory_total_bytes"]) == 42949672960);
  CHECK(std::int64_t(data["memory_used_bytes"]) == 31138512896);
  CHECK(double(data["power_draw_watts"]) == 231.4);
  CHECK(double(data["power_limit_watts"]) == 250.0);
  CHECK(std::int64_t(data["energy_consumed_mj"]) == 98123456789);
  CHECK(double(data["temperature_gpu_celsius"]) == 64.0);
  CHECK(std::int64_t(data["clock_sm_mhz"]) == 1410);
  CHECK(std::int64_t(data["clock_mem_mhz"]) == 1215);

  const simdjson::dom::element ecc = data["ecc"];
  CHECK(bool(ecc["mode_enabled"]));
  CHECK(std::int64_t(ecc["volatile_corrected"]) == 2);
  CHECK(std::int64_t(ecc["volatile_uncorrected"]) == 0);
  CHECK(std::int64_t(ecc["aggregate_corrected"]) == 17);
  CHECK(std::int64_t(ecc["aggregate_uncorrected"]) == 1);

  const simdjson::dom::array processes = data["processes"];
  REQUIRE(processes.size() == 2);
  CHECK(std::int64_t(processes.at(0)["pid"]) == 4242);
  CHECK(std::int64_t(processes.at(0)["used_memory_bytes"]) == 1073741824);
  CHECK(std::int64_t(processes.at(1)["pid"]) == 4343);
  CHECK_FALSE(has(processes.at(1), "used_memory_bytes"));  // NVML_VALUE_NOT_AVAILABLE
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
  for (const char* absent : {"power_draw_watts", "energy_consumed_mj", "ecc", "processes"}) {
    INFO(absent);
    CHECK_FALSE(has(data, absent));
  }
  CHECK(double(data["power_limit_watts"]) == 350.0);
  CHECK(double(data["temperature_gpu_celsius"]) == 45.0);
  CHECK(std::int64_t(data["memory_used_bytes"]) == 1073741824);
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
  // Our own reference keeps the fake loaded, so its counter outlives the source's dlclose.
  void* handle = dlopen(fake_library().c_str(), RTLD_NOW | RTLD_LOCAL);
  REQUIRE(handle != nullptr);
  const auto live_inits = reinterpret_cast<int (*)()>(dlsym(handle, "fake_nvml_live_inits"));
  REQUIRE(live_inits != nullptr);
  CHECK(live_inits() == 0);
  {
    const auto source = make_source({"nvml.library=" + fake_library()});
    CHECK(live_inits() == 1);
  }
  CHECK(live_inits() == 0);
  dlclose(handle);
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
  CHECK(names == std::set<std::string>{"library", "sample_interval_ms", "host", "source_uri"});

  const Config defaults = nvml_config({});
  CHECK(defaults.str("nvml.library") == "libnvidia-ml.so.1");
  CHECK(defaults.integer("nvml.sample_interval_ms") == 1000);
  CHECK(defaults.str("nvml.host").empty());
  CHECK(defaults.str("nvml.source_uri").empty());
  CHECK_THROWS_AS(nvml_config({"nvml.sample_interval_ms=50"}), ConfigError);
}
