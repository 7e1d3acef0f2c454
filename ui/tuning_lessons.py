"""The Tuning lab's lessons, one function each (pages/tuning.py opens one at a time): each states what it shows,
starts its studies, and draws their results live while they run."""
from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from typing import Callable

import streamlit as st

from core.lessons import tuning as T
from core.tuning.space import DEFAULT_SPACE, tunable_dimensions
from core.tuning.study import PRUNERS, Tuner, make_spec
from core.store.runs import RunStore
from ui import keys as K
from ui.tuning import (draws, gvr_results, region_scatter, sample_histogram, status_line, stop_resume, study_view,
                       trials_scatter)
from ui.predict import attach, predict_box
from ui.session import viewer
from ui.tuning import GVR_ASKED, gvr_reveal
from ui.fragment import fragment


@dataclass(frozen=True)
class Lab:
    """What every lesson needs: the studies, the runs, this machine's pace (None while MNIST is not on disk:
    nothing can train then) and the budget chosen at the top of the page."""
    tuner: Tuner
    store: RunStore
    pace: T.Pace | None
    epochs: int
    max_batches: int | None
    blocked_help: str | None
    owner: str = ""  # who starts the studies (class mode): their trials are that learner's runs

    @property
    def off(self) -> dict:
        """For every button that starts trials."""
        return {"disabled": self.pace is None, "help": self.blocked_help}

    def duration(self, specs) -> str:
        """The time these studies' trials take here, from the measured pace."""
        if self.pace is None:
            return "a time measured once MNIST is on disk"
        return about(sum(T.estimate_seconds(s, self.pace) for s in specs))

    def start_group(self, specs: dict, prefix: str, training_seed: bool = False) -> str:
        """The lesson's studies, started together; a new sampler seed each time (kept in the specs), so running a
        lesson again is another draw, not a replay; `training_seed`: new initial weights and batch order too."""
        token = uuid.uuid4().hex[:6]
        group, seed = f"{prefix}-{token}", int(token, 16)
        for key, spec in specs.items():
            self.tuner.create(f"{group}-{key}", replace(T.reseeded(spec, seed) if training_seed else spec, group=group,
                                                        seed=seed, owner=self.owner))
        return group

    def newest_group(self, lessons: tuple[str, ...], chosen_key: str) -> dict[str, str] | None:
        """{lesson: study name} of the chosen (else newest) group of these lessons' studies."""
        groups: dict[str, dict[str, str]] = {}
        for name, spec in reversed(self.tuner.specs()):  # oldest first: a group's studies in the order they were made
            if spec.lesson in lessons and spec.group:
                groups.setdefault(spec.group, {})[spec.lesson] = name
        if not groups:
            return None
        chosen = st.session_state.get(chosen_key)
        return groups[chosen] if chosen in groups else list(groups.values())[-1]

    def points(self, name: str, x: Callable[[dict], float]) -> list:
        study, spec = self.tuner.open(name)
        return [(x(r.params), r) for r in T.trial_rows(study, self.store) if r.params]

    def best_text(self, name: str, param: str) -> str:
        study, _ = self.tuner.open(name)
        best = T.best_row(T.trial_rows(study))
        return f"best {best.accuracy:.2%} at {param} {best.params[param]:.3g}" if best else "no result yet"

    def live_panel(self, names: list[str], key: str, draw: Callable[[], None]) -> None:
        """Draw a lesson's results, once a second while any of its studies runs here."""
        live = any(self.tuner.running(n) for n in names)

        @fragment(run_every=1.0 if live else None)
        def panel() -> None:
            for n in names:
                study, spec = self.tuner.open(n)
                st.markdown(status_line(self.tuner, n, spec, T.trial_rows(study)))
            stop_resume(self.tuner, names, key, can_resume=self.pace is not None)
            draw()
            if live and not any(self.tuner.running(n) for n in names):
                st.rerun(scope="app")  # stop polling

        panel()


def about(seconds: float) -> str:
    return f"about {seconds:.0f} s" if seconds < 90 else f"about {seconds / 60:.1f} min"


