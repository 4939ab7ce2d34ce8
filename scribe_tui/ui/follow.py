"""A scroll view that follows new content, as a terminal does, unless the person scrolled up."""

from __future__ import annotations

from textual.containers import VerticalScroll
from textual.geometry import Size


class FollowScroll(VerticalScroll):
    """Anchors to the bottom only once content overflows.

    Textual's anchor bottom-aligns short content (chat style); a notebook reads
    top-down, so the anchor is dropped in when the content first outgrows the
    view. From then on Textual releases it when the person scrolls up and
    restores it when they scroll back to the end.
    """

    def watch_virtual_size(self, size: Size) -> None:
        if not self.is_anchored and size.height > self.scrollable_content_region.height:
            self.anchor()
