"""Scorers that read the output as text: equality, containment, regex and length checks."""

from __future__ import annotations

import re
from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import jinja2

from sweeps.engine.scorers.base import Scorer, ScoreResult, SpecOptions, quote, verdict
from sweeps.engine.templating import TemplateError, render_template


@dataclass(frozen=True, kw_only=True)
class _TextCheck(Scorer):
    """Compares the output with the rendered `value` template."""

    options = ("value",)
    template_keys = {"value": ()}
    passed_as: ClassVar[str]  # reason wording, e.g. "contains" / "does not contain"
    failed_as: ClassVar[str]
    value: jinja2.Template

    @classmethod
    def parse_options(cls, options: SpecOptions) -> dict[str, Any]:
        return {"value": options.template("value")}

    def evaluate(self, output: str, variables: Mapping[str, Any]) -> ScoreResult:
        expected = render_template(self.value, variables)
        passed = self.check(output, expected)
        return verdict(passed, f"output {self.passed_as if passed else self.failed_as} {quote(expected)}")

    @abstractmethod
    def check(self, output: str, expected: str) -> bool: ...


class ExactMatch(_TextCheck):
    passed_as, failed_as = "equals", "does not equal"

    def check(self, output: str, expected: str) -> bool:
        return output.strip() == expected


class Contains(_TextCheck):
    passed_as, failed_as = "contains", "does not contain"

    def check(self, output: str, expected: str) -> bool:
        return expected in output


class NotContains(_TextCheck):
    passed_as, failed_as = "does not contain", "contains"

    def check(self, output: str, expected: str) -> bool:
        return expected not in output


class IContains(_TextCheck):
    passed_as, failed_as = "contains (ignoring case)", "does not contain (ignoring case)"

    def check(self, output: str, expected: str) -> bool:
        return expected.casefold() in output.casefold()


class StartsWith(_TextCheck):
    passed_as, failed_as = "starts with", "does not start with"

    def check(self, output: str, expected: str) -> bool:
        return output.lstrip().startswith(expected)


@dataclass(frozen=True, kw_only=True)
class EqualsExpected(Scorer):
    """The output equals the row's expected answer (a dataset column, `expected` by default)."""

    options = ("field", "ignore_case")
    field: str = "expected"
    ignore_case: bool = False

    @classmethod
    def parse_options(cls, options: SpecOptions) -> dict[str, Any]:
        return {
            "field": options.text("field", "expected"),
            "ignore_case": options.boolean("ignore_case", False),
        }

    def evaluate(self, output: str, variables: Mapping[str, Any]) -> ScoreResult:
        if self.field not in variables:
            return verdict(False, f"row has no {self.field!r} value")
        expected, got = str(variables[self.field]).strip(), output.strip()
        if self.ignore_case:
            passed = got.casefold() == expected.casefold()
        else:
            passed = got == expected
        return verdict(passed, f"output {'equals' if passed else 'does not equal'} {quote(expected)}")


_REGEX_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL}


@dataclass(frozen=True, kw_only=True)
class Regex(Scorer):
    """re.search of the rendered `value` in the output; `flags` letters from i, m, s."""

    options = ("value", "flags")
    template_keys = {"value": ()}
    value: jinja2.Template
    flags: int = 0

    @classmethod
    def parse_options(cls, options: SpecOptions) -> dict[str, Any]:
        value = options.template("value")
        letters = options.spec.get("flags", "")
        flags = 0
        if isinstance(letters, str) and set(letters) <= _REGEX_FLAGS.keys():
            for letter in letters:
                flags |= _REGEX_FLAGS[letter]
        else:
            options.error("flags", f"must be letters from: {', '.join(_REGEX_FLAGS)}; got {letters!r}")
        if value is not None:
            cls._check_fixed_pattern(value, flags, options)
        return {"value": value, "flags": flags}

    @staticmethod
    def _check_fixed_pattern(value: jinja2.Template, flags: int, options: SpecOptions) -> None:
        """Refuse a bad regex now, unless the pattern depends on the row (checked per row then)."""
        try:
            pattern = render_template(value, {})
        except TemplateError:
            return
        try:
            re.compile(pattern, flags)
        except re.error as exc:
            options.error("value", f"invalid regular expression: {exc}")

    def evaluate(self, output: str, variables: Mapping[str, Any]) -> ScoreResult:
        pattern = render_template(self.value, variables)
        try:
            found = re.search(pattern, output, self.flags)  # `re` caches compiled patterns
        except re.error as exc:
            return verdict(False, f"invalid regular expression {quote(pattern)}: {exc}")
        return verdict(found is not None, f"output {'matches' if found else 'does not match'} /{pattern}/")


@dataclass(frozen=True, kw_only=True)
class _LengthCheck(Scorer):
    """Bounds the stripped output's length, counted in `unit`s (chars or words)."""

    options = ("value", "unit")
    passed_as: ClassVar[str]
    failed_as: ClassVar[str]
    value: int
    unit: str = "chars"

    @classmethod
    def parse_options(cls, options: SpecOptions) -> dict[str, Any]:
        return {"value": options.count("value"), "unit": options.choice("unit", ("chars", "words"), "chars")}

    def evaluate(self, output: str, variables: Mapping[str, Any]) -> ScoreResult:
        text = output.strip()
        length = len(text.split()) if self.unit == "words" else len(text)
        passed = self.within(length)
        return verdict(passed, f"{length} {self.unit}, {self.passed_as if passed else self.failed_as} {self.value}")

    @abstractmethod
    def within(self, length: int) -> bool: ...


class MinLength(_LengthCheck):
    passed_as, failed_as = "at least", "fewer than"

    def within(self, length: int) -> bool:
        return length >= self.value


class MaxLength(_LengthCheck):
    passed_as, failed_as = "at most", "more than"

    def within(self, length: int) -> bool:
        return length <= self.value
