"""The phase clock (lmc_utils.run.phases): time goes to the innermost phase entry point on the stack,
the rest to 'other'; every entry point of PHASES exists; a notebook runs as a script under it."""

import inspect
import time

import pytest

from lmc_utils.run import phases


def _outer():
    time.sleep(0.05)  # charged to "outer"
    _inner()
    _plain()


def _inner():
    time.sleep(0.1)


def _plain():  # not an entry point: charged to the phase that called it
    time.sleep(0.05)


def _raises():
    time.sleep(0.02)
    raise ValueError("x")


def test_time_goes_to_the_innermost_phase():
    clock = phases.PhaseClock({_outer.__code__: "outer", _inner.__code__: "inner", _raises.__code__: "raises"})
    with clock.running():
        time.sleep(0.03)  # other
        _outer()
        with pytest.raises(ValueError):
            _raises()  # an exception still ends the phase
        _plain()  # other again
    s = clock.seconds
    assert s["inner"] == pytest.approx(0.1, abs=0.03)
    assert s["outer"] == pytest.approx(0.1, abs=0.03)
    assert s["raises"] == pytest.approx(0.02, abs=0.02)
    assert s[phases.OTHER] == pytest.approx(0.08, abs=0.04)


def test_every_entry_point_exists_and_belongs_to_one_phase():
    codes = phases.entry_codes()
    assert set(codes.values()) == set(phases.PHASES)
    from lmc_utils.zoo import trainers
    from lmc_utils.measure import interpolation

    assert codes[inspect.unwrap(trainers.train).__code__] == "training"
    assert codes[inspect.unwrap(interpolation.reset_batchnorm).__code__] == "RESET / REPAIR statistics"
    assert codes[inspect.unwrap(interpolation.interpolation_curve).__code__] == "curve evaluation"
    from lmc_utils.core import memo

    assert codes[memo.cached.__code__] == "analysis cache"  # a hit's lookup; a miss's computation is its own phase


def test_a_notebook_runs_as_a_script_under_the_clock(tmp_path):
    source = tmp_path / "99_demo.py"
    source.write_text('# %% tags=["parameters"]\nprofile: str = "cpu"\n\n# %%\n'
                      "from lmc_utils.claims import tables\nimport time\ntime.sleep(0.05)\n"
                      "assert profile == 'smoke'\nprint(tables.mean_sd_text(1.0, 0.5))\n")
    seconds = phases.profile_notebook(source, "smoke", tmp_path / "figures", threads=1)
    assert seconds["total"] >= 0.05 and seconds.get("verdicts and tables", 0) > 0
    assert seconds[phases.OTHER] >= 0.04
