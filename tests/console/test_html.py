"""The escaping layer, the live view's fan-out, and learning progress."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gadgetwatch.console import profiles as profile_pages
from gadgetwatch.console.app import LIVE_QUEUE, ConsoleState, Subscriber, _publish
from gadgetwatch.console.html import Markup, clip, escape, join, link, render
from gadgetwatch.console.security import Auth
from gadgetwatch.console.store import AlertFilter, AlertStore, row_of
from profiler.identity import WorkloadKey
from profiler.profiles import Profile, ProfileMeta
from profiler.status import ProfileStatus
from tests.console.helpers import alert


def test_values_are_escaped_unless_markup() -> None:
    page = render("<p title='{t}'>{v}</p>{m}", t="a'b\"c", v="<b>&amp;", m=Markup("<br>"))
    assert page == "<p title='a&#x27;b&quot;c'>&lt;b&gt;&amp;amp;</p><br>"
    assert join(["<i>", Markup("<hr>")], sep="|") == "&lt;i&gt;|<hr>"
    assert escape(None) == ""


def test_bidi_and_invisible_characters_become_visible_tokens() -> None:
    text = escape("a\u202eb\u2066c\u200bd\x1be")
    assert text == "a⟨U+202E⟩b⟨U+2066⟩c⟨U+200B⟩d\\x1be"


def test_clip_says_how_much_was_cut() -> None:
    assert clip("x" * 10, 20) == "x" * 10
    cut = clip("<" * 200, 160)
    assert cut.startswith("&lt;" * 160)
    assert cut.endswith('<span class="cut">…[40 more chars]</span>')


def test_only_https_and_local_paths_become_links() -> None:
    assert link("/alerts/1", "x") == '<a href="/alerts/1">x</a>'
    assert link("https://attack.mitre.org/techniques/T1059/", "T").startswith("<a href=")
    for bad in ("javascript:alert(1)", "JAVASCRIPT:x", "data:text/html,x", "//evil.example/",
                "http://plain.example/", '/a"onmouseover="x'):  # fmt: skip
        assert "<a" not in link(bad, "<x>"), bad


async def test_live_rows_go_to_matching_viewers_and_slow_ones_are_counted(
    tmp_path: Path,
) -> None:
    state = ConsoleState(store=AlertStore(tmp_path / "a.db"), auth=Auth(token="t"), profiles=None)
    shop, other, slow = (
        Subscriber(AlertFilter(namespace="shop")),
        Subscriber(AlertFilter(namespace="other")),
        Subscriber(AlertFilter(), asyncio.Queue(1)),
    )
    state.subscribers.update((shop, other, slow))
    for i in range(3):
        _publish(state, row_of(alert(alert_id=f"a{i}", message="<b>hi</b>")))
    assert shop.queue.qsize() == 3
    assert other.queue.empty()
    assert slow.queue.qsize() == 1
    assert slow.overflowed
    assert state.live_skipped == 2
    row = shop.queue.get_nowait()
    assert 'data-id="a0"' in row
    assert "&lt;b&gt;hi&lt;/b&gt;" in row
    assert LIVE_QUEUE >= 100


def test_learning_progress_is_measured_in_the_profiles_own_time() -> None:
    key = WorkloadKey("shop", "Deployment", "web", "app")
    minute = 60_000_000_000
    meta = ProfileMeta(
        status=ProfileStatus.LEARNING,
        learning_start_ns=10 * minute,
        learning_period_ns=4 * minute,
        updated_ns=13 * minute,
    )
    assert profile_pages.progress(Profile(key=key, meta=meta)) == 0.75
    done = ProfileMeta(status=ProfileStatus.COMPLETED)
    assert profile_pages.progress(Profile(key=key, meta=done)) == 1.0
