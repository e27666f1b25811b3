// telemetryd: CLI -> load role file -> validate all of it -> build the role's components -> run.

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "app/config_reference.hpp"
#include "app/daemon.hpp"
#include "app/dlq_replay_command.hpp"
#include "app/reload.hpp"
#include "app/reprice_command.hpp"
#include "app/roles.hpp"
#include "mongo/mongoc_runtime.hpp"
#include "telemetryd/config.hpp"
#include "telemetryd/errors.hpp"
#include "telemetryd/log.hpp"
#include "telemetryd_build_config.hpp"

namespace {

using namespace telemetryd;

int check_config(const std::vector<std::string>& files) {
  int failed = 0;
  for (const auto& file : files) {
    try {
      const Config config = load_config({.file = file}, app::role_catalog());
      std::cout << file << ": ok (role " << config.role() << ")\n";
    } catch (const ConfigError& e) {
      ++failed;
      for (const auto& problem : e.problems()) std::cerr << problem.to_string() << "\n";
    }
  }
  return failed == 0 ? 0 : kExitConfig;
}

app::DaemonOutcome run(const LoadOptions& options) {
  Config config;
  try {
    config = load_config(options, app::role_catalog());
  } catch (const ConfigError& e) {
    app::log_config_problems(e);
    return {.exit_code = kExitConfig};
  }
  try {
    return app::run_daemon(config, options);
  } catch (const ConfigError& e) {
    // Rules a component checks when it is built (e.g. files a key names): still exit 78, and
    // placed at the key in the file like every other problem.
    std::vector<ConfigProblem> problems;
    for (const auto& problem : e.problems()) problems.push_back(config.located(problem));
    app::log_config_problems(ConfigError(std::move(problems)));
    return {.exit_code = kExitConfig};
  } catch (const StartupError& e) {
    log::error("daemon", "cannot start", {{"error", e.what()}});
    return {.exit_code = kExitStartup};
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App cli{"telemetryd: GPU and LLM token-usage telemetry pipeline"};
  cli.require_subcommand(1);

  std::string role;
  std::string config_file;
  std::vector<std::string> sets;
  auto* run_cmd = cli.add_subcommand("run", "Run a role until SIGTERM");
  // The role table (src/app/roles.cpp) is the one list of roles.
  std::string roles_help;
  for (const auto& name : app::role_catalog().roles) {
    roles_help += (roles_help.empty() ? "" : ", ") + name;
  }
  run_cmd->add_option("--role", role, roles_help)->check(CLI::IsMember(app::role_catalog().roles));
  run_cmd->add_option("--config,-c", config_file, "Role file (YAML); defaults apply without one")
      ->check(CLI::ExistingFile);
  run_cmd->add_option("--set", sets, "Override a key: key.path=value (repeatable)");
  std::int64_t count = -1;
  run_cmd->add_option("--count", count, "producer: stop after N delivered events, exit 0")
      ->check(CLI::NonNegativeNumber);

  std::vector<std::string> check_files;
  auto* check_cmd = cli.add_subcommand(
      "check-config", "Validate role files; exit 78 listing every problem as file:line:col");
  check_cmd->add_option("files", check_files, "Role files")->required();

  app::RepriceOptions reprice_options;
  auto* reprice_cmd = cli.add_subcommand(
      "reprice", "Recompute the stored costs of [--from, --to) from stored GPU metrics and usage");
  reprice_cmd->add_option("--config,-c", reprice_options.config_file, "Processor or all role file")
      ->check(CLI::ExistingFile);
  reprice_cmd->add_option("--role", reprice_options.role, "processor or all (default: the file's)")
      ->check(CLI::IsMember({"processor", "all"}));
  reprice_cmd->add_option("--set", reprice_options.overrides, "Override a key: key.path=value");
  reprice_cmd->add_option("--from", reprice_options.from, "Start, RFC 3339")->required();
  reprice_cmd->add_option("--to", reprice_options.to, "End (excluded), RFC 3339")->required();
  reprice_cmd
      ->add_option("--prices", reprice_options.prices_file,
                   "File of 'MODEL=USD per hour' lines applied over the catalog")
      ->check(CLI::ExistingFile);
  reprice_cmd->add_flag("--dry-run", reprice_options.dry_run, "Print the changes, write nothing");

  app::DlqReplayOptions replay_options;
  auto* dlq_cmd = cli.add_subcommand("dlq", "Dead-letter topics of the processor");
  dlq_cmd->require_subcommand(1);
  auto* replay_cmd = dlq_cmd->add_subcommand(
      "replay",
      "Send the selected dead letters (original bytes and key) back to their source topic; "
      "reads each dead-letter topic up to its end at start");
  replay_cmd->add_option("--config,-c", replay_options.config_file, "Processor role file")
      ->required()
      ->check(CLI::ExistingFile);
  replay_cmd->add_option("--set", replay_options.overrides, "Override a key: key.path=value");
  replay_cmd->add_option("--topic", replay_options.topics,
                         "Dead-letter topic (repeatable; default: both <topic><dlq_suffix>)");
  replay_cmd->add_option("--to", replay_options.to,
                         "Destination topic (default: each letter's source topic)");
  replay_cmd->add_option("--reason", replay_options.reasons,
                         "Only letters with this reason, e.g. store_rejected (repeatable)");
  replay_cmd->add_option("--stage", replay_options.stages,
                         "Only letters of this stage: validate or store (repeatable)");
  replay_cmd->add_option("--partition", replay_options.partition, "Only this source partition")
      ->check(CLI::NonNegativeNumber);
  replay_cmd->add_option("--from-offset", replay_options.from_offset, "Only source offsets >= this")
      ->check(CLI::NonNegativeNumber);
  replay_cmd->add_option("--to-offset", replay_options.to_offset, "Only source offsets <= this")
      ->check(CLI::NonNegativeNumber);
  replay_cmd->add_option("--since", replay_options.since,
                         "Only letters dead-lettered at or after this time, RFC 3339");
  replay_cmd->add_option("--until", replay_options.until,
                         "Only letters dead-lettered before this time, RFC 3339");
  replay_cmd->add_flag("--dry-run", replay_options.dry_run,
                       "Print what would be sent, send nothing");

  auto* version_cmd = cli.add_subcommand("version", "Print the version");
  auto* reference_cmd = cli.add_subcommand(
      "config-reference", "Print the role file reference (Markdown) from the built-in schemas");

  CLI11_PARSE(cli, argc, argv);

  if (*version_cmd) {
    std::cout << "telemetryd " << TELEMETRYD_VERSION << "\n";
    return 0;
  }
  if (*reference_cmd) {
    std::cout << app::config_reference_markdown();
    return 0;
  }
  if (*check_cmd) return check_config(check_files);
  if (*reprice_cmd) {
    if (reprice_options.role.empty() && reprice_options.config_file.empty()) {
      std::cerr << "reprice: give --config, --role, or both\n";
      return kExitConfig;
    }
    const mongo::MongocRuntime mongoc;
    return app::reprice(reprice_options);
  }
  if (*replay_cmd) return app::dlq_replay(replay_options);
  if (role.empty() && config_file.empty()) {
    std::cerr << "run: give --role, --config, or both\n";
    return kExitConfig;
  }
  if (count >= 0) sets.push_back("producer.count=" + std::to_string(count));
  app::DaemonOutcome outcome;
  {
    const mongo::MongocRuntime mongoc;
    outcome = run({.file = config_file, .role = role, .overrides = sets});
  }
  // After the drain and every cleanup, so the new image starts from a clean slate.
  if (outcome.reexec) return app::reexec_self(argv);
  return outcome.exit_code;
}
