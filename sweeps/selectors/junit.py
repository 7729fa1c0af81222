"""A sweep as a JUnit XML report, the format CI systems display: one test suite per
configuration (run), one test case per dataset row and replicate; a case fails when its sample
failed or a scorer did not pass it, with every reason in the failure's text."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from xml.etree import ElementTree as ET

from sweeps.engine.space import flatten
from sweeps.models import RunSample, Sweep

CHUNK = 500
# XML 1.0 cannot hold these at all, escaped or not; a model's answer can
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def xml_text(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


def config_label(config: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in sorted(flatten(config).items())) or "default"


def samples_of(sweep: Sweep) -> Iterator[RunSample]:
    samples = RunSample.objects.filter(sweep=sweep).select_related("run").order_by("run_id", "row_index", "replicate")
    return samples.prefetch_related("scores").iterator(chunk_size=CHUNK)


def junit_xml(sweep: Sweep) -> bytes:
    root = ET.Element("testsuites", name=f"sweep {sweep.pk}")
    suite: ET.Element | None = None
    run_id = None
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    counts: dict[str, int] = {}
    for sample in samples_of(sweep):
        if sample.run_id != run_id:
            if suite is not None:
                suite.attrib.update({k: str(v) for k, v in counts.items()})
            run_id, counts = sample.run_id, {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
            suite = ET.SubElement(root, "testsuite", name=xml_text(f"run {run_id}: {config_label(sample.run.config)}"))
        assert suite is not None
        counts["tests"] += 1
        case = ET.SubElement(suite, "testcase", classname=f"run {run_id}",
                             name=f"row {sample.row_index} replicate {sample.replicate}",
                             time=f"{(sample.latency_ms or 0) / 1000:.3f}")  # fmt: skip
        if sample.status == RunSample.Status.FAILED:
            counts["errors"] += 1
            ET.SubElement(case, "error", message=xml_text(sample.error[:500])).text = xml_text(sample.error)
        elif sample.status not in RunSample.SCORED:
            counts["skipped"] += 1
            ET.SubElement(case, "skipped", message=f"sample {sample.status}")
        elif failed := [score for score in sample.scores.all() if not score.passed]:
            counts["failures"] += 1
            reasons = [f"{score.name}: {score.reason}" for score in failed]
            failure = ET.SubElement(case, "failure", message=xml_text("; ".join(reasons)[:500]))
            failure.text = xml_text("\n".join(reasons))
        ET.SubElement(case, "system-out").text = xml_text(sample.output)
    if suite is not None:
        suite.attrib.update({k: str(v) for k, v in counts.items()})
    for element in root:
        for key in totals:
            totals[key] += int(element.get(key, 0))
    root.attrib.update({k: str(v) for k, v in totals.items()})
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
