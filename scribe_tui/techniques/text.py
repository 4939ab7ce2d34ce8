"""Reading sampled text: content words, without stopwords and the question's own words.

Pure Python, for the notebook side: votes over samples count these words, so
"the" and "my", or the words of the question, do not drown the signal.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

STOPWORDS = frozenset(
    """a an the i me my mine you your yours he she it its we our they them their this that
    these those is are was were be been being am do does did have has had will would can
    could should may might must not no yes and or but if so as of to in on at by for with
    from about into over under up down out off than then there here what which who whom
    whose why how when where all any some each every both few more most other such only own
    same too very just also even still again ever never always please thanks thank sure
    okay well let lets tell say said word words secret hint hints clue guess answer question
    something thing things think know cannot give ask one try want nice way like near
    instead chance keep share reveal hidden sorry stays myself user assistant system""".split()
)


def content_words(text: str, exclude: Iterable[str] = ()) -> list[str]:
    """Lower-case alphabetic words of 3+ letters, minus stopwords and ``exclude``."""
    skip = STOPWORDS | {str(w).lower() for w in exclude}
    return [w for w in re.findall(r"[a-z]+", text.lower()) if len(w) > 2 and w not in skip]
