"""Property test of how an edit sent as data rewrites a typed spec text (services.versions.
edited_text): whatever the change, a block-YAML text is edited in place (its comments kept, rows
it kept out left out) into one that says exactly the new spec; a JSON or flow text gives None
(the caller writes the spec out whole). Never an exception. No table is read: nothing is saved."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sweeps.engine.spec import dump_spec_text, load_spec_text
from sweeps.models import SpecVersion
from sweeps.services.versions import edited_text, normal_form, with_kept_dataset
from tests.conftest import spec

words = st.text(alphabet="abcdefghij klm:#-{}'\"", min_size=1, max_size=12)
rows = st.lists(st.fixed_dictionaries({"ticket": words, "expected": words}), min_size=1, max_size=4)
changes = st.fixed_dictionaries(
    {},
    optional={
        "name": words.filter(str.strip),
        "description": words,
        "repeats": st.integers(min_value=1, max_value=3),
        "max_concurrency": st.integers(min_value=1, max_value=8),
        "dataset": rows,
    },
)
layouts = st.sampled_from(["yaml", "commented", "json", "flow", "no-dataset"])


def typed(layout: str, data: dict) -> str:
    if layout == "json":
        return json.dumps(data, indent=1)
    if layout == "flow":
        return "{" + ", ".join(f"{key}: {json.dumps(value)}" for key, value in data.items()) + "}\n"
    text = dump_spec_text({k: v for k, v in data.items() if layout != "no-dataset" or k != "dataset"})
    return f"# typed by hand\n{text}# the end\n" if layout == "commented" else text


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(layout=layouts, change=changes)
def test_an_edit_sent_as_data_says_the_new_spec_or_is_written_out(layout, change):
    before = normal_form(spec(sweep={"type": "grid", "params": {"params.temperature": [0.0]}}))
    latest = SpecVersion(number=1, text=typed(layout, before), spec=before)
    after = normal_form({**before, **change})

    text = edited_text(latest, after)

    if layout in ("json", "flow"):
        assert text is None  # no lines to cut: written out whole
        return
    assert text is not None  # a block mapping is always edited in place
    assert normal_form(with_kept_dataset(load_spec_text(text), after)) == after
    if layout == "commented":
        assert text.startswith("# typed by hand\n") and "# the end\n" in text
    if layout == "no-dataset":
        assert "dataset" not in load_spec_text(text)  # rows kept out stay out
