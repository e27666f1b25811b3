#!/usr/bin/env bash
# Packaging and systemd checks, as root on Debian 12: builds the .deb from ./build, installs it,
# runs the installed binary, verifies the unit, scores its hardening and removes the package
# again. Each check is one JUnit testcase in ${TELEMETRYD_JUNIT_DIR:-build}/ops-checks.junit.xml;
# every check runs even after a failure, and the exit status is non-zero if any failed.
#
# Usage: scripts/ops-checks.sh        (after `ninja -C build`)
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
junit_dir=${TELEMETRYD_JUNIT_DIR:-build}
mkdir -p "$junit_dir"
junit=$junit_dir/ops-checks.junit.xml
max_exposure=2.0
instance=telemetryd@processor.service
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cases=()
failures=0
total=0

# XML text: the five predefined entities, and the control characters XML 1.0 forbids removed.
xml_escape() {
  tr -d '\000-\010\013\014\016-\037' |
    sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g' -e 's/"/\&quot;/g' -e "s/'/\&apos;/g"
}

# check NAME COMMAND...: runs one check, records it, prints one result line.
check() {
  local name=$1
  shift
  local started output status seconds
  started=$(date +%s.%N)
  output=$("$@" 2>&1)
  status=$?
  seconds=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }')
  total=$((total + 1))
  local xml_name
  xml_name=$(printf '%s' "$name" | xml_escape)
  if [ "$status" = 0 ]; then
    printf 'ops-check: PASS %s (%ss)\n' "$name" "$seconds"
    cases+=("  <testcase classname=\"ops\" name=\"$xml_name\" time=\"$seconds\"/>")
  else
    failures=$((failures + 1))
    printf 'ops-check: FAIL %s (%ss, exit %s)\n%s\n' "$name" "$seconds" "$status" "$output" |
      sed '2,$s/^/    /'
    cases+=("  <testcase classname=\"ops\" name=\"$xml_name\" time=\"$seconds\">
    <failure message=\"exit status $status\">$(printf '%s' "$output" | xml_escape)</failure>
  </testcase>")
  fi
  [ -z "$output" ] || [ "$status" != 0 ] || printf '%s\n' "$output" | sed 's/^/    /' | tail -n 3
}

build_deb() {
  scripts/build-deb.sh build "$work" >"$work/deb-path" || return 1
  dpkg-deb --info "$(cat "$work/deb-path")" | grep -E '^ (Version|Depends):'
  dpkg-deb --contents "$(cat "$work/deb-path")" | awk '{print $6}' | grep -c . |
    sed 's/^/files: /'
}

install_deb() {
  [ -s "$work/deb-path" ] || { echo "no .deb was built"; return 1; }
  DEBIAN_FRONTEND=noninteractive dpkg -i "$(cat "$work/deb-path")" || return 1
  getent passwd telemetryd || { echo "postinst did not create the telemetryd user"; return 1; }
}

# The instance, loaded from the installed template by name, is what `systemctl start` would load.
# verify exits 0 on unknown keys and unparsable values (it only warns), so any output fails too.
verify_unit() {
  local output
  output=$(systemd-analyze verify /lib/systemd/system/telemetryd@.service "$instance" 2>&1)
  local status=$?
  [ -z "$output" ] || { echo "$output"; return 1; }
  return "$status"
}

security_score() {
  local report score
  report=$(systemd-analyze security --offline=yes --no-pager "$instance" 2>&1) || {
    echo "$report"
    return 1
  }
  score=$(printf '%s\n' "$report" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
  [ -n "$score" ] || { echo "$report"; echo "no exposure score found"; return 1; }
  echo "exposure $score (must be <= $max_exposure)"
  awk -v s="$score" -v m="$max_exposure" 'BEGIN { exit !(s <= m) }' || {
    printf '%s\n' "$report" | grep '✗'
    return 1
  }
}

remove_and_purge() {
  dpkg -r telemetryd || return 1
  local left=0
  for path in /usr/bin/telemetryd /lib/systemd/system/telemetryd@.service \
    /usr/lib/sysusers.d/telemetryd.conf /usr/share/telemetryd /usr/share/doc/telemetryd; do
    [ ! -e "$path" ] || { echo "left after remove: $path"; left=1; }
  done
  # Removal keeps conffiles (Debian policy); purge must take them and the state directory.
  dpkg -P telemetryd || return 1
  for path in /etc/telemetryd /var/lib/telemetryd; do
    [ ! -e "$path" ] || { echo "left after purge: $path"; left=1; }
  done
  if dpkg-query -W telemetryd >/dev/null 2>&1; then
    echo "dpkg still knows telemetryd"
    left=1
  fi
  return "$left"
}

check "build .deb from ./build" build_deb
check "dpkg -i" install_deb
check "telemetryd version (installed)" /usr/bin/telemetryd version
check "check-config /etc/telemetryd/*.yaml" bash -c '/usr/bin/telemetryd check-config /etc/telemetryd/*.yaml'
check "systemd-analyze verify $instance" verify_unit
check "systemd-analyze security $instance <= $max_exposure" security_score
check "dpkg -r and -P leave nothing behind" remove_and_purge

{
  echo '<?xml version="1.0" encoding="UTF-8"?>'
  echo "<testsuites><testsuite name=\"ops-checks\" tests=\"$total\" failures=\"$failures\" errors=\"0\">"
  printf '%s\n' "${cases[@]}"
  echo '</testsuite></testsuites>'
} >"$junit"
echo "ops-checks: $((total - failures)) passed, $failures failed ($junit)"
[ "$failures" = 0 ]
