"""ALFWorld's world-state keys (agentic-rl.md §3.5.4): what the observation text leaves out."""

from __future__ import annotations

import repro.studies.graphgpo  # noqa: F401  (registers alfworld_tracked)
from repro.envs.alfworld_state import AlfworldState, AlfworldStateTracker
from repro.registry import STATE_KEYS

ARRIVE = "You arrive at sinkbasin 1. On the sinkbasin 1, you see a pot 1."
ADMISSIBLE = ["clean tomato 1 with sinkbasin 1", "examine sinkbasin 1", "go to countertop 1", "inventory", "look"]


def _play(tracker, i, steps):
    for action, obs in steps:
        tracker.update(i, action, obs)


def test_same_observation_different_world_states_get_different_keys():
    """At the sink with a dirty tomato and, later, with the tomato cleaned: the same observation
    text and admissible actions (a real embedded ALFWorld episode), two world states."""
    keys = STATE_KEYS.get("alfworld_tracked")(2)
    to_sink = [("take tomato 1 from fridge 1", "You pick up the tomato 1 from the fridge 1."),
               ("go to sinkbasin 1", ARRIVE)]
    _play(keys, 0, to_sink)
    _play(keys, 1, to_sink + [("clean tomato 1 with sinkbasin 1", "You clean the tomato 1 using the sinkbasin 1."),
                              ("go to countertop 1", "You arrive at countertop 1. On the countertop 1, you see nothing."),
                              ("go to sinkbasin 1", ARRIVE)])
    a, b = keys.key(0, ARRIVE, ADMISSIBLE), keys.key(1, ARRIVE, ADMISSIBLE)
    assert a != b and "cleaned" in b and "cleaned" not in a
    # the raw-observation keys (GiGPO's anchors) cannot tell them apart
    raw = STATE_KEYS.get("observation")(2)
    assert raw.key(0, ARRIVE, ADMISSIBLE) == raw.key(1, ARRIVE, ADMISSIBLE)


def test_tracker_updates_only_when_the_action_did_something():
    s = AlfworldState()
    s.update("go to fridge 1", "You arrive at fridge 1. The fridge 1 is closed.")
    s.update("take apple 1 from fridge 1", "Nothing happens.")
    assert (s.location, s.holding) == ("fridge 1", None)
    s.update("take egg 2 from fridge 1", "You pick up the egg 2 from the fridge 1.")
    s.update("heat egg 2 with microwave 1", "Nothing happens.")
    assert s.holding == "egg 2" and not s.processed
    s.update("go to microwave 1", "You arrive at microwave 1. The microwave 1 is closed.")
    s.update("heat egg 2 with microwave 1", "You heat the egg 2 using the microwave 1.")
    s.update("move egg 2 to countertop 1", "You move the egg 2 to the countertop 1.")
    assert s.holding is None and s.processed == {"egg 2": {"heated"}} and s.moved == {"egg 2": "countertop 1"}
    assert s.text() == "at microwave 1, holding nothing | egg 2: heated,in countertop 1"


def test_key_holds_observation_state_and_sorted_admissible_actions():
    t = AlfworldStateTracker(1)
    t.update(0, "go to countertop 1", "You arrive at countertop 1.")
    assert t.key(0, "obs", ["look", "examine x"]) == "obs | at countertop 1, holding nothing |  | examine x,look"
