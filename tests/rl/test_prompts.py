"""Prompt construction, memory and action parsing (agentic-rl.md §2.3–§2.4)."""

from __future__ import annotations

from repro.rl.prompts import Memory, build_prompt, parse_action, task_from_first_observation

FIRST = ("-= Welcome to TextWorld, ALFRED! =-\n\nYou are in the middle of a room. Looking quickly around "
         "you, you see a desk 1, a drawer 1, and a shelf 1.\n\nYour task is to: put some mug on desk.")


def test_task_text_is_after_marker():
    assert task_from_first_observation(FIRST) == "put some mug on desk."
    assert task_from_first_observation("no task here") == ""


def test_memory_renders_last_k_with_global_numbering():
    m = Memory()
    for i in range(4):
        m.add(f"o{i}", f"a{i}")
    text, k = m.fetch(2)
    assert k == 2
    assert text.splitlines() == ["[Observation 3: 'o2', Action 3: 'a2']", "[Observation 4: 'o3', Action 4: 'a3']"]
    assert m.fetch(0) == ("", 0)
    assert m.fetch(10)[1] == 4


def test_first_step_prompt_has_observation_and_actions_without_help():
    p = build_prompt(FIRST, ["go to desk 1", "help", "look"], "put some mug on desk.", Memory(), 2)
    assert "ALFRED Embodied Environment" in p
    assert "'go to desk 1', 'look'" in p and "'help'" not in p
    assert "<think>" in p and "<action>" in p
    assert "Prior to this step" not in p


def test_later_prompt_has_task_history_and_step_number():
    m = Memory()
    m.add("obs A", "go to desk 1")
    m.add("obs B", "open drawer 1")
    m.add("obs C", "look")
    p = build_prompt("obs D", ["look"], "put some mug on desk.", m, 2)
    assert "Your task is to: put some mug on desk." in p
    assert "already taken 3 step(s)" in p and "most recent 2 observations" in p
    assert "[Observation 2: 'obs B', Action 2: 'open drawer 1']" in p
    assert "'obs A'" not in p
    assert "You are now at step 4 and your current observation is: obs D" in p


def test_history_length_zero_uses_first_template():
    m = Memory()
    m.add("obs A", "look")
    assert "Prior to this step" not in build_prompt("obs B", ["look"], "t", m, 0)


def test_compact_style_keeps_fields_and_clips_observations():
    m = Memory()
    m.add("x" * 50, "look")
    p = build_prompt("y" * 50, ["look"], "find it", m, 2, think=False, style="compact", max_obs_chars=10)
    assert "task: find it" in p and "steps taken: 1" in p and "'look'" in p
    assert "x" * 11 not in p and "y" * 11 not in p and "y" * 10 in p
    assert "<think>" not in p


def test_parse_valid_action_lowercases_and_strips():
    assert parse_action("<think>hm</think><action> Go To Desk 1 </action>") == ("go to desk 1", True)


def test_parse_missing_tags_sends_tail_and_is_invalid():
    text = "I would like to go to the desk number one please"
    action, valid = parse_action(text)
    assert not valid and action == text.lower()[-30:]


def test_parse_missing_think_is_invalid_only_when_required():
    assert parse_action("<action>look</action>") == ("look", False)
    assert parse_action("<action>look</action>", require_think=False) == ("look", True)


def test_parse_cjk_is_invalid():
    assert parse_action("<think>想</think><action>look</action>")[1] is False


def test_a_benchmark_parser_may_keep_case_and_use_its_own_tag():
    from repro.rl.prompts import ActionParser

    assert ActionParser()("<think>x</think><ACTION> Go </ACTION>") == ("go", True)
    keep = ActionParser(tag="answer", lowercase=False, tail_chars=4)
    assert keep("<think>x</think><answer> \\boxed{X} </answer>") == ("\\boxed{X}", True)
    assert keep("no tags at All", require_think=False) == (" All", False)
