// metrics::GpuExporter: names, units and labels of the per-GPU series, the dcgm-exporter naming,
// and per-process series that go away with their process.

#include "metrics/gpu_exporter.hpp"

#include <catch2/catch.hpp>

#include "events/gpu_metrics.hpp"
#include "support/child_process.hpp"

using namespace telemetryd;
using namespace telemetryd::metrics;

namespace {

events::GpuSample full_sample(std::int64_t index, std::string uuid) {
  events::GpuSample s;
  s.gpu_uuid = std::move(uuid);
  s.host = "node-1";
  s.model_name = "NVIDIA H100 80GB HBM3";
  s.collector = "nvml";
  s.gpu_index = index;
  s.utilization_gpu_percent = 50;
  s.utilization_memory_percent = 25;
  s.memory_total_bytes = 80LL << 30;
  s.memory_used_bytes = 1LL << 30;
  s.memory_free_bytes = 78LL << 30;
  s.memory_reserved_bytes = 512LL << 20;
  s.power_draw_watts = 312.5;
  s.power_limit_watts = 700;
  s.energy_consumed_mj = 123456;
  s.temperature_gpu_celsius = 61;
  s.temperature_memory_celsius = 70;
  s.clock_sm_mhz = 1980;
  s.clock_mem_mhz = 2619;
  s.pstate = 0;
  s.clock_event_reasons_mask = 0x4 | 0x40;  // sw_power_cap, hw_thermal_slowdown
  s.pcie.tx_bytes_per_second = 2048;
  s.pcie.rx_bytes_per_second = 4096;
  s.pcie.link_gen = 5;
  s.pcie.link_width = 16;
  s.pcie.link_gen_max = 5;
  s.pcie.link_width_max = 16;
  s.remapped_rows.correctable = 1;
  s.remapped_rows.uncorrectable = 0;
  s.remapped_rows.pending = false;
  s.remapped_rows.failure = false;
  s.xid = events::GpuXid{3, 79};
  s.ecc.mode_enabled = true;
  s.ecc.volatile_corrected = 2;
  s.ecc.volatile_uncorrected = 1;
  s.activity.sm_active_percent = 80;
  s.activity.tensor_active_percent = 40;
  s.activity.dram_active_percent = 30;
  s.mig = std::vector<events::GpuMigActivity>{{1, {}}};
  (*s.mig)[0].activity.sm_active_percent = 10;
  events::GpuProcess p;
  p.pid = 4242;
  p.used_memory_bytes = 1 << 20;
  p.utilization_sm_percent = 20;
  p.container_id = "c0ffee";
  p.pod_uid = "0b4c6f2e-1111-2222-3333-444455556666";
  s.processes = std::vector<events::GpuProcess>{p};
  return s;
}

bool has(const std::string& text, const std::string& line) {
  return text.find(line + "\n") != std::string::npos;
}

std::size_t series_count(const std::string& text, const std::string& name) {
  std::size_t n = 0;
  for (std::size_t pos = text.find(name + "{"); pos != std::string::npos;
       pos = text.find(name + "{", pos + 1)) {
    if (pos == 0 || text[pos - 1] == '\n') ++n;
  }
  return n;
}

}  // namespace

