"""Fair admission (core/store/scheduler.py) and the run store acting on it: slots, memory, fairness, refusal,
pause, restart, ownership. Each test names the wrong scheduler it would catch."""
import math
import time

import pytest

from tests.waiting import wait_until

from core.engine.config import TrainConfig, memory_estimate
from core.store import scheduler as S
from core.store.runs import AdmissionError, DuplicateRunError, RunPermissionError, RunStore

TINY = dict(max_batches=5, epochs=1)
LONG = dict(max_batches=400, epochs=3)  # long enough to be seen training, paused and stopped


def job(run_id, owner, order, memory=1, after=None):
    return S.Job(run_id, owner, memory, order, after)


def limits(slots=1, memory=1 << 40, per_learner=12):
    return S.Limits(slots, memory, per_learner)


# --- the policy ------------------------------------------------------------------------------------------
def test_fair_order_puts_each_learners_second_run_behind_the_others_first():
    """Catches first come, first served (ann's three runs ahead of ben and cho) and a round count that forgets the
    runs a learner already has training (ann, training one, would go first again)."""
    waiting = [job("a1", "ann", 1), job("a2", "ann", 2), job("a3", "ann", 3), job("b1", "ben", 4), job("c1", "cho", 5)]
    assert [j.run_id for j in S.fair_order(waiting, [])] == ["a1", "b1", "c1", "a2", "a3"]
    training = [job("a0", "ann", 0)]
    assert [j.run_id for j in S.fair_order(waiting, training)] == ["b1", "c1", "a1", "a2", "a3"]


def test_slots_memory_and_after():
    """Catches a scheduler that overfills the slots, lets a small run pass a big one at the head (the big one would
    starve), ignores memory held by paused runs, or lets a run start before the run it waits for has ended."""
    lim = limits(slots=2, memory=10)
    waiting = [job("big", "ann", 1, memory=8), job("small", "ben", 2, memory=1)]
    assert S.to_start(waiting, [job("t", "cho", 0, memory=5)], [], [], {"t"}, lim)[1] == []  # 5 + 8 > 10: head waits
    assert [j.run_id for j in S.to_start(waiting, [], [], [], set(), lim)[1]] == ["big", "small"]
    assert [j.run_id for j in S.to_start(waiting, [], [job("p", "dan", 0, memory=5)], [], {"p"}, lim)[1]] == []
    chained = [job("second", "ann", 1, after="first"), job("other", "ben", 2)]
    assert [j.run_id for j in S.to_start(chained, [], [], [], {"first", "second", "other"}, lim)[1]] == ["other"]
    assert [j.run_id for j in S.to_start(chained[:1], [], [], [], {"second"}, lim)[1]] == ["second"]


def test_a_resumed_run_goes_ahead_of_the_queue():
    """Catches a resume that waits behind every queued run (a paused learner would lose their place)."""
    paused = job("p", "ann", 0)
    resume, start = S.to_start([job("q", "ben", 1)], [], [paused], [paused], {"p", "q"}, limits(slots=1))
    assert [j.run_id for j in resume] == ["p"] and start == []


def test_refusals_say_why():
    with pytest.raises(AdmissionError, match="more than the"):
        S.check_admission(job("x", "ann", 1, memory=2 << 30), [], limits(memory=1 << 30))
    mine = [job(f"q{i}", "ann", i) for i in range(3)]
    with pytest.raises(AdmissionError, match="3 of your runs"):
        S.check_admission(job("x", "ann", 9), mine, limits(per_learner=3))
    S.check_admission(job("x", "ben", 9), mine, limits(per_learner=3))  # another learner is not held back


@pytest.mark.parametrize("text,size", [("2G", 2 << 30), ("1500M", 1500 << 20), ("1.5GB", 3 << 29), ("800000", 800000),
                                       (" 64 mib ", 64 << 20)])
def test_sizes(text, size):
    assert S.parse_size(text) == size


def test_bad_settings_fall_back_and_say_so():
    lim = S.limits_from_env(4, {"TRAIN_SLOTS": "many", "MEMORY_TOTAL": "lots", "QUEUE_PER_LEARNER": "-1"})
    assert lim.slots == 4 and lim.memory_total == S.machine_memory() // 2 and lim.per_learner == S.DEFAULT_PER_LEARNER
    assert len(lim.notes) == 3 and all(v in " ".join(lim.notes) for v in ("TRAIN_SLOTS", "MEMORY_TOTAL", "QUEUE_PER"))
    assert S.limits_from_env(4, {"TRAIN_SLOTS": "3", "MEMORY_TOTAL": "2G"}) == S.Limits(3, 2 << 30, 12)


