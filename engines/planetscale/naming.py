"""Names the engine derives from the operation's context, which make `apply` idempotent.

The context of a Vitess apply is its apply id (`apply-<hex>`). The branch is `sb-<hex>` (a
valid PlanetScale branch name: lowercase letters, digits, dashes), so every owner of the apply,
even one that lost the resume state, lands on the same branch. Deploy requests carry the context
in their notes, which is how an owner finds the one it opened when the answer to "create" was
lost.
"""

from __future__ import annotations

import hashlib
import re

TAG_KEY = "schemabot-apply"
_TAG = re.compile(rf"^{TAG_KEY}:\s*(\S+)\s*$", re.MULTILINE)
_APPLY_ID = re.compile(r"^apply-([0-9a-f]{1,58})$")


def branch_name(context: str) -> str:
    match = _APPLY_ID.match(context.lower())
    if match:
        return f"sb-{match.group(1)}"
    # Any other context still maps to one stable, valid name.
    return "sb-" + hashlib.sha256(context.encode()).hexdigest()[:32]


def deploy_request_notes(context: str) -> str:
    return (
        f"Opened by schemabot for {context}; schemabot drives and adopts it by this tag.\n\n"
        f"{TAG_KEY}: {context}\n"
    )


def tagged_context(notes: str | None) -> str | None:
    match = _TAG.search(notes or "")
    return match.group(1) if match else None
