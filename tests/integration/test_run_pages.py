"""The run page and the compare page through Django's test client, on sweeps run by the
embedded worker (the mock provider: mock/echo and mock/upper differ by case, mock/error fails)."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.shortcuts import resolve_url
from django.test import Client
from django.test.utils import CaptureQueriesContext

from sweeps.models import Experiment, Run, RunSample, Score, Sweep
from sweeps.services.experiments import experiment_create
from sweeps.services.sweeps import sweep_start
from sweeps.web.compare import word_diff
from tests.conftest import logged_in, spec, wait_for_sweep

SCRIPT = '<script>alert("x")</script>'


@pytest.fixture(autouse=True)
def mock_provider(mock_latency):
    """The built-in mock provider row (no latency), even after a transactional test flushed it."""


# --- helpers ---


@dataclass
class Node:
    tag: str
    attrs: dict
    children: list = field(default_factory=list)  # Nodes and strings

    @property
    def text(self) -> str:
        return " ".join("".join(c if isinstance(c, str) else " " + c.text + " " for c in self.children).split())

    @property
    def classes(self) -> set[str]:
        return set((self.attrs.get("class") or "").split())

    def all(self, tag: str | None = None, cls: str | None = None) -> list[Node]:
        found = []
        for child in self.children:
            if isinstance(child, Node):
                if (tag is None or child.tag == tag) and (cls is None or cls in child.classes):
                    found.append(child)
                found += child.all(tag, cls)
        return found

    def one(self, tag: str | None = None, cls: str | None = None) -> Node:
        [node] = self.all(tag, cls)
        return node

    def by_id(self, id_: str) -> Node:
        [node] = [n for n in self.all() if n.attrs.get("id") == id_]
        return node


class TreeBuilder(HTMLParser):
    VOID = {"input", "br", "meta", "link", "img", "hr"}

    def __init__(self) -> None:
        super().__init__()
        self.stack = [Node("document", {})]

    def handle_starttag(self, tag, attrs):
        node = Node(tag, dict(attrs))
        self.stack[-1].children.append(node)
        if tag not in self.VOID:
            self.stack.append(node)

    def handle_endtag(self, tag):
        while len(self.stack) > 1:
            if self.stack.pop().tag == tag:
                break

    def handle_data(self, data):
        self.stack[-1].children.append(data)


def parse(page: str) -> Node:
    builder = TreeBuilder()
    builder.feed(page)
    return builder.stack[0]


def get(client: Client, url: str, status: int = 200) -> tuple[str, Node]:
    response = client.get(url)
    assert response.status_code == status, response.content.decode()[:2000]
    page = response.content.decode()
    return page, parse(page)


def finished_sweep(user, **overrides) -> Sweep:
    experiment = experiment_create(owner=user, data=spec(**overrides))
    sweep = wait_for_sweep(sweep_start(experiment=experiment))
    assert sweep.status == "completed"
    return sweep


def run_of(sweep: Sweep, model: str) -> Run:
    return Run.objects.get(sweep=sweep, config__model=model)


TWO_SCORERS = [{"type": "icontains", "value": "{{ expected }}"}, {"type": "max_length", "value": 15}]
ECHO_VS_UPPER = {"type": "grid", "params": {"model": ["mock/echo", "mock/upper"]}}


# --- the run page ---


@pytest.mark.django_db(transaction=True)
def test_run_page_shows_configuration_inputs_every_stage_and_scores_with_reasons(user):
    sweep = finished_sweep(
        user, scorers=TWO_SCORERS,
        sweep={"type": "grid", "params": {"model": ["mock/echo"], "params.temperature": [0.0, 0.5]}},
    )  # fmt: skip
    run = Run.objects.get(sweep=sweep, config__params__temperature=0.5)

    page, doc = get(logged_in(user), f"/runs/{run.pk}/")

    # the run: a link back, every swept parameter, the full pipeline, its figures
    [back] = [a for a in doc.all("a") if a.text.startswith("←")]
    assert back.attrs["href"] == f"/experiments/{sweep.experiment_id}/"
    config = doc.one(cls="run-config")
    assert "model mock/echo" in config.text and "params.temperature 0.5" in config.text
    assert "Stage 1: summarize · mock/echo · temperature 0.5" in config.text
    assert "Stage 2: label · mock/echo · temperature 0.5" in config.text
    assert "Summarize this ticket: {{ ticket }}" in config.text  # the prompt template
    stats = doc.by_id("run-stats").text
    assert f"Score {run.score:.3f}" in stats and f"{run.tokens_in + run.tokens_out} tokens" in stats
    assert f"${run.cost_usd:.5f}" in stats and f"{run.latency_ms:.0f} ms mean latency" in stats

    samples = doc.all(cls="sample")
    stored = list(RunSample.objects.filter(run=run).prefetch_related("scores"))
    assert len(samples) == len(stored) == 3
    for node, sample in zip(samples, stored, strict=True):  # dataset order
        assert node.one("h3").text.startswith(f"Row {sample.row_index}")
        assert sample.inputs["ticket"] in node.one("dl", cls="inputs").text
        outputs = node.all(cls="stage-output")
        assert [o.text for o in outputs] == [s["output"] for s in sample.stages]
        for stage in sample.stages:
            assert stage["prompt"] in node.text  # the rendered prompt, not the template
        reasons = [r.text for r in node.all(cls="score-reason")]
        assert reasons == [s.reason for s in sample.scores.all()] and all(reasons)
        assert "not cached" in node.text
    # max_length 15 fails the longer tickets: both verdicts are shown
    verdicts = {li.attrs["class"] for li in doc.all("li") if li.attrs.get("class") in ("pass", "fail")}
    assert verdicts == {"pass", "fail"}


@pytest.mark.django_db(transaction=True)
def test_run_page_shows_the_interval_and_with_repeats_the_spread_and_consistency(user):
    sweep = finished_sweep(
        user, repeats=3, sweep={"type": "grid", "params": {"model": ["mock/echo"], "params.temperature": [1.5]}}
    )
    run = Run.objects.get(sweep=sweep)
    assert run.samples.count() == 9 and run.score_spread is not None

    _, doc = get(logged_in(user), f"/runs/{run.pk}/")
    text = doc.by_id("run-certainty").text
    assert f"95 % interval {run.score_ci_low:.3f}–{run.score_ci_high:.3f}" in text
    assert f"mean {run.score:.3f} ± {run.score_spread:.3f} across replicates" in text
    assert f"consistency {round(run.consistency * 100)} %" in text

    single = finished_sweep(user, sweep={"type": "grid", "params": {"model": ["mock/echo"]}})
    _, doc = get(logged_in(user), f"/runs/{Run.objects.get(sweep=single).pk}/")
    assert "interval" in doc.by_id("run-certainty").text and "replicates" not in doc.by_id("run-certainty").text


@pytest.mark.django_db(transaction=True)
def test_a_pruned_run_says_so(user):
    from tests.integration.test_early_stopping import es_spec

    experiment = experiment_create(owner=user, data=es_spec())
    sweep = wait_for_sweep(sweep_start(experiment=experiment))
    pruned = Run.objects.filter(sweep=sweep, status="pruned").first()
    _, doc = get(logged_in(user), f"/runs/{pruned.pk}/")
    assert doc.by_id("run-status").text == "pruned"
    assert "Early stopping pruned this configuration" in doc.by_id("run-pruned").text
    _, doc = get(logged_in(user), f"/runs/{pruned.pk}/?status=pruned")
    assert doc.by_id("sample-count").text.startswith("30 samples")


@pytest.mark.django_db(transaction=True)
def test_run_page_shows_a_cache_hit(user):
    sweep = finished_sweep(user, sweep=ECHO_VS_UPPER)
    again = wait_for_sweep(sweep_start(experiment=sweep.experiment))  # every call from the cache
    run = run_of(again, "mock/echo")

    _, doc = get(logged_in(user), f"/runs/{run.pk}/")

    for node in doc.all(cls="sample"):
        assert "cache hit" in node.one("h3").text and "all from the cache" in node.text
        assert all("cached" in summary.text for summary in node.all("summary"))


@pytest.mark.django_db(transaction=True)
def test_failed_samples_show_their_error_and_stand_out(user):
    # The third row has no `ticket`: rendering its prompt fails, the other rows succeed.
    dataset = [{"ticket": "billing charged twice", "expected": "billing"},
               {"ticket": "login broken", "expected": "login"},
               {"expected": "shipping"}]  # fmt: skip
    sweep = finished_sweep(user, dataset=dataset, sweep=ECHO_VS_UPPER)
    run = run_of(sweep, "mock/echo")
    failed = RunSample.objects.get(run=run, status="failed")

    page, doc = get(logged_in(user), f"/runs/{run.pk}/")

    nodes = {n.attrs["data-status"]: n for n in doc.all(cls="sample")}
    assert set(nodes) == {"completed", "failed"}
    bad = doc.one(cls="sample-error")
    assert bad.text == failed.error and "ticket" in failed.error
    assert bad in nodes["failed"].all() and "failed" in nodes["failed"].one("h3").text
    stylesheet = (Path(settings.BASE_DIR) / "static/sweeps/style.css").read_text()
    assert "section.sample[data-status=failed]" in stylesheet  # set apart by its edge and tint


@pytest.mark.django_db(transaction=True)
def test_filters_show_only_failed_or_low_scoring_samples(user):
    dataset = [{"ticket": "billing charged twice", "expected": "billing"},  # scores 1
               {"ticket": "login broken", "expected": "shipping"},           # scores 0
               {"expected": "x"}]  # fails  # fmt: skip
    sweep = finished_sweep(user, dataset=dataset, sweep=ECHO_VS_UPPER)
    run = run_of(sweep, "mock/echo")
    client = logged_in(user)

    def rows(query: str) -> list[str]:
        _, doc = get(client, f"/runs/{run.pk}/{query}")
        return [n.one("h3").text.split()[1] for n in doc.all(cls="sample")]

    assert rows("") == ["0", "1", "2"]
    assert rows("?status=failed") == ["2"]
    assert rows("?status=completed") == ["0", "1"]
    assert rows("?max_score=0.5") == ["1", "2"]  # a failed sample counts as 0, as in the run's score
    assert rows("?max_score=0") == ["1", "2"]
    assert rows("?status=completed&max_score=0.5") == ["1"]

    page, doc = get(client, f"/runs/{run.pk}/?status=failed&max_score=0.5")
    form = doc.one("form", cls="run-filters")  # the form shows what is applied
    assert form.one("select").attrs["name"] == "status" and 'value="failed" selected' in page
    assert form.one("input").attrs["value"] == "0.5" and "1 sample matches" in page

    # A bad filter is ignored and said so, never a 500.
    for query, words in (("?status=bogus", "Unknown status"), ("?max_score=lots", "number from 0 to 1"),
                         ("?max_score=2", "number from 0 to 1"), ("?max_score=nan", "number from 0 to 1")):  # fmt: skip
        page, doc = get(client, f"/runs/{run.pk}/{query}")
        assert words in doc.one(cls="filter-error").text
        assert len(doc.all(cls="sample")) == 3


def make_samples(run: Run, n: int) -> None:
    """n finished samples of a run written directly, each with two scores: data for pagination."""
    samples = RunSample.objects.bulk_create(
        RunSample(run=run, sweep=run.sweep, row_index=i, inputs={"ticket": f"ticket {i}"},
                  stages=[{"name": "answer", "model": "mock/echo", "system": None, "prompt": f"Answer: ticket {i}",
                           "output": f"ticket {i}", "tokens_in": 3, "tokens_out": 2, "cost_usd": 0.0,
                           "latency_ms": 1.0, "cached": False}],
                  output=f"ticket {i}", score=(i % 10) / 10, status="completed")
        for i in range(n)
    )  # fmt: skip
    if any(s.pk is None for s in samples):
        samples = list(run.samples.all())
    Score.objects.bulk_create(
        Score(sample=s, scorer_index=k, name=name, value=s.score, passed=s.score >= 0.5, reason=f"{name} of {s.pk}")
        for s in samples for k, name in enumerate(("contains", "judge"))
    )  # fmt: skip


def bare_run(user, *, config: dict | None = None, experiment: Experiment | None = None) -> Run:
    experiment = experiment or experiment_create(owner=user, data=spec())
    sweep = experiment.sweeps.first() or Sweep.objects.create(
        experiment=experiment, spec=experiment.parsed_spec().to_dict(), status="completed"
    )
    config = config or {"model": "mock/echo"}
    return Run.objects.create(experiment=experiment, sweep=sweep, config=config, config_hash=str(config))


@pytest.mark.django_db
def test_run_page_paginates_fifty_samples_a_page_in_dataset_order(user):
    run = bare_run(user)
    make_samples(run, 120)
    client = logged_in(user)

    def row_numbers(query: str) -> list[int]:
        _, doc = get(client, f"/runs/{run.pk}/{query}")
        return [int(n.one("h3").text.split()[1]) for n in doc.all(cls="sample")]

    assert row_numbers("") == list(range(50))
    assert row_numbers("?page=2") == list(range(50, 100))
    assert row_numbers("?page=3") == list(range(100, 120))
    assert row_numbers("?page=99") == list(range(100, 120))  # past the end: the last page
    assert row_numbers("?page=nope") == list(range(50))
    # Page links keep the filter.
    page, doc = get(client, f"/runs/{run.pk}/?max_score=0.7")
    assert "96 samples match" in page
    assert 'href="?max_score=0.7&amp;page=2"' in page
    assert row_numbers("?max_score=0.7&page=2")[:3] == [62, 63, 64]


@pytest.mark.django_db
def test_run_page_queries_do_not_grow_with_samples(user, django_assert_max_num_queries, django_assert_num_queries):
    small, big = bare_run(user), bare_run(user, config={"model": "mock/upper"})
    make_samples(small, 3)
    make_samples(big, 400)
    client = logged_in(user)
    client.get(f"/runs/{small.pk}/")  # warm-up: the session's first use

    # an open run's scorer means are 2 of them; the viewer's ratings of the page's samples, 1
    with django_assert_max_num_queries(11) as small_queries:
        get(client, f"/runs/{small.pk}/")
    with django_assert_num_queries(len(small_queries)):
        get(client, f"/runs/{big.pk}/?page=3&max_score=0.9")


@pytest.mark.django_db
def test_long_outputs_start_folded_and_keep_their_whitespace(user):
    run = bare_run(user)
    make_samples(run, 1)
    long_output = "line one\n    indented line\n" + "word " * 300
    sample = run.samples.get()
    sample.stages[0]["output"] = long_output
    sample.save()

    page, doc = get(logged_in(user), f"/runs/{run.pk}/")

    [folded] = doc.one(cls="stage-output").all("details")
    assert "long-text" in folded.classes and f"({len(long_output)} characters)" in folded.one("summary").text
    assert f'<pre class="output">{long_output}</pre>' in page  # whitespace kept verbatim


@pytest.mark.django_db
def test_dataset_columns_named_like_dict_methods_show_their_values(user):
    first = bare_run(user)
    second = bare_run(user, config={"model": "mock/upper"}, experiment=first.experiment)
    for run in (first, second):
        make_samples(run, 1)
        run.samples.update(inputs={"items": "3 apples", "keys": "K-1"})
    client = logged_in(user)

    for url in (f"/runs/{first.pk}/", compare_url(first.experiment_id, first.pk, second.pk)):
        _, doc = get(client, url)
        [inputs] = doc.all("dl", cls="inputs")
        assert inputs.text == "items 3 apples keys K-1"


# --- the compare page ---


def compare_url(experiment_id: int, *run_ids: int) -> str:
    return f"/experiments/{experiment_id}/compare/?" + "&".join(f"runs={i}" for i in run_ids)


@pytest.mark.django_db(transaction=True)
def test_compare_shows_each_row_side_by_side_with_word_diffs_and_scores(user):
    sweep = finished_sweep(user, scorers=TWO_SCORERS, sweep=ECHO_VS_UPPER)
    echo, upper = run_of(sweep, "mock/echo"), run_of(sweep, "mock/upper")

    page, doc = get(logged_in(user), compare_url(sweep.experiment_id, echo.pk, upper.pk))

    heads = doc.one("thead").all("th")
    assert [h.one("a").attrs["href"] for h in heads] == [f"/runs/{echo.pk}/", f"/runs/{upper.pk}/"]
    assert "model mock/echo" in heads[0].text and "model mock/upper" in heads[1].text
    assert f"Score {echo.score:.3f}" in heads[0].text
    for head, run in zip(heads, (echo, upper), strict=True):
        for k, name in enumerate(("icontains", "max_length")):
            values = Score.objects.filter(sample__run=run, scorer_index=k).values_list("value", flat=True)
            mean = sum(values) / len(values)
            assert f"{name}: mean {mean:.2f} (3 scored)" in head.one("ul", cls="scorer-means").text

    rows = doc.all(cls="compare-row")
    samples = {(s.run_id, s.row_index): s for s in RunSample.objects.filter(sweep=sweep)}
    assert len(rows) == 3
    for row_index, row in enumerate(rows):
        ticket = samples[(echo.pk, row_index)].inputs["ticket"]
        assert row.one(cls="compare-inputs").text.count(ticket) == 1  # the inputs, once
        first, second = row.all("td", cls="compare-cell")
        assert first.attrs["data-run-id"] == str(echo.pk) and second.attrs["data-run-id"] == str(upper.pk)
        # The first run is the baseline; upper-casing changes every word of the second.
        assert first.one(cls="compare-output").text == samples[(echo.pk, row_index)].output
        assert "differs" in second.classes
        [went] = second.all("del", cls="diff")
        [came] = second.all("ins", cls="diff")
        assert (went.text, came.text) == (ticket, ticket.upper())
        assert len(first.all("li")) == len(second.all("li")) == 2  # a verdict per scorer
        assert all(r.text for r in row.all(cls="score-reason"))
        assert "Stage outputs (2)" in second.one("details", cls="stages").text
    # Upper-casing changes neither verdict (icontains ignores case; the length stays): no best to mark.
    assert echo.score == upper.score and not any("best" in c.classes for c in doc.all("td"))


@pytest.mark.django_db(transaction=True)
def test_compare_has_a_row_per_dataset_row_and_replicate_and_reads_finished_runs_stored_means(user):
    sweep = finished_sweep(user, repeats=2, sweep=ECHO_VS_UPPER)
    url = compare_url(sweep.experiment_id, run_of(sweep, "mock/echo").pk, run_of(sweep, "mock/upper").pk)
    client = logged_in(user)

    with CaptureQueriesContext(connection) as first:
        _, doc = get(client, url)
    ids = [row.attrs["id"] for row in doc.all(cls="compare-row")]
    assert ids == ["row-0-0", "row-0-1", "row-1-0", "row-1-1", "row-2-0", "row-2-1"]
    assert "Row 0 · replicate 1" in doc.by_id("row-0-1").one(cls="compare-inputs").text
    # The runs are finished: their scorer means were stored as they closed, not averaged again.
    assert not [q for q in first.captured_queries if "SUM(" in q["sql"].upper()]
    head = doc.one("thead").text
    for run in Run.objects.filter(sweep=sweep):
        for mean in run.scorer_means:
            assert f"{mean['name']}: mean {mean['mean']:.2f} (6 scored)" in head


@pytest.mark.django_db(transaction=True)
def test_compare_marks_same_outputs_the_best_score_and_a_failed_run(user):
    sweep = finished_sweep(user, sweep={"type": "grid", "params": {"model": ["mock/echo", "mock/upper", "mock/error"],
                                                                   "params.temperature": [0.0]}})  # fmt: skip
    echo, upper, error = (run_of(sweep, m) for m in ("mock/echo", "mock/upper", "mock/error"))
    twin = Run.objects.create(experiment=echo.experiment, sweep=echo.sweep, config={"model": "mock/echo", "x": 1},
                              config_hash="twin", score=echo.score)  # fmt: skip
    for s in echo.samples.all():  # the same outputs as the echo run
        s.pk, s.run = None, twin
        s.save()

    _, doc = get(logged_in(user), compare_url(sweep.experiment_id, echo.pk, twin.pk, upper.pk, error.pk))

    for row in doc.all(cls="compare-row"):
        cells = row.all("td", cls="compare-cell")
        assert "same" in cells[1].classes and not cells[1].all(cls="diff")
        assert "failed" in cells[3].text and cells[3].one(cls="sample-error").text.startswith("stage 'summarize'")
        # Three outputs contain the expected word (icontains ignores case) and score 1; the failed
        # sample counts as 0, so the three are marked best and it is not.
        assert "best" not in cells[3].classes
        assert {"best" in c.classes for c in cells[:3]} == {True}


@pytest.mark.django_db(transaction=True)
def test_compare_escapes_html_from_the_dataset_and_the_outputs(user):
    dataset = [{"ticket": SCRIPT + " & <b>bold</b>", "expected": "script"}]
    sweep = finished_sweep(user, dataset=dataset, sweep=ECHO_VS_UPPER)
    echo, upper = run_of(sweep, "mock/echo"), run_of(sweep, "mock/upper")
    client = logged_in(user)

    for url in (compare_url(sweep.experiment_id, echo.pk, upper.pk), f"/runs/{echo.pk}/", f"/runs/{upper.pk}/"):
        page, _ = get(client, url)
        assert "<script>" not in page.lower() and "<b>bold" not in page.lower()
        assert "&lt;script&gt;" in page.lower()
    page, doc = get(client, compare_url(sweep.experiment_id, echo.pk, upper.pk))
    # The diff marks the changed words; the text inside the marks is escaped once, not twice.
    assert '<ins class="diff">&lt;SCRIPT&gt;ALERT(&quot;X&quot;)&lt;/SCRIPT&gt;</ins> &amp; <del class="diff">' in page
    assert [n.text for n in doc.all("ins", cls="diff")] == [SCRIPT.upper(), "<B>BOLD</B>"]
    assert "&amp;amp;" not in page


def test_word_diff_marks_changed_words_escaped_and_keeps_whitespace():
    assert word_diff("same text", "same text") == "same text"
    assert word_diff("a cat sat", "a dog sat") == 'a <del class="diff">cat</del><ins class="diff">dog</ins> sat'
    assert word_diff("one two three", "ONE TWO three") == (
        '<del class="diff">one two</del><ins class="diff">ONE TWO</ins> three'
    )
    assert word_diff("keep", "keep <i>this</i>") == 'keep<ins class="diff"> &lt;i&gt;this&lt;/i&gt;</ins>'
    assert word_diff("a <x> b", "a b") == 'a <del class="diff">&lt;x&gt; </del>b'
    assert word_diff("line\n  two", "line\n  TWO") == 'line\n  <del class="diff">two</del><ins class="diff">TWO</ins>'
    huge = "w " * 5000
    assert word_diff(huge, huge + "<x>").endswith("&lt;x&gt;")  # too long to diff: shown escaped, unmarked


@pytest.mark.django_db
def test_compare_accepts_repeated_and_comma_separated_runs_in_the_order_given(user):
    first = bare_run(user)
    second = bare_run(user, config={"model": "mock/upper"}, experiment=first.experiment)
    third = bare_run(user, config={"model": "mock/short"}, experiment=first.experiment)
    client = logged_in(user)
    base = f"/experiments/{first.experiment_id}/compare/"

    for query in (f"?runs={third.pk}&runs={first.pk}", f"?runs={third.pk},{first.pk}",
                  f"?runs={third.pk}%2C+{first.pk}&runs={third.pk}"):  # fmt: skip
        _, doc = get(client, base + query)
        assert [h.one("a").text for h in doc.one("thead").all("th")] == [f"Run {third.pk}", f"Run {first.pk}"]
    _, doc = get(client, base + f"?runs={first.pk},{second.pk}&runs={third.pk}")
    assert len(doc.one("thead").all("th")) == 3
    assert "These runs have no samples yet." in doc.one("table").text


@pytest.mark.django_db
def test_bad_run_selections_get_a_clear_message_or_a_404_never_a_500(user, other_user):
    mine = bare_run(user)
    sibling = bare_run(user, config={"model": "mock/upper"}, experiment=mine.experiment)
    elsewhere = bare_run(user)  # the user's, in another experiment
    foreign = bare_run(other_user)
    client = logged_in(user)
    client.raise_request_exception = False
    base = f"/experiments/{mine.experiment_id}/compare/"

    def message(query: str) -> str:
        _, doc = get(client, base + query, status=400)
        boxes = [box for box in doc.all("input") if box.attrs["name"] == "runs"]
        assert len(boxes) == 2  # the picker offers the latest sweep's runs
        return doc.one(cls="flash").text

    assert message(f"?runs={mine.pk}") == "Choose 2 to 6 runs to compare; 1 chosen."
    assert "1 chosen" in message(f"?runs={mine.pk}&runs={mine.pk}")  # a run twice is one run
    assert "7 chosen" in message("?runs=" + ",".join(str(i) for i in range(1, 8)))
    assert "0 chosen" in message("?runs=&runs=,")
    for junk in ("abc", "1.5", "-3", "1;DROP TABLE", "0x10", "１２", "9" * 19):
        assert "is not a run id" in message(f"?runs={mine.pk}&runs={junk}")
    text = message(f"?runs={mine.pk}&runs={elsewhere.pk}")
    assert f"Run {elsewhere.pk} belongs to another experiment" in text

    assert client.get(base + f"?runs={mine.pk}&runs={foreign.pk}").status_code == 404
    assert client.get(base + f"?runs={mine.pk}&runs=999999999").status_code == 404
    assert client.get(base + f"?runs={mine.pk}&runs={'9' * 18}").status_code == 404
    assert client.get(base + f"?runs={mine.pk},{sibling.pk}").status_code == 200


@pytest.mark.django_db
def test_the_run_page_links_to_choosing_runs_to_compare_it_with(user):
    run = bare_run(user)
    other = bare_run(user, config={"model": "mock/upper"}, experiment=run.experiment)
    client = logged_in(user)

    _, page = get(client, f"/runs/{run.pk}/")
    _, doc = get(client, page.by_id("compare-link").attrs["href"])

    assert not doc.all(cls="flash")  # nothing went wrong: the choice is still to be made
    ticked = {box.attrs["value"] for box in doc.all("input") if "checked" in box.attrs}
    assert ticked == {str(run.pk)} and doc.by_id(f"pick-{other.pk}")


@pytest.mark.django_db
def test_compare_without_runs_offers_the_latest_sweeps_runs_to_choose(user):
    run = bare_run(user)
    other = bare_run(user, config={"model": "mock/upper"}, experiment=run.experiment)

    _, doc = get(logged_in(user), f"/experiments/{run.experiment_id}/compare/")

    form = doc.one("form", cls="compare-picker")
    assert form.attrs["method"] == "get" and form.attrs["action"] == f"/experiments/{run.experiment_id}/compare/"
    boxes = form.all("input")
    assert {b.attrs["name"] for b in boxes} == {"runs"} and {b.attrs["value"] for b in boxes} == {
        str(run.pk),
        str(other.pk),
    }
    assert {label.attrs["for"] for label in form.all("label")} == {box.attrs["id"] for box in boxes}  # labelled
    assert not doc.all(cls="flash")


@pytest.mark.django_db
def test_compare_paginates_25_rows_with_constant_queries(user, django_assert_max_num_queries,
                                                         django_assert_num_queries):  # fmt: skip
    first = bare_run(user)
    second = bare_run(user, config={"model": "mock/upper"}, experiment=first.experiment)
    make_samples(first, 30)
    make_samples(second, 200)  # rows 30..199: only the second run has them
    client = logged_in(user)
    url = compare_url(first.experiment_id, first.pk, second.pk)
    client.get(url)  # warm-up: the session's first use

    with django_assert_max_num_queries(11) as queries:  # 1 of them: the viewer's ratings of the page's samples
        _, doc = get(client, url)
    rows = doc.all(cls="compare-row")
    assert len(rows) == 25 and rows[0].attrs["id"] == "row-0-0" and rows[-1].attrs["id"] == "row-24-0"
    assert "page 1 of 8" in doc.one("nav", cls="pagination").text

    with django_assert_num_queries(len(queries)):
        _, doc = get(client, url + "&page=2")
    rows = doc.all(cls="compare-row")
    assert [r.attrs["id"] for r in rows[4:6]] == ["row-29-0", "row-30-0"]
    cells = rows[5].all("td", cls="compare-cell")
    assert "No sample for this row." in cells[0].text and "ticket 30" in cells[1].text


# --- who may see what ---


@pytest.mark.django_db
def test_pages_require_login(user):
    run = bare_run(user)
    for url in (f"/runs/{run.pk}/", f"/experiments/{run.experiment_id}/compare/?runs={run.pk},{run.pk}"):
        response = Client().get(url)
        assert response.status_code == 302 and response["Location"].startswith(resolve_url(settings.LOGIN_URL))


@pytest.mark.django_db
def test_another_users_run_and_experiment_are_404(user, other_user):
    run = bare_run(user)
    other = bare_run(user, config={"model": "mock/upper"}, experiment=run.experiment)
    bob = logged_in(other_user)

    assert bob.get(f"/runs/{run.pk}/").status_code == 404
    assert bob.get(f"/experiments/{run.experiment_id}/compare/").status_code == 404
    assert bob.get(compare_url(run.experiment_id, run.pk, other.pk)).status_code == 404
    # nor through an experiment of bob's own
    bobs = bare_run(other_user)
    assert bob.get(compare_url(bobs.experiment_id, bobs.pk, run.pk)).status_code == 404
