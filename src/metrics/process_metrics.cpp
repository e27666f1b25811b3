// process_* metrics with the names the Prometheus client libraries use, so existing dashboards
// and alerts for "process_resident_memory_bytes" work unchanged.

#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "telemetryd/metrics.hpp"

namespace telemetryd::metrics {
namespace {

double boot_time_seconds() {
  std::ifstream stat("/proc/stat");
  for (std::string line; std::getline(stat, line);) {
    if (line.rfind("btime ", 0) == 0) return std::stod(line.substr(6));
  }
  return 0;
}

struct ProcStat {
  double cpu_seconds = 0;
  double start_seconds_since_boot = 0;
  double virtual_bytes = 0;
  double resident_bytes = 0;
};

bool read_proc_stat(ProcStat& out) {
  std::ifstream in("/proc/self/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // The command name may contain spaces and parentheses: fields start after the last ')'.
  const auto close = text.rfind(')');
  if (close == std::string::npos) return false;
  std::istringstream fields(text.substr(close + 2));
  std::vector<std::string> f((std::istream_iterator<std::string>(fields)),
                             std::istream_iterator<std::string>());
  // Field numbers from proc(5), minus 3 for pid, comm and the offset of `state`.
  if (f.size() < 22) return false;
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  out.cpu_seconds = (std::stod(f[11]) + std::stod(f[12])) / ticks;
  out.start_seconds_since_boot = std::stod(f[19]) / ticks;
  out.virtual_bytes = std::stod(f[20]);
  out.resident_bytes = std::stod(f[21]) * static_cast<double>(sysconf(_SC_PAGESIZE));
  return true;
}

prometheus::MetricFamily family(std::string name, std::string help, prometheus::MetricType type,
                                double value) {
  prometheus::ClientMetric series;
  if (type == prometheus::MetricType::Counter) {
    series.counter.value = value;
  } else {
    series.gauge.value = value;
  }
  return prometheus::MetricFamily{std::move(name), std::move(help), type, {std::move(series)}};
}

// Reads /proc on every scrape rather than keeping series that a hook refreshes: the CPU time is a
// total kept by the kernel, which a prometheus::Counter (increment only) cannot be set to.
class ProcessCollector : public prometheus::Collectable {
 public:
  std::vector<prometheus::MetricFamily> Collect() const override {
    using prometheus::MetricType;
    std::vector<prometheus::MetricFamily> out;
    ProcStat stat;
    if (read_proc_stat(stat)) {
      out.push_back(family("process_cpu_seconds_total", "User and system CPU time spent.",
                           MetricType::Counter, stat.cpu_seconds));
      out.push_back(family("process_resident_memory_bytes", "Resident memory size.",
                           MetricType::Gauge, stat.resident_bytes));
      out.push_back(family("process_virtual_memory_bytes", "Virtual memory size.",
                           MetricType::Gauge, stat.virtual_bytes));
      out.push_back(family("process_start_time_seconds",
                           "Start time of the process since the Unix epoch.", MetricType::Gauge,
                           boot_ + stat.start_seconds_since_boot));
    }
    std::error_code ec;
    double fds = 0;
    for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
      ++fds;
    }
    out.push_back(
        family("process_open_fds", "Number of open file descriptors.", MetricType::Gauge, fds));
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
      out.push_back(family("process_max_fds", "Maximum number of open file descriptors.",
                           MetricType::Gauge, static_cast<double>(limit.rlim_cur)));
    }
    return out;
  }

 private:
  double boot_ = boot_time_seconds();
};

}  // namespace

void register_process_metrics(Registry& registry, std::string_view version) {
  registry.gauge("telemetryd_build_info", "Build information; the value is always 1.", {"version"})
      .with({version})
      .Set(1);
  registry.add_collectable(std::make_shared<ProcessCollector>());
}

}  // namespace telemetryd::metrics
