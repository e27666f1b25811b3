#!/usr/bin/python3
"""Validate telemetryd CloudEvents (NDJSON) against the event contract in schemas/.

Usage:
    scripts/validate_events.py [--schemas DIR] [--all-errors] [FILE ...]

Reads one JSON object per line from each FILE, or from stdin when no FILE (or "-") is
given; blank lines are ignored. Each event's schema is picked by its `type` (the
`properties.type.const` of every *.json in the schema directory); an unknown type is an
error. Validation uses jsonschema's Draft202012Validator; `format` is an annotation only
(the schemas use `pattern` for everything that must be enforced).

Output: one line per invalid event,
    line N: id=ID: PATH: MESSAGE
(prefixed with "FILE: " when more than one input is given), then a summary
    validated: N events, K invalid
and one line per event type. Exit status: 0 when every event is valid and N > 0, 1 when
any event is invalid or no event was read, 2 on a usage error (unreadable input, bad
schema directory, jsonschema missing).

Needs only the standard library and jsonschema >= 4.0 (Debian bookworm: python3-jsonschema,
4.10.3, importable by /usr/bin/python3). See docs/events.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections import Counter
from pathlib import Path

try:
    from jsonschema import Draft202012Validator, validators as _validators
    from jsonschema.exceptions import SchemaError, ValidationError, best_match
except ImportError:  # pragma: no cover - depends on the interpreter
    sys.stderr.write(
        "validate_events: error: the jsonschema module is not importable by "
        f"{sys.executable}; install python3-jsonschema (scripts/bootstrap.sh) and run "
        "this script with /usr/bin/python3\n"
    )
    sys.exit(2)

DEFAULT_SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
MAX_MESSAGE = 240


class UsageError(Exception):
    pass


_base_pattern = Draft202012Validator.VALIDATORS["pattern"]


def _ecma_pattern(validator, pattern, instance, schema):
    """`pattern`, with ECMA-262's `$` at the end of the pattern.

    JSON Schema patterns are ECMA-262 regexes, where `$` matches only at the end of the string;
    Python's `$` also matches before a final newline, so a time ending in "Z" plus a newline
    would pass "^...Z$" without this.
    """
    errors = list(_base_pattern(validator, pattern, instance, schema))
    yield from errors
    if errors or not isinstance(instance, str) or not instance.endswith("\n"):
        return
    trailing_backslashes = len(pattern[:-1]) - len(pattern[:-1].rstrip("\\"))
    if pattern.endswith("$") and trailing_backslashes % 2 == 0:
        if not re.search(pattern[:-1] + r"\Z", instance):
            yield ValidationError(f"{instance!r} does not match {pattern!r}")


EventValidator = _validators.extend(Draft202012Validator, {"pattern": _ecma_pattern})


def load_schemas(directory: Path) -> dict[str, EventValidator]:
    """Map CloudEvents type -> validator, from every *.json in `directory` that pins a type."""
    if not directory.is_dir():
        raise UsageError(f"schema directory not found: {directory}")
    validators: dict[str, EventValidator] = {}
    origin: dict[str, Path] = {}
    for path in sorted(directory.glob("*.json")):
        try:
            schema = json.loads(path.read_text(encoding="utf-8"))
            Draft202012Validator.check_schema(schema)
        except (OSError, ValueError) as exc:
            raise UsageError(f"{path}: cannot read schema: {exc}") from exc
        except SchemaError as exc:
            raise UsageError(f"{path}: not a valid draft 2020-12 schema: {exc.message}") from exc
        event_type = schema.get("properties", {}).get("type", {}).get("const")
        if not isinstance(event_type, str):
            continue  # not an event schema (e.g. a shared definitions file)
        if event_type in validators:
            raise UsageError(f"{path}: type {event_type} is already defined by {origin[event_type]}")
        validators[event_type] = EventValidator(schema)
        origin[event_type] = path
    if not validators:
        raise UsageError(f"no event schemas (properties.type.const) in {directory}")
    return validators


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _no_duplicate_keys(pairs):
    obj = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"duplicate key {key!r}")
        obj[key] = value
    return obj


def parse_line(text: str):
    """Strict JSON: no NaN/Infinity, no duplicate object keys."""
    return json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_no_duplicate_keys)


def shorten(message: str) -> str:
    message = " ".join(message.split())
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 3] + "..."


def explain(err) -> str:
    """jsonschema's message, naming the offending value where jsonschema does not."""
    if err.validator == "const":  # jsonschema says only "'1.0' was expected"
        return f"{err.instance!r} is not {err.validator_value!r}"
    return err.message


