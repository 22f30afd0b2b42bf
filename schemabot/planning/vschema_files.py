"""VSchema files of a declarative schema directory (issue 13 §5), as SchemaBot keeps them:

    DIR/<keyspace>/vschema.json      the desired VSchema of that keyspace (one subdirectory each)
    DIR/vschema.json                 the one keyspace's, when the .sql files are at the top

A keyspace without the file keeps the VSchema it has. The file must hold one JSON object; anything
else is refused, naming the file, before the provider is asked anything (bad input: CLI exit 2,
HTTP 400). Only Vitess targets have VSchemas.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from schemabot.errors import ValidationError

VSCHEMA_FILE = "vschema.json"


def read_vschemas(path: str | Path, default_namespace: str | None) -> dict[str, dict[str, Any]]:
    """{keyspace: desired VSchema document} for every vschema.json of the directory."""
    root = Path(path)
    if not root.is_dir():
        raise ValidationError(f"schema directory {str(root)!r} does not exist")
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    top = root / VSCHEMA_FILE
    found: dict[str, Path] = {}
    if top.is_file():
        if subdirs:
            raise ValidationError(
                f"{top}: with one subdirectory per keyspace, put each keyspace's vschema.json in its "
                "subdirectory"
            )
        if not default_namespace:
            raise ValidationError(
                f"{top}: name its keyspace with --namespace (or use a subdirectory per keyspace)"
            )
        found[default_namespace] = top
    for sub in subdirs:
        if (sub / VSCHEMA_FILE).is_file():
            found[sub.name] = sub / VSCHEMA_FILE
    return {keyspace: _document(file) for keyspace, file in found.items()}


def _document(file: Path) -> dict[str, Any]:
    try:
        document = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValidationError(f"{file}: not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ValidationError(f"{file}: a VSchema must be a JSON object, not {type(document).__name__}")
    return document
