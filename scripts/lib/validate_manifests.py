#!/usr/bin/env python3
"""Validates every object of rendered Kubernetes manifests against the OpenAPI schemas of given
Kubernetes versions (kubernetes-validate's bundled schemas, strict: unknown fields are errors)
and custom resources against their CRDs' openAPIV3Schema (also strict where the CRD does not
preserve unknown fields). An object of a kind with no schema at all is an error, not a warning.

    validate_manifests.py --k8s 1.30 --k8s 1.33 --crd CRD.yaml... MANIFEST.yaml...

Run it with the interpreter of the venv scripts/lib/deploy-tools.sh makes (kubernetes-validate,
jsonschema, PyYAML). Prints one line per object and version; exit 1 when anything failed.
"""
import argparse
import copy
import sys

import jsonschema
import kubernetes_validate
import yaml


def strict_schema(schema):
    """A copy of a CRD schema that rejects unknown fields, as kubectl's strict field validation
    does, except where the CRD keeps them (x-kubernetes-preserve-unknown-fields)."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if not isinstance(node, dict):
            return
        if node.get("type") == "object" and "properties" in node \
                and not node.get("x-kubernetes-preserve-unknown-fields") \
                and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for key in ("properties", "patternProperties"):
            for child in node.get(key, {}).values():
                walk(child)
        for key in ("items", "additionalProperties", "not"):
            if isinstance(node.get(key), dict):
                walk(node[key])
        for key in ("allOf", "anyOf", "oneOf"):
            for child in node.get(key, []):
                walk(child)

    walk(schema)
    # metadata is the API server's ObjectMeta, which CRDs leave open.
    schema.setdefault("properties", {}).pop("metadata", None)
    schema["properties"]["metadata"] = {"type": "object"}
    schema["properties"].setdefault("apiVersion", {"type": "string"})
    schema["properties"].setdefault("kind", {"type": "string"})
    return schema


def load_crds(paths):
    crds = {}
    for path in paths:
        for doc in yaml.safe_load_all(open(path)):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = doc["spec"]["group"], doc["spec"]["names"]["kind"]
            for version in doc["spec"]["versions"]:
                schema = version["schema"]["openAPIV3Schema"]
                crds[(f"{group}/{version['name']}", kind)] = strict_schema(schema)
    return crds


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--k8s", action="append", required=True)
    ap.add_argument("--crd", action="append", default=[])
    ap.add_argument("manifests", nargs="+")
    args = ap.parse_args()
    crds = load_crds(args.crd)
    failed = objects = 0
    for path in args.manifests:
        for doc in yaml.safe_load_all(open(path)):
            if not doc:
                continue
            objects += 1
            name = f"{path}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
            key = (doc.get("apiVersion"), doc.get("kind"))
            if key in crds:
                errors = sorted(jsonschema.Draft7Validator(crds[key]).iter_errors(doc), key=str)
                for e in errors[:5]:
                    print(f"FAIL {name} against its CRD: {'.'.join(map(str, e.path))}: {e.message}")
                if errors:
                    failed += 1
                else:
                    print(f"ok   {name} against its CRD ({key[0]})")
                continue
            for version in args.k8s:
                try:
                    got = kubernetes_validate.validate(doc, version, strict=True)
                    print(f"ok   {name} against Kubernetes {version} (schema {got})")
                except kubernetes_validate.ValidationError as e:
                    failed += 1
                    print(f"FAIL {name} against Kubernetes {version}: "
                          f"{'.'.join(map(str, e.path))}: {e.message}")
                except kubernetes_validate.SchemaNotFoundError:
                    failed += 1
                    print(f"FAIL {name}: no schema for {key[0]} {key[1]} in Kubernetes {version} "
                          "and no CRD given")
    print(f"{objects} objects, {failed} failures, Kubernetes {', '.join(args.k8s)}, "
          f"{len(crds)} CRD versions")
    return 1 if failed or not objects else 0


if __name__ == "__main__":
    sys.exit(main())
