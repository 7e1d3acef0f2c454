"""The import map: arrows point one way (pages -> ui -> core; inside core lessons / drawing / tuning -> store ->
engine), with no circle. Every import in a file counts, lazy ones inside functions too: a lazy import is still
a dependency, only a later one."""
import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def imports(folder: str) -> dict[str, set[str]]:
    """Module -> the modules it imports (any package), for every .py file under `folder`."""
    graph: dict[str, set[str]] = {}
    for p in (ROOT / folder).rglob("*.py"):
        mod = ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        pkg = mod if p.name == "__init__.py" else mod.rsplit(".", 1)[0]
        found: set[str] = set()
        for n in ast.walk(ast.parse(p.read_text())):
            if isinstance(n, ast.Import):
                found |= {a.name for a in n.names}
            elif isinstance(n, ast.ImportFrom):
                base = n.module or ""
                if n.level:
                    parts = pkg.split(".")
                    base = ".".join(parts[: len(parts) - n.level + 1] + ([base] if base else []))
                found |= {base} | {f"{base}.{a.name}" for a in n.names}
        graph[mod] = found
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    edges = {m: {t for t in ts if t in graph and t != m} for m, ts in graph.items()}
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in edges:
        if v not in index:
            visit(v)
    return out


def test_the_circle_finder_finds_a_circle():
    """Guards the guard: a finder that returns nothing would pass every tree."""
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_no_circle_in_core():
    assert circles(imports("core")) == []


def test_arrows_point_one_way():
    """core never imports ui, pages or streamlit; ui never imports pages."""
    core, ui = imports("core"), imports("ui")
    bad = {m: sorted(t for t in ts if t.split(".")[0] in ("ui", "pages", "streamlit", "streamlit_drawable_canvas"))
           for m, ts in core.items()}
    assert {m: ts for m, ts in bad.items() if ts} == {}
    assert {m: sorted(t for t in ts if t.split(".")[0] == "pages") for m, ts in ui.items()
            if any(t.split(".")[0] == "pages" for t in ts)} == {}


def test_inside_core_the_floors_point_down():
    """engine imports nothing of store / lessons / drawing / tuning; store nothing of lessons / drawing / tuning."""
    above = {"core.engine": ("core.store", "core.lessons", "core.drawing", "core.tuning"),
             "core.store": ("core.lessons", "core.drawing", "core.tuning")}
    wrong = {m: sorted(t for t in ts if t.startswith(above[floor]))
             for m, ts in imports("core").items() for floor in above if m.startswith(floor + ".")}
    assert {m: ts for m, ts in wrong.items() if ts} == {}


def test_import_core_loads_no_heavy_optional_library():
    """`import core` (every entry point does it) loads neither streamlit nor Keras, JAX, Optuna or Ray: they load
    when a page, a Keras run, a study or the Ray executor needs them."""
    code = ("import sys, core, core.store.runs, core.engine.executor, core.tuning.study, core.lessons.batchnorm\n"
            "print(sorted(m for m in ('streamlit', 'keras', 'jax', 'optuna', 'ray') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_ui_imports_pandas_whole_before_any_page_draws_a_chart():
    """Catches a page's plotly chart seeing pandas half-imported by another session's thread (plotly reads
    sys.modules["pandas"] without importing it): `import ui`, which every session does first, must leave pandas
    complete, not merely begun or absent."""
    code = ("import sys; import ui; import _plotly_utils.basevalidators as v, numpy as np\n"
            "print(hasattr(sys.modules.get('pandas'), 'Series'), v.is_homogeneous_array(np.arange(3)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True"]
