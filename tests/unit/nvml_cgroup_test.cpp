#include "sources/nvml_cgroup.hpp"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

using telemetryd::nvml::foreign_pid_namespace;
using telemetryd::nvml::parse_cgroup;
using telemetryd::nvml::read_cgroup;

namespace {

constexpr const char* kPod = "0d4fb6b4-7a0e-4b3c-9f6e-2a51c7d3e8f1";
constexpr const char* kContainer =
    "8f2c1b9e4a7d6c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b";

}  // namespace

TEST_CASE("parse_cgroup reads kubelet's systemd layout under cgroup v2", "[nvml][cgroup]") {
  const auto id = parse_cgroup(
      "0::/kubepods.slice/kubepods-burstable.slice/"
      "kubepods-burstable-pod0d4fb6b4_7a0e_4b3c_9f6e_2a51c7d3e8f1.slice/"
      "cri-containerd-8f2c1b9e4a7d6c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b.scope\n");
  CHECK(id.pod_uid == kPod);
  CHECK(id.container_id == kContainer);

  // Guaranteed pods have no QoS level in the slice name; CRI-O names its scopes crio-<id>.
  const auto guaranteed = parse_cgroup(
      "0::/kubepods.slice/kubepods-pod0d4fb6b4_7a0e_4b3c_9f6e_2a51c7d3e8f1.slice/"
      "crio-8f2c1b9e4a7d6c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b.scope\n");
  CHECK(guaranteed.pod_uid == kPod);
  CHECK(guaranteed.container_id == kContainer);

  const auto besteffort_docker = parse_cgroup(
      "0::/kubepods.slice/kubepods-besteffort.slice/"
      "kubepods-besteffort-pod0d4fb6b4_7a0e_4b3c_9f6e_2a51c7d3e8f1.slice/"
      "docker-8f2c1b9e4a7d6c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b.scope");
  CHECK(besteffort_docker.pod_uid == kPod);
  CHECK(besteffort_docker.container_id == kContainer);
}

TEST_CASE("parse_cgroup reads kubelet's cgroupfs layout under cgroup v1", "[nvml][cgroup]") {
  const auto id = parse_cgroup(
      "12:hugetlb:/kubepods/burstable/pod0d4fb6b4-7a0e-4b3c-9f6e-2a51c7d3e8f1/"
      "8f2c1b9e4a7d6c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b\n"
      "11:memory:/kubepods/burstable/pod0d4fb6b4-7a0e-4b3c-9f6e-2a51c7d3e8f1/"
      "8f2c1b9e4a7d6c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b\n"
      "1:name=systemd:/kubepods/burstable/pod0d4fb6b4-7a0e-4b3c-9f6e-2a51c7d3e8f1/"
      "8f2c1b9e4a7d6c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b\n"
      "0::/\n");
  CHECK(id.pod_uid == kPod);
  CHECK(id.container_id == kContainer);

  // The pod's own cgroup (a pause-less process in the pod slice): a pod, no container.
  const auto pod_only =
      parse_cgroup("4:cpu,cpuacct:/kubepods/besteffort/pod0d4fb6b4-7a0e-4b3c-9f6e-2a51c7d3e8f1\n");
  CHECK(pod_only.pod_uid == kPod);
  CHECK_FALSE(pod_only.container_id);
}

TEST_CASE("parse_cgroup reads CRI-O and Podman under the cgroupfs manager", "[nvml][cgroup]") {
  // CRI-O with cgroup_manager = "cgroupfs": no .scope after crio-<id>.
  const auto crio_v2 = parse_cgroup(
      "0::/kubepods/burstable/pod0d4fb6b4-7a0e-4b3c-9f6e-2a51c7d3e8f1/"
      "crio-8f2c1b9e4a7d6c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b\n");
  CHECK(crio_v2.pod_uid == kPod);
  CHECK(crio_v2.container_id == kContainer);

  const auto crio_v1 = parse_cgroup(
      "7:memory:/kubepods/besteffort/pod0d4fb6b4-7a0e-4b3c-9f6e-2a51c7d3e8f1/"
      "crio-8f2c1b9e4a7d6c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b\n");
  CHECK(crio_v1.pod_uid == kPod);
  CHECK(crio_v1.container_id == kContainer);

  const auto podman = parse_cgroup(
      "0::/libpod_parent/"
      "libpod-8f2c1b9e4a7d6c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b\n");
  CHECK(podman.container_id == kContainer);
  CHECK_FALSE(podman.pod_uid);
}

