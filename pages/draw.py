"""Draw a digit: live classification on a canvas, with the preprocessing made visible."""
import ui  # noqa: F401 - first: on a fresh server's first request, switches to app.py's menu before torch loads
import streamlit as st

from core.engine import course
from core import WeightsError
from core.drawing.collection import DrawingsError, DrawingStore
from core.drawing.drawing_set import QUICK_MODEL
from core.drawing.predict import classify_non_digits, confident_shapes, predict_digit, saliency_map
from core.drawing.preprocess import preprocess
from ui import keys as K
from ui.data import data_check, data_notice
from ui.drawings import cell, drawing_accuracies, drawings_count, quick_train, waiting, waiting_notice
from ui.figures import bar_figure
from ui.links import Param, apply_link, flag, flag_text, link_box
from ui.my_drawings import my_drawings
from ui.registry import BROKEN, get_store, ordered_runs
from ui.session import viewer
from ui.tiles import GAP, TILE, preprocessing_strip, saliency_figure
from ui.fragment import fragment

from streamlit_drawable_canvas import st_canvas  # noqa: E402 - only importable inside a running page

st.title("Draw a digit")
store = get_store()
data = data_check(course.DATASET)  # quick-training needs it; drawing with a trained model does not
QUICK = QUICK_MODEL  # BatchNorm + the robust preset: trained to read drawings, not only MNIST's writers
CANVAS = 280  # px, square; its column is at least this wide from a 800 px window up (tests/browser/test_draw.py)
CANVAS_TOOLBAR = 36  # px above the canvas where streamlit-drawable-canvas puts its toolbar
TINY_INK = 0.002  # share of the canvas: below this a drawing is a dot, not a digit


@st.cache_resource(max_entries=6, show_spinner=False)
def cached_model(run_id: str, epochs_done: int):  # epochs_done: newer weights, new entry
    return store.load_model(run_id)


def usable_runs():
    return [r for r in store.list() if r.config.dataset == course.DATASET and r.snapshot.history and not r.live]


runs = usable_runs()
if not runs:
    st.info(f"No trained MNIST model yet. Train one that reads drawings (BatchNorm, robust preset, {QUICK.epochs} "
            "epochs), or use the Train page.")
    data_notice(data, "draw")
    quick_train(store, data, "Quick-train a model", primary=True, owner=viewer().owner)
    st.stop()

on_drawings = drawing_accuracies(store, runs)
labels = {r.id: f"{r.name} · test {r.snapshot.final.test_acc:.2%} · drawings {cell(store, r, on_drawings[r.id])}"
          for r in runs}
# The default model is the one that reads drawings best (MNIST test accuracy breaks ties and stands in while
# a model is not measured), never a failed or diverged one while another is there; it follows newer, better
# models until the learner picks one.
best = max([r for r in runs if r.snapshot.status not in BROKEN] or runs,
           key=lambda r: (on_drawings[r.id] is not None, on_drawings[r.id] or 0.0, r.snapshot.final.test_acc)).id


def trained_model(text: str) -> str:
    if text not in labels:
        raise ValueError("no trained MNIST model with this id on this server")
    return text


LINK = [Param("model", K.DRAW_MODEL, trained_model), Param("compare", K.DRAW_COMPARE, flag, flag_text),
        Param("second_model", K.DRAW_COMPARE_MODEL, trained_model)]
apply_link("draw", LINK)
chosen_before = st.session_state.get(K.DRAW_MODEL)
if chosen_before not in labels or chosen_before == st.session_state.get(K.DRAW_DEFAULT_MODEL):
    st.session_state[K.DRAW_MODEL] = best
st.session_state[K.DRAW_DEFAULT_MODEL] = best
c1, c2 = st.columns([3, 2])
model_id = c1.selectbox("Model", list(labels), key=K.DRAW_MODEL, format_func=labels.get)
chosen = store.get(model_id)
c1.markdown(f"On drawings: **{cell(store, chosen, on_drawings[model_id])}** of {drawings_count():,} MNIST test digits "
            f"redrawn as mouse strokes on this canvas and preprocessed like yours · MNIST test: "
            f"{chosen.snapshot.final.test_acc:.2%}", help="Each test digit is thinned to its centre line and drawn "
            "again with one stroke width at a random size, place, slant and thickness (core/drawing/drawing_set.py).")
if waiting(store, runs):
    with c1:
        waiting_notice(store)
if not any(r.config.robust for r in runs):
    with c1:
        st.caption("None of these models trained with the robust preset, which teaches a model to read drawings.")
        data_notice(data, "draw")
        quick_train(store, data, "Quick-train a model for drawings", primary=False, owner=viewer().owner)
compare = c2.toggle("Compare with a second model (e.g. BN vs no-BN)", key=K.DRAW_COMPARE)
other_id = None
if compare:
    others = [i for i in labels if i != model_id]
    if others:
        # default: the learner's own run with the other BN setting (never a lab run that failed or diverged first)
        pick = next((r.id for r in ordered_runs(runs) if r.id != model_id and r.snapshot.status not in BROKEN
                     and r.config.batch_norm != store.get(model_id).config.batch_norm), others[0])
        if st.session_state.get(K.DRAW_COMPARE_MODEL) not in others:  # the first model now, or gone
            st.session_state.pop(K.DRAW_COMPARE_MODEL, None)
        other_id = c2.selectbox("Second model", others, index=others.index(pick), key=K.DRAW_COMPARE_MODEL,
                                format_func=labels.get)
    else:
        c2.caption("Train a second model to compare.")
link_box(LINK, c2)

