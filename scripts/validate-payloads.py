#!/usr/bin/env python3
"""Validates payload documents against docs/schemas with a real JSON Schema validator
(python-jsonschema, draft 2020-12, with format checks).

Each document's "schema" field ("ketenpost/TYPE/v1") picks its schema.
Usage: scripts/validate-payloads.py [--schemas DIR] [--valid FILE...] [--invalid FILE...] [--json]
Files after --valid must validate, files after --invalid must not. Prints one line per file
(or, with --json, one object with the failures) and exits 1 if any expectation fails.
Needs python3-jsonschema (Debian) or `pip install jsonschema`."""
import json, os, sys

import jsonschema

args = sys.argv[1:]
schemas_dir = os.path.join(os.path.dirname(__file__), "..", "docs", "schemas")
valid, invalid, as_json, mode = [], [], False, None
while args:
    a = args.pop(0)
    if a == "--schemas": schemas_dir = args.pop(0)
    elif a == "--valid": mode = valid
    elif a == "--invalid": mode = invalid
    elif a == "--json": as_json = True
    elif mode is not None: mode.append(a)
    else: sys.exit(f"unexpected argument {a}; see the usage at the top of this file")

schemas = {}
for name in sorted(os.listdir(schemas_dir)):
    if name.endswith(".schema.json"):
        with open(os.path.join(schemas_dir, name), encoding="utf-8") as f:
            schema = json.load(f)
        jsonschema.Draft202012Validator.check_schema(schema)
        schemas[schema["$id"]] = schema

def validator(schema):
    try:  # jsonschema >= 4.18
        from referencing import Registry, Resource
        registry = Registry().with_resources((uri, Resource.from_contents(s)) for uri, s in schemas.items())
        return jsonschema.Draft202012Validator(schema, registry=registry, format_checker=jsonschema.FormatChecker())
    except ImportError:  # Debian 12's 4.10
        resolver = jsonschema.RefResolver.from_schema(schema, store=schemas)
        return jsonschema.Draft202012Validator(schema, resolver=resolver, format_checker=jsonschema.FormatChecker())

def errors(path):
    with open(path, encoding="utf-8") as f:
        document = json.load(f)
    kind = document.get("schema", "") if isinstance(document, dict) else ""
    parts = kind.split("/")
    uri = f"urn:ketenpost:schema:{parts[1]}" if len(parts) == 3 and parts[0] == "ketenpost" else None
    if uri not in schemas:
        return [f"schema: no schema for {kind!r}"]
    found = validator(schemas[uri]).iter_errors(document)
    return sorted(f"{'.'.join(str(p) for p in e.absolute_path) or '(document)'}: {e.message[:200]}" for e in found)

failures = {}
for path in valid:
    e = errors(path)
    if e: failures[path] = {"expected": "valid", "errors": e}
for path in invalid:
    if not errors(path): failures[path] = {"expected": "invalid", "errors": []}
if as_json:
    print(json.dumps({"checked": len(valid) + len(invalid), "schemas": sorted(schemas), "failures": failures}))
else:
    for path in valid + invalid:
        print(("FAIL " if path in failures else "ok   ") + path + ("" if path not in failures else f": {failures[path]}"))
sys.exit(1 if failures else 0)
