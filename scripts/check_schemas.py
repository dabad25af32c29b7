#!/usr/bin/env python3
"""Checks schemas/ (run by scripts/check-schemas, which makes sure `jsonschema` is importable).

    python3 scripts/check_schemas.py [SCHEMAS_DIR]

1. Each event schema (*.schema.json) is a valid draft 2020-12 schema, its `$id` ends with its
   file name, and the parts the three files share (the `$defs` and the common header fields,
   descriptions aside) are identical, so they cannot drift apart.
2. Every example in examples/valid/ passes the schema named by its `schema` field.
3. Every example in examples/invalid/ fails its schema, and the errors are about the field that
   examples/invalid/expectations.json names for it. The schema is the one named by the `schema`
   field, or by the file-name prefix (`inventory-`, `shipment-`, `receipt-`) when the `schema`
   field is itself the broken rule; where both exist they must agree. Every file in invalid/ is
   in the manifest and every manifest entry is a file.

Validation uses a FormatChecker, so `format: date-time` is enforced (with the `rfc3339-validator`
package when it is installed, else with the equivalent check below), and ECMA-262 semantics for
`$` in `pattern` (end of input; Python's `re` would also match before a final newline).

Prints one summary line and exits 0, or prints every mismatch and exits 1.
"""

import calendar
import json
import re
import sys
from pathlib import Path

from jsonschema import Draft202012Validator, FormatChecker, validators
from jsonschema.exceptions import ValidationError

STREAM_PREFIXES = ("inventory", "shipment", "receipt")
# Common header fields: identical in every schema file except `schema` (its const differs) and
# the descriptions (they name the stream).
HEADER_FIELDS = ("eventId", "occurredAt", "warehouse", "sequence", "correlationId", "source")


# ---- validator ---------------------------------------------------------------------------
def ecma_pattern(pattern):
    """`pattern` with every `$` anchor outside a character class written as `\\Z`: in ECMA-262
    (JSON Schema's regex dialect) `$` without the m flag matches only at the end of input."""
    out, in_class, escaped = [], False, False
    for char in pattern:
        if escaped:
            out.append(char)
            escaped = False
        elif char == "\\":
            out.append(char)
            escaped = True
        elif char == "[":
            in_class = True
            out.append(char)
        elif char == "]":
            in_class = False
            out.append(char)
        elif char == "$" and not in_class:
            out.append(r"\Z")
        else:
            out.append(char)
    return "".join(out)


_compiled = {}


def pattern_keyword(validator, pattern, instance, schema):
    if not validator.is_type(instance, "string"):
        return
    regex = _compiled.get(pattern)
    if regex is None:
        regex = _compiled[pattern] = re.compile(ecma_pattern(pattern))
    if not regex.search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


Validator = validators.extend(Draft202012Validator, {"pattern": pattern_keyword})

_RFC3339 = re.compile(
    r"(\d{4})-(0[1-9]|1[0-2])-(\d{2})T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d+)?(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)\Z",
    re.ASCII,
)


def format_checker():
    """A FormatChecker that enforces date-time. jsonschema checks it only when the
    rfc3339-validator package is installed; without it, the same rules are registered here."""
    checker = FormatChecker()
    if "date-time" not in checker.checkers:
        print("check-schemas: rfc3339-validator is not installed: using the built-in date-time check",
              file=sys.stderr)

        @checker.checks("date-time")
        def is_datetime(instance):
            if not isinstance(instance, str):
                return True
            match = _RFC3339.match(instance.upper())
            if match is None:
                return False
            year, month, day = (int(group) for group in match.groups())
            return year != 0 and 1 <= day <= calendar.monthrange(year, month)[1]

    if checker.conforms("2023-02-29T00:00:00Z", "date-time") or not checker.conforms("2024-02-29T00:00:00Z", "date-time"):
        raise SystemExit("check-schemas: the date-time format check does not work")
    return checker


# ---- helpers -----------------------------------------------------------------------------
def load_json(path):
    try:
        with open(path, encoding="utf-8") as file:
            return json.load(file)
    except (OSError, ValueError) as error:
        raise SystemExit(f"check-schemas: cannot read {path}: {error}")