def describe_id(event) -> str:
    if not isinstance(event, dict) or "id" not in event:
        return "-"
    value = event["id"]
    return value if isinstance(value, str) and value.isprintable() else json.dumps(value)


def iter_inputs(names: list[str]):
    """Yield (label, binary stream) pairs; '-' is stdin."""
    for name in names or ["-"]:
        if name == "-":
            yield "<stdin>", sys.stdin.buffer
        else:
            try:
                stream = open(name, "rb")
            except OSError as exc:
                raise UsageError(f"cannot open {name}: {exc.strerror}") from exc
            with stream:
                yield name, stream


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Validate telemetryd CloudEvents (NDJSON) against schemas/*.json.")
    parser.add_argument("files", nargs="*", metavar="FILE",
                        help="NDJSON files (default, or '-': stdin)")
    parser.add_argument("--schemas", type=Path, default=DEFAULT_SCHEMAS, metavar="DIR",
                        help=f"directory of event schemas (default: {DEFAULT_SCHEMAS})")
    parser.add_argument("--all-errors", action="store_true",
                        help="print every schema error of an invalid event, not only the best match")
    args = parser.parse_args(argv)

    try:
        validators = load_schemas(args.schemas)
    except UsageError as exc:
        print(f"validate_events: error: {exc}", file=sys.stderr)
        return 2

    multiple = len(args.files) > 1
    total = invalid = 0
    per_type_total: Counter[str] = Counter()
    per_type_invalid: Counter[str] = Counter()

    def report(label: str, lineno: int, event, path: str, message: str) -> None:
        prefix = f"{label}: " if multiple else ""
        print(f"{prefix}line {lineno}: id={describe_id(event)}: {path}: {message}")

    try:
        for label, stream in iter_inputs(args.files):
            for lineno, raw in enumerate(stream, start=1):
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    text, decode_error = None, f"not UTF-8: {exc.reason} at byte {exc.start}"
                if text is not None:
                    if lineno == 1:
                        text = text.lstrip("\ufeff")
                    if not text.strip():
                        continue
                total += 1

                errors: list[tuple[str, str]] = []
                event = None
                group = "(not JSON)"
                if text is None:
                    errors.append(("$", decode_error))
                else:
                    try:
                        event = parse_line(text)
                    except ValueError as exc:
                        errors.append(("$", shorten(f"invalid JSON: {exc}")))
                if not errors:
                    if not isinstance(event, dict):
                        group = "(not an object)"
                        errors.append(("$", f"event must be a JSON object, got {type(event).__name__}"))
                    elif not isinstance(event.get("type"), str):
                        group = "(no type)"
                        errors.append(("$.type", "missing or not a string; cannot pick a schema"))
                    elif event["type"] not in validators:
                        group = f"{event['type']} (unknown type)"
                        errors.append(("$.type", shorten(f"unknown event type {event['type']!r} "
                                                 f"(known: {', '.join(sorted(validators))})")))
                    else:
                        group = event["type"]
                        validator = validators[group]
                        found = sorted(validator.iter_errors(event),
                                       key=lambda e: (list(map(str, e.absolute_path)), e.message))
                        if found:
                            first = best_match(found) if not args.all_errors else None
                            ordered = found if args.all_errors else [first]
                            for err in ordered:
                                errors.append((err.json_path, shorten(explain(err))))
                            if not args.all_errors and len(found) > 1:
                                path, message = errors[-1]
                                errors[-1] = (path, f"{message} (+{len(found) - 1} more errors)")

                per_type_total[group] += 1
                if errors:
                    invalid += 1
                    per_type_invalid[group] += 1
                    for path, message in errors:
                        report(label, lineno, event, path, message)
    except UsageError as exc:
        print(f"validate_events: error: {exc}", file=sys.stderr)
        return 2

    print(f"validated: {total} events, {invalid} invalid")
    for group in sorted(per_type_total):
        print(f"  {group}: {per_type_total[group]} events, {per_type_invalid[group]} invalid")
    return 0 if total > 0 and invalid == 0 else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # e.g. piped into head
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
