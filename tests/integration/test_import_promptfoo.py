"""`manage.py import_promptfoo` on a suite written the way promptfoo's documentation shows one:
three prompts (one a file), two providers with config, ten tests (six inline, four from a CSV
with __expected columns), defaultTest vars and asserts, and assertions with and without a
counterpart. Run for real against the fake OpenAI and Anthropic server."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

from sweeps.engine.promptfoo import import_config
from sweeps.engine.spec import load_spec_text, parse_spec
from sweeps.models import Experiment, Provider, RunSample, Score
from tests.fakes.llm_server import FakeLLMServer

pytestmark = pytest.mark.django_db(transaction=True)

SUITE = Path(__file__).resolve().parents[1] / "fixtures" / "promptfoo"
CONFIG = SUITE / "promptfooconfig.yaml"
INSTALLED = Path(settings.BASE_DIR) / "scorers" / "promptfoo_assert_label.py"


@pytest.fixture(autouse=True)
def installed_scorer():
    """The python assertion the import copies into scorers/, removed afterwards."""
    existed = INSTALLED.exists()
    yield INSTALLED
    if not existed:
        INSTALLED.unlink(missing_ok=True)


def imported():
    return import_config(load_spec_text(CONFIG.read_text()), SUITE, name="promptfooconfig")


def test_the_suite_maps_to_a_prompts_by_providers_grid_with_its_tests_as_rows():
    result = imported()
    spec = result.spec

    assert spec["name"] == "Support ticket routing"
    formal = (SUITE / "prompts" / "formal.txt").read_text().strip()
    assert spec["sweep"] == {"type": "grid", "params": {
        "model": ["openai/gpt-4o-mini", "anthropic/claude-3-5-haiku-20241022"],
        "prompt": ["Route this support ticket for {{company}} to one team: {{ticket}}",
                   "You work at {{company}}. Which team handles: {{ticket}}", formal],
    }}  # fmt: skip
    assert spec["pipeline"][0]["params"] == {"temperature": 0, "max_tokens": 64}  # shared by both providers
    assert len(spec["dataset"]) == 10 and all(row["company"] == "Acme" for row in spec["dataset"])
    assert spec["dataset"][0] == {
        "company": "Acme",
        "ticket": "I was charged twice this month",
        "expected_1": "charged",
    }
    assert spec["dataset"][6] == {"company": "Acme", "ticket": "Refund my last order", "expected_1": "refund"}
    assert spec["scorers"] == [
        {"type": "latency", "threshold": 5000},
        {"type": "cost", "threshold": 0.01},
        {"type": "python", "function": "scorers.promptfoo_assert_label:get_assert"},
        {"type": "icontains", "value": "{{ expected_1 }}"},  # every test has one, each its own value
    ]
    assert result.python_files == [(SUITE / "assert_label.py", "scorers.promptfoo_assert_label")]
    assert sorted(result.files) == ["prompts/formal.txt", "tests.csv"]


def test_what_has_no_counterpart_is_listed_by_name_and_path():
    unmapped = dict(imported().unmapped)
    assert unmapped["defaultTest.assert[3]"] == "rouge-n: no counterpart in PromptLooper"
    assert unmapped["tests[2].assert[1]"] == ("javascript: in 1 of 10 tests; PromptLooper's scorers apply to every row")
    for place in ("tests[0].assert[1]", "tests[1].assert[1]"):  # a rubric only two tests have
        assert unmapped[place] == "llm-rubric: in 2 of 10 tests; PromptLooper's scorers apply to every row"
    assert unmapped["outputPath"] == "no counterpart: not imported"
    assert len(unmapped) == 5


def test_mapped_assertions_have_their_counterparts():
    config = {
        "prompts": ["Say {{x}}"], "providers": ["openai:chat:gpt-4o"],
        "tests": [{"vars": {"x": "hi"}, "assert": [
            {"type": "equals", "value": "hi"}, {"type": "regex", "value": "^h"}, {"type": "starts-with", "value": "h"},
            {"type": "is-json"}, {"type": "contains-json", "value": {"type": "object"}},
            {"type": "similar", "value": "hello", "threshold": 0.8}, {"type": "not-contains", "value": "bye"},
            {"type": "llm-rubric", "value": "is a greeting", "metric": "greeting", "weight": 2},
        ]}],
    }  # fmt: skip
    result = import_config(config, SUITE, name="x")
    assert result.spec["scorers"] == [
        {"type": "exact_match", "value": "hi"}, {"type": "regex", "value": "^h"},
        {"type": "starts_with", "value": "h"}, {"type": "json_valid"},
        {"type": "json_schema", "schema": {"type": "object"}},
        {"type": "similarity", "method": "embedding", "model": "openai/text-embedding-3-small", "threshold": 0.8,
         "value": "hello"},
        {"type": "not_contains", "value": "bye"},
        {"type": "llm_judge", "model": "openai/gpt-4o-mini", "scale": "score", "threshold": 0.5,
         "rubric": "is a greeting", "weight": 2, "name": "greeting"},
    ]  # fmt: skip
    assert result.spec["pipeline"][0]["model"] == "openai/gpt-4o" and "sweep" not in result.spec
    parse_spec(result.spec)  # a spec the engine accepts as it is


def run(*args) -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("import_promptfoo", *args, stdout=out, stderr=out)
    except CommandError as e:
        return e.returncode, out.getvalue() + str(e)
    return 0, out.getvalue()


def test_import_and_run_against_real_http_providers(user, mock_latency, monkeypatch, installed_scorer):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-promptfoo-import")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-promptfoo-import")
    with FakeLLMServer() as server:
        for name, url in (("openai", server.url), ("anthropic", server.anthropic_url)):
            Provider.objects.update_or_create(name=name, defaults={"kind": name, "base_url": url,
                                                                   "api_key_env": f"{name.upper()}_API_KEY"})  # fmt: skip
        status, out = run(str(CONFIG), "--run", "--user", user.username)

    assert status == 0, out
    assert "3 prompts x 2 providers, 10 tests, 4 scorers." in out and "Not imported (5):" in out
    assert "  defaultTest.assert[3]: rouge-n: no counterpart in PromptLooper" in out
    assert installed_scorer.read_text() == (SUITE / "assert_label.py").read_text()
    experiment = Experiment.objects.get(name="Support ticket routing")
    sweep = experiment.sweeps.get()
    assert sweep.status == "completed" and sweep.total == 60 and sweep.failed == 0
    assert {r.protocol for r in server.requests} == {"openai", "anthropic"} and len(server.requests) == 60
    python_scores = Score.objects.filter(sample__sweep=sweep, name="python")
    assert python_scores.count() == 60 and all(s.passed for s in python_scores)
    assert python_scores.first().reason.startswith("mentions ")
    assert RunSample.objects.filter(sweep=sweep, score=1.0).count() == 60  # echoed tickets pass every check


def test_a_config_with_nothing_to_run_exits_2_naming_why(tmp_path):
    config = tmp_path / "promptfooconfig.yaml"
    config.write_text("prompts: ['hi']\nproviders: ['vertex:gemini-pro']\n")
    status, out = run(str(config))
    assert status == 2 and "providers: no provider could be imported (openai:… or anthropic:…)" in out
    assert not Experiment.objects.exists()


def test_a_file_over_the_size_limit_is_listed_not_read(tmp_path):
    (tmp_path / "big.txt").write_text("x" * 200)
    (tmp_path / "tests.csv").write_text("q\n" + "row\n" * 100)
    config = {"prompts": ["Say {{q}}", "file://big.txt"], "providers": ["echo"], "tests": ["file://tests.csv"]}
    result = import_config(config, tmp_path, name="x", max_bytes=100)
    unmapped = dict(result.unmapped)
    assert (
        unmapped["prompts[1]"]
        == "big.txt: cannot be read (200 bytes, more than the limit of 100 (PROMPTLOOPER_MAX_BODY_BYTES))"
    )
    assert unmapped["tests[0]"].startswith("tests.csv: 402 bytes, more than the limit of 100")
    assert result.spec["dataset"] == []