# --- the store acting on it ------------------------------------------------------------------------------
@pytest.fixture
def one_slot(tmp_path, data_dir):
    s = RunStore(tmp_path / "runs", data_dir, limits=limits(slots=1))
    yield s
    s.stop_all(wait=30)


def test_the_store_trains_no_more_than_its_slots_and_loses_no_run(one_slot):
    """Catches a store that starts every run at once (30 runs share 2 cores and nobody's run finishes soon), and one
    that drops or double-starts a queued run."""
    ids = [one_slot.start(TrainConfig(seed=i, **TINY), owner=f"l{i % 2}").id for i in range(4)]
    most = 0
    deadline = time.monotonic() + 120
    while any(one_slot.trainer(i).alive for i in ids) and time.monotonic() < deadline:
        most = max(most, sum(1 for i in ids if one_slot.trainer(i).holds_slot))
        time.sleep(0.005)
    assert most == 1
    assert [one_slot.get(i).snapshot.status for i in ids] == ["finished"] * 4
    assert all(one_slot.get(i).snapshot.epoch == 1 for i in ids)


def test_queue_shows_the_fair_order_and_a_queued_run_can_be_stopped(one_slot):
    first = one_slot.start(TrainConfig(**LONG), owner="ann")
    wait_until(lambda: one_slot.get(first.id).snapshot.status == "running", 60)
    a2 = one_slot.start(TrainConfig(seed=2, **TINY), owner="ann")
    b1 = one_slot.start(TrainConfig(seed=3, **TINY), owner="ben")
    assert [r.id for r in one_slot.queue()] == [b1.id, a2.id]
    assert one_slot.get(a2.id).snapshot.status == "queued"
    one_slot.stop(a2.id)
    assert one_slot.get(a2.id).snapshot.status == "stopped" and [r.id for r in one_slot.queue()] == [b1.id]
    one_slot.stop(first.id, wait=60)
    one_slot.trainer(b1.id).join(60)
    assert one_slot.get(b1.id).snapshot.status == "finished"
    assert one_slot.get(a2.id).snapshot.epoch == 0  # stopped while it waited: it never trained


def test_pause_frees_the_slot_and_resume_waits_for_one(one_slot):
    """Catches a paused run that keeps its slot (a class's paused runs would block everyone) and a resume that takes
    a slot that is not free (two runs on one slot)."""
    first = one_slot.start(TrainConfig(**LONG), owner="ann")
    wait_until(lambda: one_slot.get(first.id).snapshot.status == "running", 60)
    second = one_slot.start(TrainConfig(seed=1, max_batches=300, epochs=1), owner="ben")
    assert one_slot.get(second.id).snapshot.status == "queued"
    one_slot.pause(first.id)
    wait_until(lambda: one_slot.get(second.id).snapshot.status == "running", 60)
    one_slot.resume(first.id)
    time.sleep(0.3)
    assert one_slot.get(first.id).snapshot.status == "paused"  # its slot is taken: it resumes when one frees
    one_slot.trainer(second.id).join(120)
    wait_until(lambda: one_slot.get(first.id).snapshot.status == "running", 60)
    one_slot.stop(first.id, wait=60)


def test_memory_budget_refuses_and_queues(tmp_path, data_dir):
    """The 25-learner case in small: runs are refused when larger than all training memory, and wait when the
    memory left is too little, instead of all starting and the kernel killing the server."""
    one = memory_estimate(TrainConfig(**TINY)).total
    store = RunStore(tmp_path / "runs", data_dir, limits=limits(slots=8, memory=int(one * 1.5)))
    try:
        with pytest.raises(AdmissionError, match="more than the"):
            store.start(TrainConfig(batch_size=4096, **TINY))
        a = store.start(TrainConfig(max_batches=300, epochs=1))
        b = store.start(TrainConfig(seed=1, **TINY))
        assert store.get(b.id).snapshot.status == "queued"  # two would exceed the budget: the second waits
        store.trainer(b.id).join(120)
        assert store.get(a.id).snapshot.status == "finished" and store.get(b.id).snapshot.status == "finished"
    finally:
        store.stop_all(wait=30)


def test_a_restart_lists_queued_runs_as_interrupted_and_queues_them_again(tmp_path, data_dir):
    """Catches runs lost silently when the server stops with a queue: after the restart they are listed as queued
    and interrupted, and one action queues them again under the same id, settings and owner."""
    store = RunStore(tmp_path / "runs", data_dir, limits=limits(slots=1))
    first = store.start(TrainConfig(**LONG), owner="ann")
    waiting = store.start(TrainConfig(seed=1, **TINY), owner="ben", name="ben's run")
    store.shutdown(wait=60)
    again = RunStore(tmp_path / "runs", data_dir, limits=limits(slots=1))
    assert again.get(first.id).snapshot.status == "stopped" and not again.get(first.id).interrupted_queued
    lost = again.interrupted_queued()
    assert [r.id for r in lost] == [waiting.id] and "queued and interrupted" in lost[0].snapshot.error
    with pytest.raises(RunPermissionError):
        again.requeue(waiting.id, by="ann")
    again.requeue(waiting.id, by="ben")
    again.trainer(waiting.id).join(120)
    info = again.get(waiting.id)
    assert info.snapshot.status == "finished" and info.owner == "ben" and info.name == "ben's run"
    assert RunStore(tmp_path / "runs", data_dir).interrupted_queued() == []


