"""The seed document's way of calling the library's seed-named techniques.

The seed prompt researchers copy from calls the prompt ``text``
(``client.run(logit_lens, text=..., layers=[0, 6, 12])``) and reads its own result
shapes. :func:`accepts_text` lets a technique be called that way as well, while the
signature the agent is shown stays the library's.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

F = TypeVar("F", bound=Callable[..., Any])


def accepts_text(seed_shape: Callable[[Any], Any] | None = None) -> Callable[[F], F]:
    """Let a ``fn(model, tokenizer, prompt, ...)`` also take the seed document's ``text=``.

    A call with ``text`` returns ``seed_shape(result)`` where given: what the seed
    document's own version of the technique returns.
    """

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def technique(
            model: Any, tokenizer: Any, *args: Any, text: str | None = None, **kwargs: Any
        ) -> Any:
            if text is None:
                return fn(model, tokenizer, *args, **kwargs)
            if args or "prompt" in kwargs:
                raise TypeError(
                    f"{fn.__name__}() got both prompt and text (the seed document's name for it)"
                )
            result = fn(model, tokenizer, text, **kwargs)
            return result if seed_shape is None else seed_shape(result)

        return cast(F, technique)

    return decorate
