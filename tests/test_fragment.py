"""ui/fragment.py: every fragment sits in a container the page run creates, so that Streamlit dropping a fragment's
queued deltas cannot move the elements after it (the white tab of benchmarks/bench_class.py, case C)."""
import ast
from pathlib import Path

from streamlit.runtime.forward_msg_queue import ForwardMsgQueue
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent


def page_with_a_fragment(plain: bool = False) -> None:
    import streamlit as st

    from ui.fragment import fragment

    wrap = st.fragment if plain else fragment

    @wrap
    def live() -> None:
        st.write("inside")

    st.write("before")
    live()
    st.write("after")


def full_run_messages(plain: bool) -> list:
    sent: list = []
    ForwardMsgQueue.on_before_enqueue_msg(sent.append)
    try:
        AppTest.from_function(page_with_a_fragment, args=(plain,)).run()
    finally:
        ForwardMsgQueue.on_before_enqueue_msg(None)
    return [m for m in sent if m.WhichOneof("type") == "delta"]


def survivors(plain: bool) -> tuple[set[tuple[int, ...]], tuple[int, ...]]:
    """What of a full run's deltas is left after Streamlit clears its queue for a preempted run of the fragment:
    (the delta paths left, the path of the element written after the fragment)."""
    deltas = full_run_messages(plain)
    fragment_id = next(m.delta.fragment_id for m in deltas if m.delta.fragment_id)
    after = next(tuple(m.metadata.delta_path) for m in deltas
                 if m.delta.WhichOneof("type") == "new_element" and m.delta.new_element.markdown.body == "after")
    queue = ForwardMsgQueue()
    for m in deltas:
        queue.enqueue(m)
    queue.clear(retain_lifecycle_msgs=True, fragment_ids_this_run=[fragment_id])
    return {tuple(m.metadata.delta_path) for m in queue.flush()}, after


def test_a_dropped_fragment_leaves_its_place_held():
    """The fragment's own block is dropped with its deltas; the container the page run made for it stays, so the
    element after it keeps its place. Plain st.fragment (what the pages used before) leaves a gap: the browser
    closes it and the elements after the fragment move up one place."""
    left, after = survivors(plain=False)
    place = (*after[:-1], after[-1] - 1)
    assert place in left and after in left
    left_plain, after_plain = survivors(plain=True)
    assert (*after_plain[:-1], after_plain[-1] - 1) not in left_plain


def test_the_fragment_draws_inside_its_container():
    at = AppTest.from_function(page_with_a_fragment).run()
    before, holder, after = at.main.children.values()
    assert [before.value, after.value] == ["before", "after"]
    (block,) = holder.children.values()
    assert [c.value for c in block.children.values()] == ["inside"]


def test_no_page_uses_st_fragment_directly():
    """Every fragment of the app goes through ui/fragment.py (a new one written with @st.fragment would bring
    the white tab back)."""
    direct = []
    for p in [*ROOT.glob("*.py"), *(ROOT / "pages").glob("*.py"), *(ROOT / "ui").glob("*.py")]:
        if p.name == "fragment.py":
            continue
        for n in ast.walk(ast.parse(p.read_text())):
            if isinstance(n, ast.Attribute) and n.attr in ("fragment", "experimental_fragment") \
                    and isinstance(n.value, ast.Name) and n.value.id == "st":
                direct.append(f"{p.relative_to(ROOT)}:{n.lineno}")
    assert not direct
