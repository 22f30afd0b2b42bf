"""The `engine_options` each engine accepts, as pydantic models checked at submit (type, range,
unknown key), so a bad knob is refused before anything is stored instead of failing, or being
silently clamped, in a worker (issue 10 §4).

An engine declares its model as `Engine.options_model`; the base class accepts no options. The
options reach the engine as `ApplyOptions.extra`, a JSON mapping (it crosses the state database);
the engine reads them back through its model with `read_options`, so inside the engine each knob
is a typed attribute with one default, not a dict key converted at every use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, ValidationError


class NoOptions(BaseModel):
    """An engine without knobs: any key is unknown."""

    model_config = ConfigDict(extra="forbid")


class SpiritOptions(NoOptions):
    chunk_rows: StrictInt | None = Field(default=None, ge=1, le=1_000_000)
    lock_wait_seconds: StrictInt | None = Field(default=None, ge=1, le=3600)
    cutover_lock_wait_seconds: StrictInt | None = Field(default=None, ge=1, le=60)
    # The copy's pace and checks (engines/spirit/README.md): a chunk checksummed behind the copy,
    # and throttling on replica lag (replicas named on the DSN, ?replica=) and Threads_running.
    trailing_checksum: StrictBool | None = None
    max_replica_lag_seconds: StrictInt | StrictFloat | None = Field(default=None, gt=0, le=86_400)
    max_threads_running: StrictInt | None = Field(default=None, ge=1, le=100_000)
    # Parallel copy lanes (engines/spirit/lanes.py): "auto" (the default) or a number; one lane
    # wherever an AUTO-INC lock would serialise them, whatever is asked.
    copy_lanes: Annotated[StrictInt, Field(ge=1, le=16)] | Literal["auto"] | None = None
    # What keeps the shadow current (engines/spirit/binlogsource.py): `auto` takes the binary
    # log when the server and the table allow it, else triggers.
    change_source: Literal["auto", "triggers", "binlog"] | None = None
    # When the deferred secondary indexes are built (engines/spirit/earlybuild.py): the share of
    # the table copied, 0 to 1, or "auto" (when the build and the rest of the copy would end
    # together); by default after the copy.
    index_build_at: Annotated[StrictInt | StrictFloat, Field(ge=0, le=1)] | Literal["auto"] | None = None


class PlanetScaleOptions(NoOptions):
    instant_ddl: StrictBool | None = None
    defer_deploy: StrictBool | None = None


class DirectOptions(NoOptions):
    pass


class OptionsError(ValueError):
    """The options do not fit the engine's model; the message names each bad key."""


Options = TypeVar("Options", bound=BaseModel)


def read_options(model: type[Options], extra: Mapping[str, Any]) -> Options:
    """The engine's options from `ApplyOptions.extra`, as the model's typed attributes.

    Not validated again: `check_options` did that at submit, and an engine called directly (the
    engine tests, the benchmarks) may pass values outside the submit limits on purpose, e.g.
    `max_threads_running=0` to force throttling. Keys the model does not know (an apply submitted
    by an older version) are left out rather than failing work in flight; absent knobs are None,
    so the engine's own default applies.
    """
    known = {key: value for key, value in extra.items() if key in model.model_fields}
    return model.model_construct(**known)


def check_options(
    engine: str, model: type[BaseModel], options: Mapping[str, Any]
) -> dict[str, Any]:
    """The options as the engine will read them, or OptionsError saying what is wrong."""
    if not isinstance(options, Mapping):
        raise OptionsError("engine_options must be an object of name: value")
    try:
        checked = model.model_validate(dict(options))
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            key = ".".join(str(p) for p in error["loc"]) or "(options)"
            if error["type"] == "extra_forbidden":
                known = ", ".join(model.model_fields) or "none"
                problems.append(f"unknown option {key!r} (the {engine} engine takes: {known})")
            else:
                problems.append(f"{key}: {error['msg']} (got {error.get('input')!r})")
        raise OptionsError(f"engine_options for {engine}: " + "; ".join(problems)) from None
    return checked.model_dump(exclude_none=True)


__all__ = [
    "DirectOptions",
    "NoOptions",
    "OptionsError",
    "PlanetScaleOptions",
    "SpiritOptions",
    "check_options",
    "read_options",
]