try:
    models = {i: cached_model(i, store.get(i).snapshot.epoch) for i in filter(None, [model_id, other_id])}
except WeightsError as e:
    st.error(str(e))
    st.stop()
st.session_state.setdefault(K.DRAW_CANVAS_N, 0)


def draw_prediction(title: str, pred) -> None:
    st.markdown(f"**{title}: {pred.top}** with {pred.confidence:.1%} confidence")
    st.caption("Logits: " + "  ".join(f"{d}: {v:+.2f}" for d, v in enumerate(pred.logits)))
    if unsure := pred.uncertainty():
        st.warning(unsure)
    colors = ["#1f77b4" if d != pred.top else "#d62728" for d in range(10)]
    st.plotly_chart(bar_figure([str(d) for d in range(10)], pred.probs, "Probabilities", colors=colors, fmt=".1%",
                               yrange=(0, 1.15), percent=True), key=f"draw_probs_{title}", width="stretch")


@fragment  # a stroke reruns only this part of the page
def canvas_and_prediction() -> None:
    left, right = st.columns([1, 1])
    with left:
        st.session_state.setdefault(K.DRAW_STROKE, 18)
        n = st.session_state[K.DRAW_CANVAS_N]
        st.space(CANVAS_TOOLBAR)  # the canvas draws its toolbar just above itself: give it room of its own
        result = st_canvas(stroke_width=st.session_state[K.DRAW_STROKE], stroke_color="#000000", background_color="",
                           height=CANVAS, width=CANVAS, drawing_mode="freedraw", update_streamlit=True,
                           return_image_data=True, key=f"{K.DRAW_CANVAS}{n}")
        with st.container(horizontal=True, vertical_alignment="bottom", gap="medium"):  # Clear keeps its whole label
            if st.button("Clear", key=K.DRAW_CLEAR, icon=":material/ink_eraser:"):
                st.session_state[K.DRAW_CANVAS_N] = n + 1  # a new key mounts a fresh, empty canvas
                st.rerun(scope="fragment")
            st.slider("Stroke width", 6, 40, key=K.DRAW_STROKE, width="stretch")
        naive = st.toggle("Naive resize instead (whole canvas squashed to 28x28)", key=K.DRAW_NAIVE)
    image = None if result is None else result.image_data
    try:
        pre = None if image is None else preprocess(image)
    except ValueError as e:  # not an image the canvas could have sent: say what is wrong with it
        right.error(f"This drawing cannot be read: {e}")
        return
    with right:
        if pre is None or pre.blank:
            st.info("Draw a digit on the canvas (one stroke is enough to start).")
            return
        if pre.not_a_digit:
            st.warning(f"This does not look like a digit: {pre.not_a_digit}. No answer is shown, because the model "
                       "would give one for anything (see *What confidence cannot tell* below).")
            return
        preds = {i: predict_digit(m, pre.model_input(naive=naive)) for i, m in models.items()}
        if pre.ink_fraction < TINY_INK:
            st.warning("That is a very small scribble: the 20 px scaling blows it up, so expect a guess.")
        for i, pred in preds.items():
            draw_prediction("Prediction" if i == model_id else "Second model", pred)
        st.caption("Confidence is not a digit detector: the ten probabilities always add up to 100%, so a drawing "
                   "that is no digit at all can still get a confident answer (the button under *What confidence "
                   "cannot tell* shows which shapes do with this model).")
        sal = saliency_map(models[model_id], pre.model_input(naive=naive))
        c1, c2 = st.columns([3, 2])
        c1.plotly_chart(saliency_figure(pre.naive if naive else pre.centered, sal), key="draw_saliency",
                        width="stretch", config={"displayModeBar": False})
        c2.caption("Saliency: how much each input pixel moves the winning logit, as a share of the pixel that "
                   "moves it most (colour scale beside it); the blue line outlines the ink.")
    st.markdown("**What the model sees**, white ink on black as in MNIST. Steps 3-6 are in model pixels, all at "
                "one scale with a grid; + marks the digit's centre of mass, o the pixel (14, 14) where MNIST puts it.")
    tiles, captions = preprocessing_strip(pre, naive)
    st.image(tiles, caption=captions, width=TILE + GAP)
    with st.expander("Save this drawing to my collection"):
        label = st.number_input("Which digit did you draw?", 0, 9, key=K.DRAW_LABEL)
        if st.button("Save", key=K.DRAW_SAVE):
            try:
                DrawingStore().save(image, pre.naive if naive else pre.centered, int(label))
                st.success(f"Saved as a {int(label)}.")
            except DrawingsError as e:
                st.error(str(e))


canvas_and_prediction()

st.subheader("What confidence cannot tell")
st.markdown("Softmax confidence cannot tell a non-digit from a digit: the model was trained only on digits and must "
            "share 100% among them. Classify shapes that are no digit at all with the selected model:")
if st.button("Classify shapes that are no digit at all", key=K.DRAW_NON_DIGITS):
    readings = classify_non_digits(models[model_id], naive=bool(st.session_state.get(K.DRAW_NAIVE)))
    cols = st.columns(len(readings))
    for col, r in zip(cols, readings):
        col.image(255 - r.pre.ink, width=96, caption=r.name)
        col.markdown(f"Model: **{r.prediction.top}** with {r.prediction.confidence:.1%} confidence")
        col.caption(f"The page's ink check: {r.pre.not_a_digit}." if r.pre.not_a_digit
                    else "The page's ink check lets it through: it would be shown as a digit.")
    st.markdown(confident_shapes(readings))

st.subheader("My drawings")
my_drawings(models[model_id])
