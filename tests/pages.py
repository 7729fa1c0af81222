"""Reading tables out of rendered pages, for tests that check what a person sees."""

from __future__ import annotations

from html.parser import HTMLParser


class Table(HTMLParser):
    """Rows of the table with a given id: (the tr's attributes, cell texts, hrefs, inputs)."""

    def __init__(self, table_id: str, html: str) -> None:
        super().__init__()
        self.table_id, self.inside = table_id, False
        self.headers: list[str] = []
        self.rows: list[dict] = []
        self._cell: list[str] | None = None
        self._row: dict | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and attrs.get("id") == self.table_id:
            self.inside = True
        if not self.inside:
            return
        if tag == "tr":
            self._row = {"attrs": attrs, "cells": [], "hrefs": [], "inputs": []}
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "a" and self._row is not None:
            self._row["hrefs"].append(attrs.get("href"))
        elif tag == "input" and self._row is not None:
            self._row["inputs"].append(attrs)

    def handle_endtag(self, tag):
        if not self.inside:
            return
        if tag in ("td", "th") and self._cell is not None:
            self._row["cells"].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if not self.headers:
                self.headers = self._row["cells"]
            else:
                self.rows.append(self._row)
            self._row = None
        elif tag == "table":
            self.inside = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