def grid_vs_random(lab: Lab) -> None:
    st.markdown("Two parameters, one of which barely matters (Adam's ε), and a budget of 9 trials. A 3 x 3 grid "
                "tries each learning rate three times, with different values of ε; random search tries 9 different "
                "learning rates, so it is likelier to land near the best one when the grid's three miss it. Whether "
                "it does in one experiment is partly luck, and depends on where the grid's values fall: each "
                "experiment starts from new seeds, and repeating it measures how often random search wins here.")
    specs = T.grid_vs_random(lab.epochs, lab.max_batches)
    st.caption(f"18 trials, one at a time: {lab.duration(specs.values())} on this machine.")
    who = viewer()
    predict_box("tuning", GVR_ASKED, who, key="tuning_gvr")
    if st.button("Run grid and random search", key=K.TUNE_GVR_START, type="primary", **lab.off):
        st.session_state[K.TUNE_GVR_GROUP] = lab.start_group(specs, "grid-vs-random", training_seed=True)
        attach("tuning", who, st.session_state[K.TUNE_GVR_GROUP], GVR_ASKED)
    finished, running = gvr_results(lab.tuner)
    st.markdown(T.GvrTally(tuple(finished)).words())
    if len(running) > 2 and st.button(f"Stop all {len(running) // 2} repetitions", key=K.TUNE_GVR_STOP_ALL):
        for n in running:
            lab.tuner.stop(n)
    c1, c2 = st.columns([1, 3], vertical_alignment="bottom")
    reps = int(c1.number_input("Repetitions", 1, 20, 5, key=K.TUNE_GVR_REPS))
    if c2.button(f"Repeat the experiment {reps} times ({lab.duration(list(specs.values()) * reps)}, {18 * reps} "
                 "trials)", key=K.TUNE_GVR_REPEAT, **lab.off):
        for _ in range(reps):
            st.session_state[K.TUNE_GVR_GROUP] = lab.start_group(specs, "grid-vs-random", training_seed=True)
    found = lab.newest_group(("grid", "random"), K.TUNE_GVR_GROUP)
    if found is None:
        st.info("No experiment yet: press the button.")
        return

    def draw() -> None:
        series = {k: lab.points(found[k], lambda p: p["lr"]) for k in ("grid", "random") if k in found}
        c1, c2 = st.columns(2)
        c1.plotly_chart(trials_scatter(series, "Test accuracy vs learning rate", "learning rate"),
                        key="tune_gvr_scatter", width="stretch")
        c2.plotly_chart(region_scatter({k: [r for _, r in v] for k, v in series.items()}, "lr", "eps", {},
                                       "learning rate", "Adam's ε", title="Where each search sampled"),
                        key="tune_gvr_where", width="stretch")
        for k, pts in series.items():
            rows = [r for _, r in pts]
            st.markdown(f"**{k}**: {T.distinct_values(rows, 'lr')} distinct learning rates in "
                        f"{sum(r.counted for r in rows)} trials · " + lab.best_text(found[k], "lr"))

    lab.live_panel(list(found.values()), "gvr", draw)
    gvr_reveal(lab.tuner, found, finished, who)


def lr_scale(lab: Lab) -> None:
    st.markdown("The learning rate between 0.0001 and 1. Sampled uniformly, most draws land in the top decade; "
                "sampled as 10^r with r uniform in [-4, 0], each decade gets the same share. 2,000 draws of each, "
                "from the sampler the studies use:")
    lo, hi = T.LR_RANGE
    lr_draws = {"uniform": draws(lo, hi, 2000, False, 0), "log scale": draws(lo, hi, 2000, True, 1)}
    st.plotly_chart(sample_histogram(lr_draws, lo, hi, "2,000 learning rates on each scale", "learning rate"),
                    key="tune_lr_hist", width="stretch")
    shares = {k: T.decade_shares(v, lo, hi) for k, v in lr_draws.items()}
    st.dataframe([{"decade": f"{a:g} – {b:g}", "uniform draws": f"{su:.1%}", "log-scale draws": f"{sl:.1%}",
                   "uniform, expected": f"{eu:.1%}", "log scale, expected": f"{el:.1%}"}
                  for (a, b, su), (_, _, sl), (_, _, eu), (_, _, el) in zip(
                      shares["uniform"], shares["log scale"], T.expected_decade_shares(lo, hi, False),
                      T.expected_decade_shares(lo, hi, True))], hide_index=True)
    n = int(st.columns(4)[0].number_input("Trials per scale", 4, 30, 10, key=K.TUNE_LR_N))
    specs = T.lr_scales(lab.epochs, lab.max_batches, n)
    st.caption(f"{2 * n} trials: {lab.duration(specs.values())} on this machine.")
    if st.button("Run a study on each scale", key=K.TUNE_LR_START, type="primary", **lab.off):
        st.session_state[K.TUNE_LR_GROUP] = lab.start_group(specs, "lr-scale")
    found = lab.newest_group(("lr-uniform", "lr-log"), K.TUNE_LR_GROUP)
    if found is None:
        return

    def draw() -> None:
        series = {k.removeprefix("lr-"): lab.points(v, lambda p: p["lr"]) for k, v in found.items()}
        st.plotly_chart(trials_scatter(series, "Test accuracy vs learning rate (log axis)", "learning rate"),
                        key="tune_lr_scatter", width="stretch")
        for k, pts in series.items():
            rows = [r for _, r in pts if r.counted]
            st.markdown(f"**{k}**: {sum(x > 0.1 for x, r in pts if r.counted)} of {len(rows)} trials with a "
                        "learning rate above 0.1 · " + lab.best_text(found[f"lr-{k}"], "lr"))

    lab.live_panel(list(found.values()), "lr", draw)


