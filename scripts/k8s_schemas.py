"""Turn the Kubernetes JSON schemas shipped in the `kubernetes-validate` wheel (PyPI) into
the standalone strict schema files kubeconform reads, offline.

The wheel carries, per Kubernetes minor version, the API's JSON schemas generated from the
official OpenAPI document: one file per type whose ``$ref``s point into a shared
``_definitions.json`` by absolute URL. kubeconform resolves nothing over the network here, so
each top-level kind's file is rewritten to carry the definitions it needs under its own
``$defs`` (refs become ``#/$defs/...``); the schemas' content is not changed.

Usage: python scripts/k8s_schemas.py WHEEL OUTDIR VERSION...   (VERSION like v1.25.0)
Writes OUTDIR/<VERSION>-standalone-strict/<kind>-<group>-<version>.json, the layout of
kubeconform's default schema location.
"""

from __future__ import annotations

import json
import re
import sys
import zipfile
from pathlib import Path
from typing import Any

_ROOT = "kubernetes_validate/kubernetes-json-schema"
_EXTERNAL_REF = re.compile(r"^/api/_definitions\.json#/\$defs/(.+)$")
_LOCAL_REF = re.compile(r"^#/\$defs/(.+)$")


def _refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            m = _EXTERNAL_REF.match(ref) or _LOCAL_REF.match(ref)
            if not m:
                raise ValueError(f"unexpected $ref {ref!r}")
            found.add(m.group(1))
        for value in node.values():
            _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)


def _rewrite(node: Any) -> Any:
    if isinstance(node, dict):
        out = {k: _rewrite(v) for k, v in node.items()}
        ref = out.get("$ref")
        if isinstance(ref, str):
            m = _EXTERNAL_REF.match(ref)
            if m:
                out["$ref"] = f"#/$defs/{m.group(1)}"
        return out
    if isinstance(node, list):
        return [_rewrite(v) for v in node]
    return node


def _closure(start: Any, defs: dict[str, Any]) -> dict[str, Any]:
    needed: dict[str, Any] = {}
    pending: set[str] = set()
    _refs(start, pending)
    while pending:
        name = pending.pop()
        if name in needed:
            continue
        if name not in defs:
            raise ValueError(f"definition {name!r} missing from _definitions.json")
        needed[name] = defs[name]
        more: set[str] = set()
        _refs(defs[name], more)
        pending |= more - needed.keys()
    return needed


def convert(wheel: Path, out_dir: Path, version: str) -> int:
    src = f"{_ROOT}/{version}-local-strict/"
    dest = out_dir / f"{version}-standalone-strict"
    dest.mkdir(parents=True, exist_ok=True)
    count = 0
    with zipfile.ZipFile(wheel) as zf:
        names = [n for n in zf.namelist() if n.startswith(src) and n.endswith(".json")]
        if not names:
            raise SystemExit(f"{wheel}: no schemas for Kubernetes {version}")
        defs: dict[str, Any] = json.loads(zf.read(src + "_definitions.json"))["$defs"]
        for name in names:
            base = name[len(src):]
            if base in ("_definitions.json", "all.json"):
                continue
            schema = json.loads(zf.read(name))
            # Only top-level API kinds are looked up by kubeconform.
            if "x-kubernetes-group-version-kind" not in schema:
                continue
            standalone = _rewrite(schema)
            standalone["$defs"] = _rewrite(_closure(schema, defs))
            (dest / base).write_text(json.dumps(standalone, separators=(",", ":")))
            count += 1
    return count


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    wheel, out_dir = Path(argv[0]), Path(argv[1])
    for version in argv[2:]:
        n = convert(wheel, out_dir, version)
        print(f"k8s_schemas: {n} kinds for Kubernetes {version} -> {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
