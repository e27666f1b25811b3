// process_* metrics with the names the Prometheus client libraries use, so existing dashboards
// and alerts for "process_resident_memory_bytes" work unchanged.

#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

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

}  // namespace

void register_process_metrics(Registry& registry, std::string_view version) {
  registry.gauge("telemetryd_build_info", "Build information; the value is always 1.", {"version"})
      .with({version})
      .set(1);
  auto& cpu =
      registry.counter("process_cpu_seconds_total", "User and system CPU time spent.").with({});
  auto& resident =
      registry.gauge("process_resident_memory_bytes", "Resident memory size.").with({});
  auto& virt = registry.gauge("process_virtual_memory_bytes", "Virtual memory size.").with({});
  auto& start =
      registry
          .gauge("process_start_time_seconds", "Start time of the process since the Unix epoch.")
          .with({});
  auto& open_fds = registry.gauge("process_open_fds", "Number of open file descriptors.").with({});
  auto& max_fds =
      registry.gauge("process_max_fds", "Maximum number of open file descriptors.").with({});
  const double boot = boot_time_seconds();
  registry.on_collect([&cpu, &resident, &virt, &start, &open_fds, &max_fds, boot] {
    ProcStat stat;
    if (read_proc_stat(stat)) {
      cpu.set_total(stat.cpu_seconds);
      resident.set(stat.resident_bytes);
      virt.set(stat.virtual_bytes);
      start.set(boot + stat.start_seconds_since_boot);
    }
    std::error_code ec;
    double fds = 0;
    for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
      ++fds;
    }
    open_fds.set(fds);
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0) max_fds.set(static_cast<double>(limit.rlim_cur));
  });
}

}  // namespace telemetryd::metrics