def field_path(path):
    """['lines', 0, 'quantity'] -> 'lines[0].quantity'."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + part
    return text


def error_fields(error):
    """The field paths an error (and the errors of its anyOf/oneOf branches) is about: its own
    path, plus each missing property of a `required` error."""
    fields = set()
    base = list(error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, dict):
        fields.update(field_path(base + [name]) for name in error.validator_value if name not in error.instance)
    else:
        fields.add(field_path(base))
    for sub in error.context or ():
        fields |= error_fields(sub)
    return fields


def strip_descriptions(value):
    if isinstance(value, dict):
        return {key: strip_descriptions(item) for key, item in value.items() if key != "description"}
    if isinstance(value, list):
        return [strip_descriptions(item) for item in value]
    return value


# ---- checks ------------------------------------------------------------------------------
def main():
    root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "schemas")
    problems = []

    checker = format_checker()
    schemas = {}  # schema value (`inventory.delta/1`) -> (file name, validator)
    by_prefix = {}  # `inventory` -> schema value
    documents = {}
    for path in sorted(root.glob("*.schema.json")):
        document = load_json(path)
        try:
            Draft202012Validator.check_schema(document)
        except Exception as error:  # SchemaError, or a broken $ref
            problems.append(f"{path.name}: not a valid draft 2020-12 schema: {error}")
            continue
        if not str(document.get("$id", "")).endswith("/" + path.name):
            problems.append(f"{path.name}: $id {document.get('$id')!r} does not end with the file name")
        value = document.get("properties", {}).get("schema", {}).get("const")
        prefix = path.name.split(".", 1)[0]
        if prefix not in STREAM_PREFIXES or not isinstance(value, str) or not value.startswith(prefix + "."):
            problems.append(f"{path.name}: properties.schema.const {value!r} does not name the file's stream")
            continue
        schemas[value] = (path.name, Validator(document, format_checker=checker))
        by_prefix[prefix] = value
        documents[path.name] = document
    if sorted(by_prefix) != sorted(STREAM_PREFIXES):
        problems.append(f"{root}: expected one schema per stream {STREAM_PREFIXES}, found {sorted(by_prefix)}")

    # Shared parts must not drift between the files.
    if documents:
        first_name, first = next(iter(documents.items()))
        for name, document in documents.items():
            if document.get("$defs") != first.get("$defs"):
                problems.append(f"{name}: $defs differ from {first_name}'s")
            for field in HEADER_FIELDS:
                mine = strip_descriptions(document.get("properties", {}).get(field))
                theirs = strip_descriptions(first.get("properties", {}).get(field))
                if mine is None or mine != theirs:
                    problems.append(f"{name}: header field {field} differs from {first_name}'s (or is missing)")

    def schema_for(path, example):
        """(schema value, problem): by the `schema` field, else by the file-name prefix."""
        prefix = path.name.split("-", 1)[0]
        declared = example.get("schema") if isinstance(example, dict) else None
        if prefix not in by_prefix:
            return None, f"{path.name}: the file name must start with one of {', '.join(p + '-' for p in STREAM_PREFIXES)}"
        if declared in schemas:
            if declared != by_prefix[prefix]:
                return None, f"{path.name}: schema {declared!r} does not match the file-name prefix {prefix}-"
            return declared, None
        return by_prefix[prefix], None

    valid_count = 0
    for path in sorted((root / "examples" / "valid").glob("*.json")):
        example = load_json(path)
        value, problem = schema_for(path, example)
        if problem:
            problems.append(problem)
            continue
        if example.get("schema") != value:
            problems.append(f"{path.name}: a valid example must declare schema {value!r}")
        valid_count += 1
        for error in sorted(schemas[value][1].iter_errors(example), key=lambda e: list(e.absolute_path)):
            problems.append(f"valid/{path.name}: rejected by {schemas[value][0]} at "
                            f"'{field_path(error.absolute_path) or '(root)'}': {error.message}")

    invalid_dir = root / "examples" / "invalid"
    manifest_path = invalid_dir / "expectations.json"
    manifest = load_json(manifest_path) if manifest_path.exists() else {}
    if not manifest:
        problems.append(f"{manifest_path}: missing or empty")
    files = {path.name: path for path in invalid_dir.glob("*.json") if path.name != manifest_path.name}
    for name in sorted(set(manifest) - set(files)):
        problems.append(f"invalid/expectations.json: {name} is listed but there is no such file")
    invalid_count = 0
    for name in sorted(files):
        path = files[name]
        expected = manifest.get(name)
        if not isinstance(expected, dict) or not isinstance(expected.get("field"), str) or not isinstance(expected.get("rule"), str):
            problems.append(f"invalid/{name}: no entry {{\"field\": ..., \"rule\": ...}} in expectations.json")
            continue
        example = load_json(path)
        value, problem = schema_for(path, example)
        if problem:
            problems.append(problem)
            continue
        invalid_count += 1
        errors = list(schemas[value][1].iter_errors(example))
        if not errors:
            problems.append(f"invalid/{name}: accepted by {schemas[value][0]}, expected a violation at "
                            f"'{expected['field']}' ({expected['rule']})")
            continue
        for error in errors:
            fields = error_fields(error)
            if expected["field"] not in fields:
                problems.append(f"invalid/{name}: rejected by {schemas[value][0]} for another field "
                                f"({', '.join(sorted(fields)) or '(root)'}: {error.message}), "
                                f"expected only '{expected['field']}'")

    if problems:
        for problem in problems:
            print(problem)
        print(f"schema checks failed: {len(problems)} problem(s)")
        return 1
    print(f"schema checks passed: {len(schemas)} schemas, {valid_count} valid and {invalid_count} invalid examples")
    return 0


if __name__ == "__main__":
    sys.exit(main())
