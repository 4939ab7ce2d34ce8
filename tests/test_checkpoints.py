"""Checkpoint bookkeeping: requested, answered, volunteered, awaiting a person."""

from __future__ import annotations

from scribe_tui.agent.checkpoints import CheckpointState, looks_like_checkpoint


def test_a_checkpoint_is_a_markdown_cell_whose_first_line_is_such_a_heading() -> None:
    assert looks_like_checkpoint("\n## Checkpoint\n\n**1. Tested so far**")
    assert looks_like_checkpoint("### Exploration checkpoint 2")
    assert not looks_like_checkpoint("## Plan\n\nI will write a checkpoint later.")
    assert not looks_like_checkpoint("Checkpoint without a heading")
    assert not looks_like_checkpoint("### Message from the person\n\n> try the lens")
    # The template's fields without its heading are a checkpoint all the same.
    assert looks_like_checkpoint("**1. Tested so far** — asks.\n\n**5. Decision** — continue")


def test_requests_come_every_n_experiments_and_volunteering_restarts_the_cycle() -> None:
    state = CheckpointState(every=3)
    state.check(2)
    assert not state.due
    state.check(3)
    assert state.due
    assert state.sent(3) == 1 and state.pending == 1
    assert state.answered("## Checkpoint", confirm=False) == 1 and state.pending is None
    assert state.volunteered(5, "## Checkpoint", confirm=True) == 2
    assert state.awaiting == 2
    state.check(7)
    assert not state.due  # one is awaiting a person; and only 2 experiments since
    assert state.decided(2) and state.awaiting is None
    state.check(8)
    assert state.due
