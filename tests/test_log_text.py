"""Text from messages and files is escaped and bounded before it reaches a log line."""

from __future__ import annotations

from models.log_text import loggable


def test_a_newline_cannot_forge_a_second_log_line() -> None:
    shown = loggable("wf\nINFO drumline.run: forged succeeded")
    assert "\n" not in shown
    assert shown.startswith("wf\\nINFO")


def test_terminal_escapes_and_lone_surrogates_are_escaped() -> None:
    assert loggable("a\x1b[31mb\ud800") == "a\\x1b[31mb\\ud800"


def test_long_text_is_cut_and_says_how_much() -> None:
    assert loggable("x" * 250, limit=200) == "x" * 200 + "...(+50 chars)"


def test_plain_names_are_unchanged_and_non_text_is_shown_by_repr() -> None:
    assert loggable("example-summaries.on-demand") == "example-summaries.on-demand"
    assert loggable(True) == "True"