TEST_CASE("every GpuSample field becomes a series in base units", "[gpu_metrics]") {
  Registry registry;
  GpuExporter exporter(registry, {});
  exporter.update(full_sample(0, "GPU-aaaa"));
  exporter.update(full_sample(1, "GPU-bbbb"));
  const std::string text = registry.expose();
  INFO(text);
  const std::string l =
      R"(gpu="0",uuid="GPU-aaaa",model_name="NVIDIA H100 80GB HBM3",host="node-1")";
  CHECK(has(text, "telemetryd_gpu_utilization_ratio{" + l + "} 0.5"));
  CHECK(has(text, "telemetryd_gpu_memory_utilization_ratio{" + l + "} 0.25"));
  CHECK(has(text, "telemetryd_gpu_memory_used_bytes{" + l + "} 1073741824"));
  CHECK(has(text, "telemetryd_gpu_memory_free_bytes{" + l + "} 83751862272"));
  CHECK(has(text, "telemetryd_gpu_memory_reserved_bytes{" + l + "} 536870912"));
  CHECK(has(text, "telemetryd_gpu_memory_total_bytes{" + l + "} 85899345920"));
  CHECK(has(text, "telemetryd_gpu_power_watts{" + l + "} 312.5"));
  CHECK(has(text, "telemetryd_gpu_power_limit_watts{" + l + "} 700"));
  CHECK(has(text, "# TYPE telemetryd_gpu_energy_joules_total counter"));
  CHECK(has(text, "telemetryd_gpu_energy_joules_total{" + l + "} 123.456"));
  CHECK(has(text, "telemetryd_gpu_temperature_celsius{" + l + "} 61"));
  CHECK(has(text, "telemetryd_gpu_memory_temperature_celsius{" + l + "} 70"));
  CHECK(has(text, "telemetryd_gpu_sm_clock_hertz{" + l + "} 1980000000"));
  CHECK(has(text, "telemetryd_gpu_memory_clock_hertz{" + l + "} 2619000000"));
  CHECK(has(text, "telemetryd_gpu_pstate{" + l + "} 0"));
  CHECK(has(text, "telemetryd_gpu_clock_event_reason{" + l + ",reason=\"sw_power_cap\"} 1"));
  CHECK(has(text, "telemetryd_gpu_clock_event_reason{" + l + ",reason=\"hw_thermal_slowdown\"} 1"));
  CHECK(has(text, "telemetryd_gpu_clock_event_reason{" + l + ",reason=\"gpu_idle\"} 0"));
  CHECK(series_count(text, "telemetryd_gpu_clock_event_reason") == 2 * 9);
  CHECK(has(text, "telemetryd_gpu_pcie_tx_bytes_per_second{" + l + "} 2048"));
  CHECK(has(text, "telemetryd_gpu_pcie_rx_bytes_per_second{" + l + "} 4096"));
  CHECK(has(text, "telemetryd_gpu_pcie_link_generation{" + l + "} 5"));
  CHECK(has(text, "telemetryd_gpu_pcie_link_width{" + l + "} 16"));
  CHECK(has(text, "telemetryd_gpu_pcie_link_width_max{" + l + "} 16"));
  CHECK(has(text, "telemetryd_gpu_xid_errors_total{" + l + "} 3"));
  CHECK(has(text, "telemetryd_gpu_last_xid{" + l + "} 79"));
  CHECK(has(text, "telemetryd_gpu_ecc_mode_enabled{" + l + "} 1"));
  CHECK(has(text, "telemetryd_gpu_ecc_errors_total{" + l +
                      ",type=\"uncorrected\",scope=\"volatile\"} 1"));
  CHECK(has(text,
            "telemetryd_gpu_ecc_errors_total{" + l + ",type=\"corrected\",scope=\"volatile\"} 2"));
  CHECK(has(text, "telemetryd_gpu_remapped_rows_total{" + l + ",cause=\"correctable\"} 1"));
  CHECK(has(text, "telemetryd_gpu_row_remap_failure{" + l + "} 0"));
  CHECK(has(text, "telemetryd_gpu_sm_active_ratio{" + l + "} 0.8"));
  CHECK(has(text, "telemetryd_gpu_tensor_active_ratio{" + l + "} 0.4"));
  CHECK(has(text, "telemetryd_gpu_dram_active_ratio{" + l + "} 0.3"));
  CHECK(text.find("telemetryd_gpu_fp64_active_ratio") == std::string::npos);  // not reported
  CHECK(has(text, "telemetryd_gpu_mig_sm_active_ratio{" + l + ",gpu_i_id=\"1\"} 0.1"));
  CHECK(has(text, "telemetryd_gpu_process_memory_used_bytes{" + l +
                      ",pid=\"4242\",container_id=\"c0ffee\","
                      "pod_uid=\"0b4c6f2e-1111-2222-3333-444455556666\"} 1048576"));
  CHECK(has(text, "telemetryd_gpu_process_sm_utilization_ratio{" + l +
                      ",pid=\"4242\",container_id=\"c0ffee\","
                      "pod_uid=\"0b4c6f2e-1111-2222-3333-444455556666\"} 0.2"));
  // One series per GPU and metric.
  CHECK(series_count(text, "telemetryd_gpu_utilization_ratio") == 2);
  CHECK(series_count(text, "telemetryd_gpu_memory_used_bytes") == 2);

  const auto promtool = test_support::run_command({"promtool", "check", "metrics"}, text);
  INFO(promtool.output);
  CHECK(promtool.status == 0);
}