TEST_CASE("parse_cgroup reads nested kubepods slices and static pod UIDs", "[nvml][cgroup]") {
  // kind and minikube nodes run kubelet under kubelet.slice.
  const auto kind = parse_cgroup(
      "0::/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/"
      "kubelet-kubepods-burstable-pod0d4fb6b4_7a0e_4b3c_9f6e_2a51c7d3e8f1.slice/"
      "cri-containerd-8f2c1b9e4a7d6c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b.scope\n");
  CHECK(kind.pod_uid == kPod);
  CHECK(kind.container_id == kContainer);

  // A static pod's UID is kubelet's 32-hex hash of its manifest: reported as it is.
  constexpr const char* kStatic = "5d1b2d1e5c2f4a7b9e0c3d6f8a1b4c7e";
  const auto static_systemd = parse_cgroup(
      "0::/kubepods.slice/kubepods-burstable.slice/"
      "kubepods-burstable-pod5d1b2d1e5c2f4a7b9e0c3d6f8a1b4c7e.slice/"
      "cri-containerd-8f2c1b9e4a7d6c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b.scope\n");
  CHECK(static_systemd.pod_uid == kStatic);
  CHECK(static_systemd.container_id == kContainer);
  const auto static_cgroupfs = parse_cgroup(
      "0::/kubepods/pod5d1b2d1e5c2f4a7b9e0c3d6f8a1b4c7e/"
      "8f2c1b9e4a7d6c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b\n");
  CHECK(static_cgroupfs.pod_uid == kStatic);

  // A slice that only looks like one: no kubepods, or no -pod<uid>.
  for (const char* other :
       {"0::/system.slice/user-pod0d4fb6b4_7a0e_4b3c_9f6e_2a51c7d3e8f1.slice\n",
        "0::/kubelet.slice/kubelet-kubepods-burstable.slice\n",
        "0::/kubepods/pod5d1b2d1e5c2f4a7b9e0c3d6f8a1b4c7\n"}) {  // 31 hex digits
    INFO(other);
    CHECK_FALSE(parse_cgroup(other).pod_uid);
  }
}

TEST_CASE("parse_cgroup reads plain Docker and leaves host processes alone", "[nvml][cgroup]") {
  const auto docker_v1 = parse_cgroup(
      "9:devices:/docker/8f2c1b9e4a7d6c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b\n");
  CHECK(docker_v1.container_id == kContainer);
  CHECK_FALSE(docker_v1.pod_uid);

  const auto docker_v2 = parse_cgroup(
      "0::/system.slice/"
      "docker-8f2c1b9e4a7d6c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b.scope\n");
  CHECK(docker_v2.container_id == kContainer);
  CHECK_FALSE(docker_v2.pod_uid);

  for (const char* host :
       {"0::/user.slice/user-1000.slice/session-3.scope\n",
        "0::/system.slice/telemetryd@producer.service\n", "0::/\n", "", "garbage without colons\n",
        // Not 64 hex digits, not a pod UID: nothing is made up.
        "0::/kubepods.slice/kubepods-podnot_a_uid.slice/docker-abc.scope\n"}) {
    INFO(host);
    const auto id = parse_cgroup(host);
    CHECK_FALSE(id.container_id);
    CHECK_FALSE(id.pod_uid);
  }
}

TEST_CASE("read_cgroup reads <proc_root>/<pid>/cgroup", "[nvml][cgroup]") {
  const auto root =
      std::filesystem::temp_directory_path() / ("telemetryd-cgroup-" + std::to_string(getpid()));
  std::filesystem::create_directories(root / "484");
  std::ofstream(root / "484" / "cgroup")
      << "0::/kubepods.slice/kubepods-burstable.slice/"
         "kubepods-burstable-pod0d4fb6b4_7a0e_4b3c_9f6e_2a51c7d3e8f1.slice/"
         "cri-containerd-8f2c1b9e4a7d6c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b.scope\n";
  const auto id = read_cgroup(root.string(), 484);
  CHECK(id.pod_uid == kPod);
  CHECK(id.container_id == kContainer);
  const auto gone = read_cgroup(root.string(), 485);  // the process ended
  CHECK_FALSE(gone.pod_uid);
  CHECK_FALSE(gone.container_id);
  std::filesystem::remove_all(root);
}

TEST_CASE("foreign_pid_namespace tells a container's /proc from the host's", "[nvml][cgroup]") {
  const auto root =
      std::filesystem::temp_directory_path() / ("telemetryd-pidns-" + std::to_string(getpid()));
  std::filesystem::create_directories(root / "1" / "ns");
  CHECK_FALSE(foreign_pid_namespace(root.string()));  // no link: unknown, left alone
  std::filesystem::create_symlink("pid:[4026531836]", root / "1" / "ns" / "pid");
  CHECK_FALSE(foreign_pid_namespace(root.string()));
  std::filesystem::remove(root / "1" / "ns" / "pid");
  std::filesystem::create_symlink("pid:[4026532413]", root / "1" / "ns" / "pid");
  CHECK(foreign_pid_namespace(root.string()) == "pid:[4026532413]");
  CHECK_FALSE(foreign_pid_namespace("/nonexistent"));
  std::filesystem::remove_all(root);
}