def beta_scale(lab: Lab) -> None:
    st.markdown("Adam's β1 between 0.9 and 0.999 averages about 1/(1 - β1) steps: 10 at 0.9, 1,000 at 0.999. "
                "Sampling β1 uniformly spends most of the budget between 0.9 and 0.99; sampling 1 - β1 on a log "
                "scale gives 0.99 – 0.999, where results are most sensitive, the same share.")
    blo, bhi = T.BETA_RANGE
    one_minus = {"β1 uniform": 1 - draws(blo, bhi, 2000, False, 2),
                 "1 - β1 on a log scale": draws(1 - bhi, 1 - blo, 2000, True, 3)}
    st.plotly_chart(sample_histogram(one_minus, 1 - bhi, 1 - blo, "2,000 values of 1 - β1 on each scale", "1 - β1"),
                    key="tune_beta_hist", width="stretch")
    shares = {k: T.decade_shares(v, 1 - bhi, 1 - blo) for k, v in one_minus.items()}
    st.dataframe([{"1 - β1": f"{a:g} – {b:g}", "β1": f"{1 - b:g} – {1 - a:g}",
                   "steps averaged": f"{1 / b:.0f} – {1 / a:.0f}", "β1 uniform": f"{su:.1%}",
                   "1 - β1 log scale": f"{sl:.1%}"}
                  for (a, b, su), (_, _, sl) in zip(shares["β1 uniform"], shares["1 - β1 on a log scale"])],
                 hide_index=True)
    n = int(st.columns(4)[0].number_input("Trials per scale", 4, 30, 10, key=K.TUNE_BETA_N))
    specs = T.beta_scales(lab.epochs, lab.max_batches, n)
    st.caption(f"{2 * n} trials: {lab.duration(specs.values())} on this machine.")
    if st.button("Run a study on each scale", key=K.TUNE_BETA_START, type="primary", **lab.off):
        st.session_state[K.TUNE_BETA_GROUP] = lab.start_group(specs, "beta-scale")
    found = lab.newest_group(("beta-uniform", "beta-log"), K.TUNE_BETA_GROUP)
    if found is None:
        return

    def x_beta(p: dict) -> float:
        return p["one_minus_beta1"] if "one_minus_beta1" in p else 1 - p["beta1"]

    def draw() -> None:
        series = {k.removeprefix("beta-"): lab.points(v, x_beta) for k, v in found.items()}
        st.plotly_chart(trials_scatter(series, "Test accuracy vs 1 - β1 (log axis)", "1 - β1"),
                        key="tune_beta_scatter", width="stretch")
        for k, pts in series.items():
            rows = [(x, r) for x, r in pts if r.counted]
            st.markdown(f"**{k}**: {sum(x < 0.01 for x, _ in rows)} of {len(rows)} trials with β1 above 0.99")

    lab.live_panel(list(found.values()), "beta", draw)