TEST_CASE("a later sample updates the same series", "[gpu_metrics]") {
  Registry registry;
  GpuExporter exporter(registry, {});
  auto s = full_sample(0, "GPU-aaaa");
  exporter.update(s);
  s.utilization_gpu_percent = 75;
  s.energy_consumed_mj = 223456;
  s.clock_event_reasons_mask = 0x1;
  exporter.update(s);
  const std::string text = registry.expose();
  CHECK(series_count(text, "telemetryd_gpu_utilization_ratio") == 1);
  CHECK(text.find("telemetryd_gpu_utilization_ratio{gpu=\"0\"") != std::string::npos);
  CHECK(text.find("} 0.75\n") != std::string::npos);
  CHECK(text.find("} 223.456\n") != std::string::npos);
  CHECK(text.find("reason=\"gpu_idle\"} 1\n") != std::string::npos);
  CHECK(text.find("reason=\"sw_power_cap\"} 0\n") != std::string::npos);
}

TEST_CASE("a driver total that goes back (GPU reset) restarts the counter there", "[gpu_metrics]") {
  Registry registry;
  GpuExporter exporter(registry, {});
  auto s = full_sample(0, "GPU-aaaa");
  exporter.update(s);
  s.energy_consumed_mj = 1000;
  exporter.update(s);
  const std::string text = registry.expose();
  CHECK(series_count(text, "telemetryd_gpu_energy_joules_total") == 1);
  CHECK(text.find("telemetryd_gpu_energy_joules_total{gpu=\"0\",uuid=\"GPU-aaaa\","
                  "model_name=\"NVIDIA H100 80GB HBM3\",host=\"node-1\"} 1\n") !=
        std::string::npos);
}

TEST_CASE("reason names stand in for a missing mask", "[gpu_metrics]") {
  Registry registry;
  GpuExporter exporter(registry, {});
  events::GpuSample s;
  s.gpu_uuid = "GPU-cccc";
  s.gpu_index = 0;
  s.clock_event_reasons = std::vector<std::string>{"sw_thermal_slowdown"};
  exporter.update(s);
  const std::string text = registry.expose();
  CHECK(text.find("reason=\"sw_thermal_slowdown\"} 1\n") != std::string::npos);
  CHECK(text.find("reason=\"gpu_idle\"} 0\n") != std::string::npos);
}

TEST_CASE("a process that exits loses its series", "[gpu_metrics]") {
  Registry registry;
  GpuExporter exporter(registry, {});
  auto s = full_sample(0, "GPU-aaaa");
  events::GpuProcess other;
  other.pid = 777;
  other.used_memory_bytes = 4096;
  s.processes->push_back(other);
  exporter.update(s);
  std::string text = registry.expose();
  CHECK(series_count(text, "telemetryd_gpu_process_memory_used_bytes") == 2);
  CHECK(text.find("pid=\"777\",container_id=\"\",pod_uid=\"\"} 4096") != std::string::npos);

  s.processes->pop_back();
  exporter.update(s);
  text = registry.expose();
  CHECK(series_count(text, "telemetryd_gpu_process_memory_used_bytes") == 1);
  CHECK(text.find("pid=\"777\"") == std::string::npos);

  s.processes->clear();
  exporter.update(s);
  text = registry.expose();
  CHECK(series_count(text, "telemetryd_gpu_process_memory_used_bytes") == 0);
  CHECK(series_count(text, "telemetryd_gpu_process_sm_utilization_ratio") == 0);
}

TEST_CASE("per-process series and GPUs are bounded", "[gpu_metrics]") {
  Registry registry;
  GpuExporter exporter(registry, {.max_gpus = 2, .max_processes_per_gpu = 1});
  auto s = full_sample(0, "GPU-aaaa");
  s.processes->push_back({.pid = 9});
  exporter.update(s);
  exporter.update(full_sample(1, "GPU-bbbb"));
  exporter.update(full_sample(2, "GPU-cccc"));
  const std::string text = registry.expose();
  CHECK(series_count(text, "telemetryd_gpu_utilization_ratio") == 2);
  CHECK(text.find("GPU-cccc") == std::string::npos);
  CHECK(series_count(text, "telemetryd_gpu_process_memory_used_bytes") == 2);  // one per GPU
}

