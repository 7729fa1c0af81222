from __future__ import annotations

import pytest

from sweeps.engine import templating
from sweeps.engine.templating import (
    TemplateError,
    TemplateLimits,
    compile_template,
    render,
    template_variables,
)


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


@pytest.mark.parametrize(
    "source", ["{{ 'a' * 10**10 }}", "{{ 'ab' * 10000000 }}", "{{ [1] * 99999999 }}", "{{ 2 ** 1000000 }}"]
)
def test_templates_cannot_build_huge_values(source):
    with pytest.raises(TemplateError, match="unsafe template: .*too large"):
        render(source, {})


def test_ordinary_arithmetic_still_works():
    assert render("{{ '-' * 3 }} {{ 2 ** 10 }} {{ 3 * 4 }}", {}) == "--- 1024 12"


# --- Limits: CPU bombs and size bombs end fast with a clear message (issue 12, items 5 and 6) ---

NESTED_LOOPS = "{% for i in range(99999) %}{% for j in range(99999) %}{% for k in range(99999) %}{% endfor %}{% endfor %}{% endfor %}"


@pytest.mark.parametrize(
    "source",
    [
        NESTED_LOOPS,
        "{% for i in range(20000) %}{% for j in range(20000) %}{{ j }}{% endfor %}{% endfor %}",
        "{% for i in range(99999) %}{% for j in range(99999) %}{% if j %}{% endif %}{% endfor %}{% endfor %}",
    ],
)
def test_loop_bombs_stop_at_a_limit(source):
    with pytest.raises(TemplateError, match=r"^template limit: "):
        render(source, {})


def test_calls_count_as_steps():
    templating.configure(TemplateLimits(max_steps=50))
    try:
        with pytest.raises(TemplateError, match="more than 50 steps"):
            render(
                "{% macro f() %}{% endmacro %}{% set xs = range(99)|list %}{{ xs|map('string')|list|length }}{% for x in xs %}{{ f() }}{% endfor %}",
                {},
            )
    finally:
        templating.configure(TemplateLimits())


def test_the_wall_clock_limit_stops_a_slow_render():
    # Steps are unlimited here: only the deadline can stop the loop.
    templating.configure(TemplateLimits(max_steps=10**12, max_seconds=0.05))
    try:
        with pytest.raises(TemplateError, match=r"^template limit: the template took longer than 0.05 s"):
            render(NESTED_LOOPS, {})
    finally:
        templating.configure(TemplateLimits())


def test_renders_inside_one_budget_share_it():
    templating.configure(TemplateLimits(max_steps=30))
    try:
        loop = "{% for i in range(10) %}{% endfor %}"
        assert render(loop, {}) == "" and render(loop, {}) == ""  # each render alone fits
        with templating.render_budget(), pytest.raises(TemplateError, match="more than 30 steps"):
            for _ in range(3):
                render(loop, {})
    finally:
        templating.configure(TemplateLimits())


def test_recursion_is_a_template_error():
    with pytest.raises(TemplateError, match="recursion too deep"):
        render("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", {})


@pytest.mark.parametrize(
    "source",
    [
        "{{ '{:>999999999}'.format('a') }}",
        "{{ '{:>{w}}'.format('a', w=999999999) }}",
        "{{ '{:.999999999f}'.format(1.5) }}",
        "{{ '{0}{0}'.format(big) }}",
        "{{ '%0999999999d' % 1 }}",
        "{{ '%*d' % (999999999, 1) }}",
        "{{ '%s%s' % (big, big) }}",
        "{{ '%0999999999d'|format(1) }}",
        "{{ 'a'|center(999999999) }}",
        "{{ 'a'|indent(999999999) }}",
        "{{ big|replace('a', 'aaaa') }}",
        "{{ [big, big]|join }}",
        "{{ [1]|slice(999999999)|list|length }}",
        "{{ 'a'.ljust(999999999) }}",
        "{{ 'a'.zfill(999999999) }}",
        "{{ ''.join([big, big]) }}",
        "{{ ([big] * 1000)|map('string')|join }}",
        "{{ ''.join(([big] * 1000)|map('string')) }}",
        "{{ big.replace('a', 'aa') }}",
        "{{ big ~ big }}",
        "{{ big + big }}",
        "{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        "{{ [big] * 1000 }}",
        "{{ ([big] * 1000)|string }}",
        "{% for i in range(1000) %}{{ big }}{% endfor %}",
        "{% set s %}{% for i in range(1000) %}{{ big }}{% endfor %}{% endset %}{{ s|length }}",
        "{{ lipsum(999999999) }}",
    ],
)
def test_size_bombs_are_refused_before_the_string_is_built(source):
    with pytest.raises(TemplateError, match=r"too large \(limit 1,000,000\)"):
        render(source, {"big": "a" * 999_999})


def test_huge_numbers_are_refused():
    source = "{% set ns = namespace(x=10 ** 100) %}{% for i in range(30) %}{% set ns.x = ns.x * ns.x %}{% endfor %}"
    with pytest.raises(TemplateError, match="too large"):
        render(source, {})


def test_the_size_limit_is_a_setting():
    templating.configure(TemplateLimits(max_chars=10))
    try:
        assert render("{{ 'a'|center(10) }}", {}) == "    a     "
        with pytest.raises(TemplateError, match=r"limit 10\)"):
            render("{{ 'a'|center(11) }}", {})
    finally:
        templating.configure(TemplateLimits())


def test_ordinary_formatting_still_works():
    source = (
        "{{ '{:>5}|{:.2f}'.format('a', 1.5) }}|{{ '%05d' % 3 }}|{{ '%s-%s'|format('x', 'y') }}|{{ 'a'|center(5) }}|"
        "{{ 'a' ~ 1 }}|{{ [1, 2]|join(',') }}|{{ {'k': 1} }}|{{ 'ab'.replace('a', 'x') }}|{{ 'ab' + 'c' }}|"
        "{{ 'x'|indent(2, first=true) }}|{% for i in range(3) %}{{ i }}{% endfor %}"
    )
    assert render(source, {}) == "    a|1.50|00003|x-y|  a  |a1|1,2|{'k': 1}|xb|abc|  x|012"


def test_validation_names_a_template_that_is_a_bomb_by_itself():
    assert templating.limit_error(compile_template(NESTED_LOOPS)).startswith("template limit: ")
    assert templating.limit_error(compile_template("{{ ticket }}{% for i in range(99999) %}{% endfor %}")) is None