def coarse_to_fine(lab: Lab) -> None:
    st.markdown("A first random search over the learning rate and 1 - β1, then a second one inside the region where "
                "the best trials cluster. Select trials on the chart (box or lasso) to choose the region yourself; "
                "otherwise the box around the best third is proposed.")
    n = int(st.columns(4)[0].number_input("Trials per search", 4, 30, 12, key=K.TUNE_C2F_N))
    spec_c = T.coarse(lab.epochs, lab.max_batches, n)
    st.caption(f"{n} trials per search: {lab.duration([spec_c])} each on this machine.")
    if st.button("Run the coarse search", key=K.TUNE_C2F_START, type="primary", **lab.off):
        st.session_state[K.TUNE_C2F_GROUP] = lab.start_group({"coarse": spec_c}, "coarse-to-fine")
        st.session_state.pop(K.TUNE_C2F_CHART, None)  # a selection on the previous search's chart
    found = lab.newest_group(("coarse", "fine"), K.TUNE_C2F_GROUP)
    if found is None:
        return
    tuner = lab.tuner

    def draw() -> None:
        coarse_study, coarse_spec = tuner.open(found["coarse"])
        layers = {"coarse": T.trial_rows(coarse_study)}
        boxes = {"coarse range": {d.name: (d.lo, d.hi) for d in coarse_spec.space}}
        if "fine" in found:
            fine_study, fine_spec = tuner.open(found["fine"])
            layers["fine"] = T.trial_rows(fine_study)
            boxes["fine box"] = {d.name: (d.lo, d.hi) for d in fine_spec.space}
        done = [(r.params, r.accuracy) for r in layers["coarse"] if r.state == "COMPLETE"]
        live = any(tuner.running(v) for v in found.values())
        region, picked = None, []
        if "fine" not in found and len(done) >= 2 and not live:
            # the learner's box or lasso on this chart, from the last rerun (it holds the selected points)
            selection = (st.session_state.get(K.TUNE_C2F_CHART) or {}).get("selection") or {}
            picked = [{"lr": p["x"], "one_minus_beta1": p["y"]} for p in selection.get("points", [])
                      if "x" in p and "y" in p]
            region = (T.box_around(picked, coarse_spec.space) if picked
                      else T.propose_region(done, coarse_spec.space))
            boxes["your box" if picked else "proposed box"] = region
        st.plotly_chart(region_scatter(layers, "lr", "one_minus_beta1", boxes, "learning rate", "1 - β1"),
                        key=K.TUNE_C2F_CHART, width="stretch", on_select="ignore" if live else "rerun",
                        selection_mode=("box", "lasso"))
        for k, v in found.items():
            st.markdown(f"**{k}**: " + lab.best_text(v, "lr"))
        if region is None:
            return
        how = "around the trials you selected" if picked else "around the best third, proposed"
        st.markdown(f"Region ({how}): "
                    f"learning rate {region['lr'][0]:.3g} – {region['lr'][1]:.3g}, 1 - β1 "
                    f"{region['one_minus_beta1'][0]:.3g} – {region['one_minus_beta1'][1]:.3g} (β1 "
                    f"{1 - region['one_minus_beta1'][1]:.4f} – {1 - region['one_minus_beta1'][0]:.4f}).")
        if st.button("Start a finer study inside this region", key=K.TUNE_C2F_FINE, type="primary", **lab.off):
            spec_f = T.fine(coarse_spec, region, coarse_spec.n_trials)
            tuner.create(f"{coarse_spec.group}-fine", replace(spec_f, owner=lab.owner))
            st.rerun(scope="app")

    lab.live_panel(list(found.values()), "c2f", draw)


def own_study(lab: Lab) -> None:
    tuner = lab.tuner
    dims = tunable_dimensions()
    st.markdown("Choose what to tune; the ranges and scales follow the course (log scales for the learning rate "
                "and 1 - β, the hidden sizes as one scale factor on 512, 256, 128, 32).")
    c1, c2 = st.columns([3, 1])
    names = c1.multiselect("Parameters", list(dims), default=list(DEFAULT_SPACE), key=K.TUNE_OWN_PARAMS,
                           format_func=lambda k: dims[k].describe())
    n = int(c2.number_input("Trials", 1, 200, 20, key=K.TUNE_OWN_N))
    c1, c2, c3 = st.columns(3)
    sampler = c1.radio("Sampler", ["tpe", "random"], horizontal=True, key=K.TUNE_OWN_SAMPLER,
                       format_func=lambda s: {"tpe": "TPE (learns from the trials so far)", "random": "random"}[s])
    pruner = c2.radio("Pruner", list(PRUNERS), horizontal=True, key=K.TUNE_OWN_PRUNER,
                      format_func=lambda p: {"median": "median (stop trials below the median)", "none": "none"}[p])
    name = c3.text_input("Study name (optional)", key=K.TUNE_OWN_NAME, max_chars=60)
    if names:
        spec = make_spec(n, lab.epochs, lab.max_batches, names=names, sampler=sampler, pruner=pruner, lesson="own",
                         owner=lab.owner)
        st.caption(f"{n} trials: {lab.duration([spec])} on this machine if none is pruned.")
        if st.button("Start the study", key=K.TUNE_OWN_START, type="primary", **lab.off):
            try:
                st.session_state[K.TUNE_VIEW] = tuner.create(name.strip() or f"study-{uuid.uuid4().hex[:6]}", spec)
            except ValueError as e:
                st.error(str(e))
    else:
        st.warning("Choose at least one parameter.")
    all_studies = [nm for nm, _ in tuner.specs()]
    if not all_studies:
        st.info("No study yet.")
        return
    if st.session_state.get(K.TUNE_VIEW) not in all_studies:
        st.session_state[K.TUNE_VIEW] = all_studies[0]
    view = st.selectbox("Watch a study (every study in storage, newest first)", all_studies, key=K.TUNE_VIEW)
    view_live = tuner.running(view)

    @fragment(run_every=2.0 if view_live else None)
    def live_view() -> None:
        study_view(tuner, view, "view")
        if view_live and not tuner.running(view):
            st.rerun(scope="app")

    live_view()


LESSONS = (grid_vs_random, lr_scale, beta_scale, coarse_to_fine, own_study)  # in the order of K.TUNE_PARTS