TEST_CASE("dcgm naming uses dcgm-exporter's names, units and labels", "[gpu_metrics]") {
  Registry registry;
  GpuExporter exporter(registry, {.naming = GpuNaming::kDcgm});
  exporter.update(full_sample(0, "GPU-aaaa"));
  const std::string text = registry.expose();
  INFO(text);
  const std::string l =
      R"(gpu="0",UUID="GPU-aaaa",device="nvidia0",modelName="NVIDIA H100 80GB HBM3",Hostname="node-1")";
  CHECK(has(text, "DCGM_FI_DEV_GPU_UTIL{" + l + "} 50"));
  CHECK(has(text, "DCGM_FI_DEV_FB_USED{" + l + "} 1024"));
  CHECK(has(text, "DCGM_FI_DEV_FB_FREE{" + l + "} 79872"));
  CHECK(has(text, "DCGM_FI_DEV_POWER_USAGE{" + l + "} 312.5"));
  CHECK(has(text, "# TYPE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION counter"));
  CHECK(has(text, "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{" + l + "} 123456"));
  CHECK(has(text, "DCGM_FI_DEV_GPU_TEMP{" + l + "} 61"));
  CHECK(has(text, "DCGM_FI_DEV_MEMORY_TEMP{" + l + "} 70"));
  CHECK(has(text, "DCGM_FI_DEV_SM_CLOCK{" + l + "} 1980"));
  CHECK(has(text, "DCGM_FI_DEV_MEM_CLOCK{" + l + "} 2619"));
  CHECK(has(text, "DCGM_FI_DEV_XID_ERRORS{" + l + "} 79"));
  CHECK(has(text, "DCGM_FI_DEV_PCIE_TX_THROUGHPUT{" + l + "} 2"));
  CHECK(has(text, "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS{" + l + "} 68"));
  CHECK(has(text, "DCGM_FI_PROF_SM_ACTIVE{" + l + ",GPU_I_ID=\"\"} 0.8"));
  CHECK(has(text, "DCGM_FI_PROF_SM_ACTIVE{" + l + ",GPU_I_ID=\"1\"} 0.1"));
  CHECK(has(text, "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE{" + l + ",GPU_I_ID=\"\"} 0.4"));
  CHECK(has(text, "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL{" + l + "} 1"));
  CHECK(text.find("telemetryd_gpu_") == std::string::npos);
  // No promtool here: dcgm-exporter's own names fail its lint (counters without _total, the
  // camelCase modelName label), and matching them is the point of this mode.
}

TEST_CASE("a MIG instance the sample no longer lists loses its series", "[gpu_metrics]") {
  Registry registry;
  GpuExporter exporter(registry, {});
  auto s = full_sample(0, "GPU-aaaa");
  s.mig->push_back({2, {}});
  (*s.mig)[1].activity.sm_active_percent = 30;
  (*s.mig)[1].activity.tensor_active_percent = 5;
  exporter.update(s);
  std::string text = registry.expose();
  CHECK(series_count(text, "telemetryd_gpu_mig_sm_active_ratio") == 2);
  CHECK(series_count(text, "telemetryd_gpu_mig_tensor_active_ratio") == 1);

  s.mig->pop_back();  // instance 2 destroyed
  exporter.update(s);
  text = registry.expose();
  CHECK(series_count(text, "telemetryd_gpu_mig_sm_active_ratio") == 1);
  CHECK(text.find("gpu_i_id=\"2\"") == std::string::npos);
  CHECK(text.find("gpu_i_id=\"1\"} 0.1\n") != std::string::npos);

  s.mig.reset();  // MIG mode off
  exporter.update(s);
  text = registry.expose();
  CHECK(text.find("gpu_i_id=") == std::string::npos);

  // Another GPU's instances are its own.
  auto other = full_sample(1, "GPU-bbbb");
  exporter.update(other);
  s.mig = std::vector<events::GpuMigActivity>{{1, {}}};
  (*s.mig)[0].activity.sm_active_percent = 20;
  exporter.update(s);
  text = registry.expose();
  CHECK(series_count(text, "telemetryd_gpu_mig_sm_active_ratio") == 2);
}

TEST_CASE("a sample without a reason mask or names drops the reason series", "[gpu_metrics]") {
  Registry registry;
  GpuExporter exporter(registry, {});
  auto s = full_sample(0, "GPU-aaaa");
  exporter.update(s);
  exporter.update(full_sample(1, "GPU-bbbb"));
  std::string text = registry.expose();
  CHECK(series_count(text, "telemetryd_gpu_clock_event_reason") == 2 * 9);

  s.clock_event_reasons_mask.reset();
  exporter.update(s);
  text = registry.expose();
  INFO(text);
  CHECK(series_count(text, "telemetryd_gpu_clock_event_reason") == 9);  // GPU-bbbb's only
  CHECK(text.find("reason=\"sw_power_cap\"} 1\n") != std::string::npos);
  CHECK(text.find("uuid=\"GPU-aaaa\",model_name=\"NVIDIA H100 80GB HBM3\",host=\"node-1\","
                  "reason=") == std::string::npos);

  s.clock_event_reasons = std::vector<std::string>{"gpu_idle"};  // names only: back again
  exporter.update(s);
  text = registry.expose();
  CHECK(series_count(text, "telemetryd_gpu_clock_event_reason") == 2 * 9);
}
