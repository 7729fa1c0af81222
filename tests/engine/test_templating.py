from __future__ import annotations

import pytest

from sweeps.engine.templating import TemplateError, compile_template, render, template_variables


def test_render_substitutes_variables():
    assert render("Summarize: {{ ticket }}", {"ticket": "charged twice"}) == "Summarize: charged twice"


def test_render_supports_filters_and_control_flow():
    source = "{% for tag in tags %}{{ tag | upper }}{% if not loop.last %}, {% endif %}{% endfor %}"
    assert render(source, {"tags": ["a", "b"]}) == "A, B"


def test_render_does_not_escape_html():
    assert render("{{ text }}", {"text": "<b>Tom & Jerry</b>"}) == "<b>Tom & Jerry</b>"


def test_render_drops_a_single_trailing_newline():
    assert render("line\n", {}) == "line"


def test_variable_values_are_data_not_template_code():
    # A model output that looks like a template must reach the next prompt verbatim.
    assert render("{{ previous }}", {"previous": "{{ secret }}"}) == "{{ secret }}"


def test_compiled_templates_are_cached():
    source = "cache me {{ x }}"
    assert compile_template(source) is compile_template(source)


def test_render_reuses_the_cached_template():
    source = "render cache {{ x }}"
    render(source, {"x": 1})
    hits_before = compile_template.cache_info().hits
    assert render(source, {"x": 2}) == "render cache 2"
    assert compile_template.cache_info().hits == hits_before + 1


def test_undefined_variable_is_an_error_naming_it():
    with pytest.raises(TemplateError) as caught:
        render("Summarize: {{ ticket }}", {"summary": "x"})
    assert str(caught.value) == "'ticket' is undefined"


def test_missing_attribute_is_an_error():
    with pytest.raises(TemplateError, match="has no attribute 'missing'"):
        render("{{ row.missing }}", {"row": {}})


def test_syntax_error_gives_the_line_number():
    with pytest.raises(TemplateError) as caught:
        compile_template("{{ x } }}")
    assert str(caught.value) == "line 1: unexpected '}'"


def test_syntax_error_on_a_later_line():
    with pytest.raises(TemplateError) as caught:
        render("first\nsecond\n{% if %}", {})
    assert str(caught.value).startswith("line 3: ")


def test_unclosed_block_is_a_syntax_error():
    with pytest.raises(TemplateError, match=r"^line \d+: .*endfor"):
        compile_template("{% for x in xs %}{{ x }}")


def test_sandbox_refuses_dunder_attributes():
    with pytest.raises(TemplateError) as caught:
        render("{{ ''.__class__.__mro__ }}", {})
    assert str(caught.value).startswith("unsafe template: ")
    assert "__class__" in str(caught.value)


def test_sandbox_refuses_function_globals():
    def helper() -> None:
        pass

    with pytest.raises(TemplateError, match=r"^unsafe template: .*__globals__"):
        render("{{ helper.__globals__ }}", {"helper": helper})


def test_sandbox_caps_huge_ranges():
    with pytest.raises(TemplateError, match="Range too big"):
        render("{{ range(10 ** 9) | list | length }}", {})


def test_runtime_errors_become_template_errors():
    with pytest.raises(TemplateError, match="ZeroDivisionError"):
        render("{{ n / 0 }}", {"n": 1})


def test_template_variables_lists_what_the_caller_must_supply():
    assert template_variables("{{ ticket }} then {{ summarize | upper }}") == {"ticket", "summarize"}


def test_template_variables_reports_objects_not_their_attributes():
    assert template_variables("{{ row.title }}") == {"row"}


def test_template_variables_ignores_names_the_template_defines_itself():
    source = "{% set greeting = 'hi' %}{% for i in range(n) %}{{ greeting }}{{ loop.index }}{{ i }}{% endfor %}"
    assert template_variables(source) == {"n"}


def test_template_variables_of_plain_text_is_empty():
    assert template_variables("no variables here") == set()


def test_template_variables_reports_syntax_errors():
    with pytest.raises(TemplateError, match=r"^line 2: "):
        template_variables("ok\n{{ broken ")


@pytest.mark.parametrize("source", ["{{ 'a' * 10**10 }}", "{{ 'ab' * 10000000 }}", "{{ [1] * 99999999 }}", "{{ 2 ** 1000000 }}"])
def test_templates_cannot_build_huge_values(source):
    with pytest.raises(TemplateError, match="unsafe template: .*too large"):
        render(source, {})


def test_ordinary_arithmetic_still_works():
    assert render("{{ '-' * 3 }} {{ 2 ** 10 }} {{ 3 * 4 }}", {}) == "--- 1024 12"
