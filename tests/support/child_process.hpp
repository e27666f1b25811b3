#pragma once
// Runs the real telemetryd binary for black-box tests: stdout and stderr go to files the test
// reads, and the destructor kills what is still running so a failed assertion leaks nothing.

#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace test_support {

class ChildProcess {
 public:
  ChildProcess(std::vector<std::string> argv, std::map<std::string, std::string> extra_env = {});
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  void send_signal(int signal_number) const;
  /// Exit status (WEXITSTATUS) once exited, or nullopt on timeout. Death by signal gives 128+sig.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);
  std::string stdout_text() const;
  std::string stderr_text() const;
  /// Waits until a stdout line contains `needle`; returns that line.
  std::optional<std::string> wait_for_line(const std::string& needle,
                                           std::chrono::milliseconds timeout) const;

 private:
  pid_t pid_ = -1;
  bool exited_ = false;
  int status_ = 0;
  std::string stdout_path_;
  std::string stderr_path_;
};

/// Runs a command to completion, returning exit status and its output.
struct CommandResult {
  int status = -1;
  /// stdout, then stderr (each stream's lines in order).
  std::string output;
  /// stdout alone: what a command prints for a pipe (`version`, `config-reference`), which a
  /// library's warning on stderr must not change.
  std::string stdout_only;
};
CommandResult run_command(const std::vector<std::string>& argv, const std::string& stdin_text = {});

/// Path of the telemetryd binary under test (TELEMETRYD_BIN, set by meson).
std::string telemetryd_bin();
/// Repository root (TELEMETRYD_SOURCE_ROOT, set by meson).
std::string source_root();
/// Reads an environment variable or fails the test with a clear message.
std::string required_env(const char* name);

/// Extracts the port from a `"msg":"listening"` log line.
int port_from_listening_line(const std::string& line);

}  // namespace test_support
