"""Fixtures: one real emulator process per test session (reset and seeded for each test), and
fresh ones for the tests that kill or restart the emulator itself."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.support.emulator_process import EmulatorProcess


@pytest.fixture(scope="session")
def shared_emulator() -> Iterator[EmulatorProcess]:
    emulator = EmulatorProcess()
    try:
        emulator.start()
        yield emulator
    finally:
        emulator.stop()
        emulator.drop_schemas()


@pytest.fixture
def emulator(shared_emulator: EmulatorProcess) -> EmulatorProcess:
    """The shared emulator, reset to main with the seeded schema and rows."""
    shared_emulator.reset()
    shared_emulator.seed()
    return shared_emulator


@pytest.fixture
def new_emulator() -> Iterator[Callable[..., EmulatorProcess]]:
    """A factory of emulators of one's own (for restart and kill tests)."""
    made: list[EmulatorProcess] = []

    def make(**kwargs: object) -> EmulatorProcess:
        emulator = EmulatorProcess(**kwargs)  # type: ignore[arg-type]
        made.append(emulator)
        emulator.start()
        emulator.seed()
        return emulator

    yield make
    for emulator in made:
        emulator.stop()
        emulator.drop_schemas()
