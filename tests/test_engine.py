"""The engine: one model lock, newest request wins per channel, guarded application."""

import threading
import time

from xai_widgets.adapter import ModelAdapter
from xai_widgets.engine import Engine, model_lock
from xai_widgets.errors import Cancelled


def test_a_stale_result_is_never_applied(model):
    engine = Engine(ModelAdapter(model))
    applied, started = [], threading.Event()

    def slow(job):
        started.set()
        for _ in range(200):
            if job.cancelled():
                raise Cancelled()
            time.sleep(0.005)
        return "old"

    engine.submit("explain", slow, applied.append, applied.append)
    started.wait(5)
    engine.submit("explain", lambda job: "new", applied.append, applied.append)
    assert engine.wait(10) and applied == ["new"]
    engine.close()


def test_channels_do_not_supersede_each_other_unless_asked(model):
    engine = Engine(ModelAdapter(model), ("explain", "curves"))
    applied = []
    engine.submit("curves", lambda job: "curves", applied.append, applied.append)
    engine.submit("explain", lambda job: "map", applied.append, applied.append)
    assert engine.wait(10) and sorted(applied) == ["curves", "map"]
    applied.clear()
    engine.submit("curves", lambda job: "old curves", applied.append, applied.append)
    engine.submit("explain", lambda job: "map", applied.append, applied.append,
                  supersedes=("curves",))
    assert engine.wait(10) and applied == ["map"]
    engine.close()


def test_failures_in_work_or_in_applying_reach_on_error(model):
    engine = Engine(ModelAdapter(model))
    errors = []

    def broken_apply(result):
        raise ValueError("cannot draw")

    engine.submit("a", lambda job: 1 / 0, print, errors.append)
    assert engine.wait(10)
    engine.submit("b", lambda job: 1, broken_apply, errors.append)
    assert engine.wait(10)
    assert errors == ["ZeroDivisionError: division by zero", "ValueError: cannot draw"]
    engine.close()


def test_jobs_hold_the_model_lock(model):
    engine = Engine(ModelAdapter(model))
    held = []
    lock = model_lock(model)

    def free_elsewhere() -> bool:  # can another thread take the lock right now?
        taken = lock.acquire(blocking=False)
        if taken:
            lock.release()
        return taken

    def job(_job):  # while it runs, no other thread can take the model's lock
        other = []
        thread = threading.Thread(target=lambda: other.append(free_elsewhere()))
        thread.start()
        thread.join()
        held.append(not other[0])

    engine.submit("a", job, print, print)
    assert engine.wait(10) and held == [True]
    engine.close()
