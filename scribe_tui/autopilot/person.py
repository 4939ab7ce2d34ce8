"""What a person's message asks of the autopilot, negations included.

"Try the logit lens" moves the lens forward; "skip the prefill" or "don't bother
with persona sampling" drops that experiment instead of running it first.
"""

from __future__ import annotations

import re

# Words in a person's message that map to an experiment the autopilot can run.
REDIRECT_KEYWORDS = {
    "prefill": ("prefill", "pre-fill", "start its answer"),
    "persona": ("persona", "user turn", "user's turn"),
    "logit_lens": ("logit lens", "logit-lens", "lens", "residual", "white-box", "white box"),
    "base_diff": ("base model", "diff", "fine-tun", "before training"),
    "direct": ("ask directly", "direct question"),
    "explore": ("hint", "temperature", "ordinary request", "sample more"),
    "scan": ("scan", "trigger"),
    "behaviour": ("behaviour", "behavior"),
    "falsify": ("falsif", "head to head", "head-to-head"),
}
CONCLUDE_WORDS = ("conclude", "wrap up", "finish", "stop now", "final answer")
_NEGATION = re.compile(
    r"\b(skip|skipping|don'?t|do not|no|not|never|without|avoid|stop|drop|instead of|"
    r"enough of|forget)\b"
)
_CLAUSE = re.compile(r"[.;!?,]|\bbut\b|\bthen\b|\band\b")


def requested(message: str) -> tuple[list[str], list[str], bool]:
    """(experiments asked for, experiments declined, whether to conclude now).

    An experiment's keyword with a negation before it in the same clause declines it.
    """
    wanted: list[str] = []
    unwanted: list[str] = []
    lowered = message.lower()
    for clause in _CLAUSE.split(lowered):
        for step, words in REDIRECT_KEYWORDS.items():
            spots = [clause.find(w) for w in words if w in clause]
            if not spots:
                continue
            negated = _NEGATION.search(clause[: min(spots)]) is not None
            target = unwanted if negated else wanted
            if step not in target:
                target.append(step)
    wanted = [s for s in wanted if s not in unwanted]
    conclude = any(w in lowered for w in CONCLUDE_WORDS)
    return wanted, unwanted, conclude


def acknowledgement(said: str, done: list[str], plan: tuple[str, ...]) -> str:
    """A markdown note quoting the person and saying what the autopilot will do about it."""
    wanted, unwanted, conclude = requested(said)
    wanted = [s for s in wanted if s in plan]
    unwanted = [s for s in unwanted if s in plan]
    parts = []
    if conclude:
        parts.append("I will write up the evidence so far and conclude now.")
    todo = [s for s in wanted if s not in done]
    if todo:
        parts.append(f"I will run {', '.join(todo)} next.")
    if [s for s in wanted if s in done]:
        ran = ", ".join(s for s in wanted if s in done)
        parts.append(f"{ran} already ran above; I will weigh it in the conclusion.")
    if unwanted:
        parts.append(f"I will skip {', '.join(unwanted)}, as asked.")
    if not parts:
        parts.append(
            "The autopilot cannot act on free-text requests beyond its repertoire "
            f"({', '.join(plan)}); noted here, and I continue with the plan."
        )
    quoted = "\n".join(f"> {line}" for line in said.splitlines() or [""])
    return f"### Message from the person\n\n{quoted}\n\n{' '.join(parts)}"
