#pragma once
// Which container and Kubernetes pod a GPU process belongs to, from /proc/PID/cgroup: the
// attribution of GPU memory to a pod that NVML alone cannot give.

#include <optional>
#include <string>
#include <string_view>

namespace telemetryd::nvml {

struct CgroupIdentity {
  std::optional<std::string> container_id;  // 64 lowercase hex digits
  /// As Kubernetes writes it, with dashes; a static pod's is 32 hex digits without (kubelet's
  /// hash of the manifest, the mirror pod's kubernetes.io/config.hash annotation).
  std::optional<std::string> pod_uid;
};

/// Reads the text of a /proc/PID/cgroup file: cgroup v2 (`0::/path`) or v1
/// (`N:controllers:/path`) lines, with kubelet's cgroupfs layout
/// (`/kubepods/burstable/pod<uid>/<container id>`) or its systemd one
/// (`kubepods-burstable-pod<uid with underscores>.slice/cri-containerd-<id>.scope`, also
/// `docker-<id>.scope`, `crio-<id>.scope`, and the pod slice nested under another one, as on
/// kind and minikube nodes: `kubelet-kubepods-burstable-pod<uid>.slice`), CRI-O's and Podman's
/// cgroupfs names without `.scope` (`crio-<id>`, `libpod-<id>`), and plain Docker
/// (`/docker/<id>`). The v2 line wins
/// over v1 ones; fields that cannot be told are left empty. Never throws but for allocation.
CgroupIdentity parse_cgroup(std::string_view text);

/// parse_cgroup of `<proc_root>/<pid>/cgroup`; empty when the file cannot be read (the process
/// ended, or another PID namespace).
CgroupIdentity read_cgroup(const std::string& proc_root, long long pid);

/// The PID namespace `<proc_root>/1/ns/pid` names, when it can be read and is not the initial
/// one (`pid:[4026531836]`): `<proc_root>` is then a container's /proc, where the host PIDs NVML
/// reports name other processes, or none. nullopt when it is the initial namespace, or unknown
/// (no such link, or no permission to read PID 1's: attribution is then left on).
std::optional<std::string> foreign_pid_namespace(const std::string& proc_root);

}  // namespace telemetryd::nvml
