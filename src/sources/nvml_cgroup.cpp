#include "sources/nvml_cgroup.hpp"

#include <unistd.h>

#include <fstream>
#include <sstream>

namespace telemetryd::nvml {
namespace {

bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

// 8-4-4-4-12 hex digits (lowercase, as the API server generates them), or the 32 hex digits
// without dashes that kubelet uses as the UID of a static pod (the hash of its manifest, which
// the mirror pod carries as its kubernetes.io/config.hash annotation; kept as it is).
bool is_pod_uid(std::string_view s) {
  if (s.size() == 32) {
    for (const char c : s)
      if (!is_hex(c)) return false;
    return true;
  }
  if (s.size() != 36) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : !is_hex(s[i])) return false;
  }
  return true;
}

bool is_container_id(std::string_view s) {
  if (s.size() != 64) return false;
  for (const char c : s)
    if (!is_hex(c)) return false;
  return true;
}

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// `pod<uid>` (cgroupfs) or a `*.slice` naming kubepods and `-pod<uid_with_underscores>`
// (systemd): `kubepods[-<qos>]-pod<uid>.slice`, also nested under another slice as kind and
// minikube nodes do (`kubelet-kubepods-burstable-pod<uid>.slice`).
std::optional<std::string> pod_of(std::string_view part) {
  std::string uid;
  if (starts_with(part, "pod")) {
    uid = part.substr(3);
  } else if (ends_with(part, ".slice") && part.find("kubepods") != std::string_view::npos) {
    const std::size_t at = part.rfind("-pod");
    if (at == std::string_view::npos) return std::nullopt;
    uid = part.substr(at + 4, part.size() - at - 4 - 6);
    for (char& c : uid)
      if (c == '_') c = '-';
  } else {
    return std::nullopt;
  }
  if (!is_pod_uid(uid)) return std::nullopt;
  return uid;
}

// A bare id (cgroupfs, /docker/<id>), `<runtime>-<id>.scope` (systemd) or `<runtime>-<id>`
// (CRI-O and Podman under the cgroupfs manager: `.../pod<uid>/crio-<id>`).
std::optional<std::string> container_of(std::string_view part) {
  if (ends_with(part, ".scope")) part.remove_suffix(6);
  for (const std::string_view prefix : {"cri-containerd-", "docker-", "crio-", "libpod-"}) {
    if (starts_with(part, prefix)) {
      part.remove_prefix(prefix.size());
      break;
    }
  }
  if (!is_container_id(part)) return std::nullopt;
  return std::string(part);
}

CgroupIdentity parse_path(std::string_view path) {
  CgroupIdentity id;
  while (!path.empty()) {
    const std::size_t slash = path.find('/');
    const std::string_view part = path.substr(0, slash);
    path = slash == std::string_view::npos ? std::string_view() : path.substr(slash + 1);
    if (part.empty()) continue;
    if (auto uid = pod_of(part)) id.pod_uid = std::move(uid);
    // The innermost id wins: a container's own cgroup is below its pod's.
    if (auto container = container_of(part)) id.container_id = std::move(container);
  }
  return id;
}

}  // namespace

CgroupIdentity parse_cgroup(std::string_view text) {
  CgroupIdentity v1;
  while (!text.empty()) {
    const std::size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    // hierarchy-ID:controller-list:cgroup-path; the path may itself contain ':'.
    const std::size_t first = line.find(':');
    if (first == std::string_view::npos) continue;
    const std::size_t second = line.find(':', first + 1);
    if (second == std::string_view::npos) continue;
    const std::string_view hierarchy = line.substr(0, first);
    const std::string_view controllers = line.substr(first + 1, second - first - 1);
    CgroupIdentity id = parse_path(line.substr(second + 1));
    if (hierarchy == "0" && controllers.empty()) {
      if (id.container_id || id.pod_uid) return id;  // the unified hierarchy
      continue;
    }
    if (!v1.container_id && !v1.pod_uid) v1 = std::move(id);
  }
  return v1;
}

CgroupIdentity read_cgroup(const std::string& proc_root, long long pid) {
  std::ifstream in(proc_root + "/" + std::to_string(pid) + "/cgroup");
  if (!in) return {};
  std::ostringstream text;
  text << in.rdbuf();
  return parse_cgroup(text.str());
}

std::optional<std::string> foreign_pid_namespace(const std::string& proc_root) {
  char target[64] = {};
  const ssize_t n = readlink((proc_root + "/1/ns/pid").c_str(), target, sizeof target - 1);
  if (n <= 0) return std::nullopt;
  const std::string_view link(target, static_cast<std::size_t>(n));
  // PROC_PID_INIT_INO: the kernel's fixed inode number of the initial PID namespace.
  if (link == "pid:[4026531836]") return std::nullopt;
  return std::string(link);
}

}  // namespace telemetryd::nvml
