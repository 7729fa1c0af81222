"""Custom Python scorers: a spec names a function from an allowed module (or an installed entry
point), validation imports and checks it, and whatever the function does with a sample (returns
odd values, raises, hangs) becomes that sample's verdict, never the sweep's failure."""

from __future__ import annotations

import asyncio
import sys
import textwrap
import time

import pytest

from scorers import examples
from sweeps.engine.errors import SpecError
from sweeps.engine.scorers import SampleFacts, ScoreResult, Scoring, build_scorer
from sweeps.engine.scorers import python as python_scorers

USER_MODULE = """
import asyncio, pathlib, time
from subprocess import run
IMPORTED = pathlib.Path(__file__).with_name("imported")
IMPORTED.write_text("yes")

def exact(output, context):
    return output == context.row["expected"]

def half(output, context):
    return 0.5

def explained(output, context):
    return 0.25, f"saw {sorted(context.stages)} with {context.options}"

def everything(output, context):
    return 1.0, repr((dict(context.row), dict(context.stages), dict(context.options), sorted(context.vars)))

async def awaited(output, context):
    await asyncio.sleep(0)
    return output.isupper()

def raises(output, context):
    raise ValueError(f"cannot read {output!r}")

def hangs(output, context):
    time.sleep(3)
    return 1.0

async def hangs_async(output, context):
    await asyncio.sleep(3)
    return 1.0

def graded(output, context):
    return {"pass": False, "score": 0.9, "reason": f"saw {context['vars']['q']} with {context['config']}"}

def says_yes(output, context):
    return "yes"

def out_of_range(output, context):
    return 1.5

def one_argument(output):
    return 1.0

NOT_A_FUNCTION = 3
"""


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """A package `myscorers.tickets` in a folder on the path, allowed as scorer modules are."""
    package = tmp_path / "myscorers"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "tickets.py").write_text(textwrap.dedent(USER_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    before = python_scorers.allowed_modules()
    python_scorers.configure(("myscorers",))
    yield package
    python_scorers.configure(before)
    for name in [n for n in sys.modules if n.split(".")[0] == "myscorers"]:
        del sys.modules[name]


def scorer(function, **options):
    return build_scorer({"type": "python", "function": function, **options}, "scorers[0]")


def problems(function, **options) -> dict[str, str]:
    with pytest.raises(SpecError) as caught:
        scorer(function, **options)
    return {error.path: error.message for error in caught.value.errors}


def verdict(s, output, row=None, stages=None):
    row = row or {}
    variables = {**row, **(stages or {})}

    async def no_call(*_):
        raise AssertionError("a python scorer calls no model")

    return asyncio.run(s.ascore(output, variables, Scoring(sample=SampleFacts(row=row), call=no_call)))


def test_a_bool_a_number_and_a_reason_are_verdicts(user_module):
    assert verdict(scorer("myscorers.tickets:exact"), "billing", {"expected": "billing"}) == ScoreResult(
        1.0, True, "passed"
    )
    assert verdict(scorer("myscorers.tickets:exact"), "bill", {"expected": "billing"}).passed is False
    assert verdict(scorer("myscorers.tickets:half"), "x") == ScoreResult(0.5, True, "scored 0.5")
    assert verdict(scorer("myscorers.tickets:half", threshold=0.6), "x").passed is False
    result = verdict(scorer("myscorers.tickets:explained", options={"k": 1}), "x", {"q": 1}, {"draft": "d"})
    assert result == ScoreResult(0.25, False, "saw ['draft'] with {'k': 1}")


def test_the_context_holds_the_row_the_stages_and_the_options_apart(user_module):
    result = verdict(
        scorer("myscorers.tickets:everything", options={"column": "label"}),
        "final",
        {"ticket": "t", "label": "l"},
        {"draft": "d", "answer": "final"},
    )
    assert result.reason == repr(
        ({"ticket": "t", "label": "l"}, {"draft": "d", "answer": "final"}, {"column": "label"},
         ["answer", "draft", "label", "ticket"])
    )  # fmt: skip


def test_a_promptfoo_style_function_reads_context_by_key_and_returns_a_grading_result(user_module):
    result = verdict(scorer("myscorers.tickets:graded", options={"k": 1}), "x", {"q": "why"})
    assert result == ScoreResult(0.9, False, "saw why with {'k': 1}")  # its own pass decides, not the threshold


def test_async_functions_are_awaited(user_module):
    assert verdict(scorer("myscorers.tickets:awaited"), "LOUD").passed is True
    assert verdict(scorer("myscorers.tickets:awaited"), "quiet").passed is False


def test_an_exception_scores_the_sample_0_with_the_tracebacks_last_line(user_module):
    result = verdict(scorer("myscorers.tickets:raises"), "gibberish")
    assert result.value == 0 and not result.passed
    assert result.reason.startswith("myscorers.tickets:raises raised ValueError: cannot read 'gibberish' (tickets.py:")


@pytest.mark.parametrize("function", ["hangs", "hangs_async"])
def test_a_function_past_its_time_limit_scores_0_and_the_sweep_goes_on(user_module, function):
    started = time.monotonic()
    result = verdict(scorer(f"myscorers.tickets:{function}", timeout=0.2), "x")
    assert result == ScoreResult(0.0, False, f"myscorers.tickets:{function} timed out after 0.2 s")
    assert time.monotonic() - started < 2.5  # it did not wait for the function's 3 s


@pytest.mark.parametrize(
    ("function", "returned"), [("says_yes", "'yes'"), ("out_of_range", "1.5")]
)  # fmt: skip
def test_a_return_value_that_is_no_verdict_is_named(user_module, function, returned):
    result = verdict(scorer(f"myscorers.tickets:{function}"), "x")
    assert result.value == 0 and not result.passed
    assert result.reason == (
        f"myscorers.tickets:{function} returned {returned}; expected a number in 0..1, a bool or (score, reason)"
    )


def test_a_module_that_is_not_allowed_is_refused_before_it_is_imported(user_module):
    python_scorers.configure(("scorers",))
    assert problems("myscorers.tickets:exact") == {
        "scorers[0].function": "module 'myscorers.tickets' is not allowed for scorers "
        "(PROMPTLOOPER_SCORER_MODULES: scorers)"
    }
    assert not (user_module / "imported").exists()
    assert "not allowed" in problems("os:system")["scorers[0].function"]
    assert "not allowed" in problems("myscorers_evil.x:f")["scorers[0].function"]  # a prefix is not a package


@pytest.mark.parametrize(
    ("function", "message"),
    [
        ("myscorers.nothing:f", "cannot import 'myscorers.nothing:f': no module named 'myscorers.nothing'"),
        ("myscorers.tickets:absent", "module 'myscorers.tickets' has no function 'absent'"),
        ("myscorers.tickets:NOT_A_FUNCTION", "'myscorers.tickets:NOT_A_FUNCTION' is not a function"),
        ("myscorers.tickets:run", "'myscorers.tickets:run' is not defined in 'myscorers.tickets' (it is imported there)"),
        ("myscorers.tickets:one_argument", "'myscorers.tickets:one_argument' must accept (output, context); "
                                           "its signature is (output)"),
        ("myscorers.tickets", "'myscorers.tickets' is not an installed scorer (entry point group "
                              "'promptlooper.scorers'); write module:function, e.g. scorers.examples:label_matches"),
        ("../etc:passwd", "must be module:function, e.g. scorers.examples:label_matches; got '../etc:passwd'"),
        (None, "must be module:function, e.g. scorers.examples:label_matches; got None"),
    ],
)  # fmt: skip
def test_a_function_that_cannot_be_used_is_refused_with_why(user_module, function, message):
    assert problems(function) == {"scorers[0].function": message}


def test_options_threshold_and_timeout_are_checked(user_module):
    assert problems("myscorers.tickets:half", options=[1], threshold=2, timeout=0) == {
        "scorers[0].options": "must be an object passed to the function, got [1]",
        "scorers[0].threshold": "must be between 0 and 1, got 2",
        "scorers[0].timeout": "must be more than 0 and at most 300 seconds, got 0",
    }


def test_an_installed_package_publishes_scorers_by_entry_point(tmp_path, monkeypatch):
    """What `pip install` of a package declaring `[project.entry-points."promptlooper.scorers"]`
    leaves on the path: its module, and a dist-info folder naming the entry point."""
    (tmp_path / "ticketscore.py").write_text("def strict(output, context):\n    return output == 'ok'\n")
    info = tmp_path / "ticketscore-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ticketscore\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[promptlooper.scorers]\nstrict_ok = ticketscore:strict\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "ticketscore", raising=False)

    published = scorer("strict_ok")  # allowed though `ticketscore` is not in the allowed modules
    assert verdict(published, "ok").passed is True
    assert verdict(published, "no").passed is False


class Context:
    def __init__(self, row=None, options=None):
        self.row, self.stages, self.options = row or {}, {}, options or {}


def test_the_shipped_examples_score_as_documented():
    assert examples.label_matches("Billing.", Context({"expected": "billing"})) == (True, "label 'billing' matches")
    assert examples.label_matches(
        "bill", Context({"label": "billing"}, {"column": "label", "aliases": {"bill": "billing"}})
    )[0]
    assert examples.label_matches("shipping", Context({"expected": "billing"})) == (
        False, "label 'shipping', expected 'billing'"
    )  # fmt: skip
    assert examples.label_matches("", Context({"expected": "x"}))[0] is False
    assert examples.keyword_coverage("Refund issued, sorry", Context({"keywords": "refund, apology"})) == (
        0.5, "mentions 1 of 2; missing apology"
    )  # fmt: skip
    assert examples.keyword_coverage("x", Context(options={"keywords": []}))[0] == 1.0


def test_the_examples_are_allowed_by_default():
    assert "scorers" in python_scorers.allowed_modules()  # the app's settings configured them
    assert verdict(scorer("scorers.examples:label_matches"), "billing", {"expected": "billing"}).passed