def test_only_the_owner_or_the_teacher_acts_on_a_run(tmp_path, data_dir):
    """The store refuses another learner, not only the page: rename, pause, resume, stop, delete, export."""
    store = RunStore(tmp_path / "runs", data_dir)
    run = store.start(TrainConfig(**TINY), owner="ann")
    store.trainer(run.id).join(60)
    for act in (lambda: store.rename(run.id, "mine now", by="ben"), lambda: store.pause(run.id, by="ben"),
                lambda: store.resume(run.id, by="ben"), lambda: store.stop(run.id, by="ben"),
                lambda: store.delete(run.id, by="ben"), lambda: store.export_zip(run.id, by="ben")):
        with pytest.raises(RunPermissionError, match="another learner"):
            act()
    store.rename(run.id, "ann's", by="ann")
    store.rename(run.id, "teacher's name", by=None)
    assert RunStore(tmp_path / "runs", data_dir).get(run.id).owner == "ann"  # kept through a rename
    store.delete(run.id, by="ann")


def test_the_same_settings_of_another_learner_are_not_a_duplicate(one_slot):
    """Catches a duplicate check across learners: in a class every learner starts the settings of the same lesson
    link, and each learner after the first was asked to confirm a "duplicate" of a run that is not theirs (named,
    with its id). A learner's own identical run is still one."""
    config = TrainConfig(**LONG)
    ann = one_slot.start(config, owner="ann")
    ben = one_slot.start(config, owner="ben")  # queued behind Ann's, and not a duplicate of it
    with pytest.raises(DuplicateRunError, match=ann.id):
        one_slot.start(config, owner="ann")
    assert one_slot.find_live(config, "ben").id == ben.id and one_slot.find_live(config, "cy") is None
    one_slot.start(config, owner="ann", allow_duplicate=True)


# --- where a queued run stands (core/store/waiting.py) ------------------------------------------------------------
def test_start_times_follow_slots_memory_and_shared_cores():
    """Hand-computed queues. Slots: two runs with 10 and 20 s left, three 30-s runs waiting, 2 slots: they start at
    10, 20 and 40 s. Memory: six 8-s runs of 1 unit against 4 units, 25 slots, 2 cores: four start now and share
    the two cores (each at half speed, 16 s), the last two at 16 s. Catches an estimate that counts slots only (0 s
    for all six: what the page said in bench-class case C, 5.45x too short) and one that gives every run a whole
    core (8 s)."""
    from core.store.waiting import start_times

    assert start_times([(10, 1), (20, 1)], [(30, 1)] * 3, slots=2, memory_total=100, cores=2) == [10, 20, 40]
    assert start_times([], [(8, 1)] * 6, slots=25, memory_total=4, cores=2) == [0, 0, 0, 0, 16, 16]
    # the head is never passed: a big run waits for memory and the small one behind it waits too
    assert start_times([(5, 3)], [(10, 3), (1, 1)], slots=4, memory_total=4, cores=4) == [5, 5]
    # paused runs hold their memory: a head that cannot fit beside them has no start in sight
    assert start_times([], [(8, 3)], slots=4, memory_total=4, cores=2, held=2) == [math.inf]


def test_queued_runs_show_place_and_start(one_slot):
    """Through the store: one run trains, two wait; each waiting run gets its place and a start no earlier than the
    one ahead of it, the first one's within the training run's time left."""
    from core.store.waiting import queue_waits

    first = one_slot.start(TrainConfig(**LONG), owner="ann")
    wait_until(lambda: one_slot.get(first.id).snapshot.status == "running", 60)
    b1 = one_slot.start(TrainConfig(seed=3, **TINY), owner="ben")
    a2 = one_slot.start(TrainConfig(seed=2, **TINY), owner="ann")
    try:
        waits = queue_waits(one_slot)
        assert [waits[b1.id].position, waits[a2.id].position] == [1, 2] and waits[b1.id].of == 2
        assert 0 <= waits[b1.id].seconds <= waits[a2.id].seconds < math.inf
        assert "1st of 2 in the queue" in waits[b1.id].describe()
    finally:
        one_slot.stop_all(wait=60)
