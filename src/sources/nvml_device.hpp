#pragma once
// Maps one NVML device to a gpu.metrics.v1 sample. Separate from the source so tests can drive it
// with a hand-made function table as well as through a loaded library.

#include <optional>
#include <string>

#include "events/gpu_metrics.hpp"
#include "sources/nvml_api.hpp"

namespace telemetryd::nvml {

/// Reads every metric the table supports. A call that fails only leaves its field empty; the
/// device as a whole is given up (nullopt, reason in `error`) when its UUID or name cannot be
/// read or any call reports the GPU lost. Sets collector and gpu_index; host and interval_ms are
/// the caller's. Does not throw, bar allocation failure.
std::optional<events::GpuSample> sample_device(const NvmlFunctions& functions, nvmlDevice_t device,
                                               unsigned index, std::string& error);

}  // namespace telemetryd::nvml
