"""The engine's collector settings hold during a run and are the caller's again after it."""
import gc

import pytest

from cep.runtime.gcpolicy import YOUNG_THRESHOLD, engine_gc


def test_engine_gc_raises_the_young_threshold_and_restores_the_callers_settings():
    before = gc.get_threshold()
    with engine_gc():
        assert gc.get_threshold() == (YOUNG_THRESHOLD, *before[1:])
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_engine_gc_restores_the_settings_when_the_run_fails():
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), engine_gc():
        raise RuntimeError("a failing run")
    assert gc.get_threshold() == before


def test_engine_gc_leaves_a_callers_frozen_objects_frozen():
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with engine_gc():
            assert gc.get_freeze_count() == frozen
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()
