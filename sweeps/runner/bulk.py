"""Bulk writes of plain rows of values, in as few statements as the database allows.

Django's bulk_update builds a CASE WHEN per row and field (~2 ms of Python per row on the
sweep's hot path) and bulk_create builds a model instance and an expression per value. These
helpers take rows of values in the order of `fields` (a foreign key by its id), plus `common`
values that every row shares (prepared once). Each value is prepared by its field, so JSON and
datetimes are stored exactly as the ORM would store them.

How the rows travel depends on the database:
- SQLite: executemany of one parameterised statement, compiled once and run in-process, so a
  row costs microseconds.
- PostgreSQL: executemany sends one statement per row and, with Django's client-side binding,
  the server parses and plans every one of them: about twice the CPU of writing the row itself.
  So inserts go through COPY (the cheapest way in, for the server and for Python) and updates
  become a single UPDATE ... FROM (VALUES ...) statement.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Field, Model


def _prepared(columns: Sequence[Field], rows: Iterable[Iterable], conn) -> list[list]:
    return [[c.get_db_prep_save(v, conn) for c, v in zip(columns, row, strict=True)] for row in rows]


def _column(model: type[Model], name: str) -> Field:
    field = model._meta.get_field(name)
    if not isinstance(field, Field):  # a reverse relation has no column of this table
        raise TypeError(f"{model.__name__}.{name} is not a column")
    return field


def _name(field: Field) -> str:
    """The column's name: set on every concrete field (_column refuses the others)."""
    assert field.column is not None
    return field.column


def _shared(model: type[Model], common: Mapping[str, Any] | None, conn) -> tuple[list[Field], list]:
    """The columns of the common values, and the values prepared."""
    common = common or {}
    columns = [_column(model, f) for f in common]
    return columns, _prepared(columns, [common.values()], conn)[0]


def insert_rows(
    model: type[Model], fields: Sequence[str], rows: Iterable[Sequence], common: Mapping[str, Any] | None = None
) -> None:
    """INSERT one row per sequence of values of `fields`, each with the `common` values too
    (primary keys come from the database and are not read back). No model defaults apply:
    every NOT NULL column without a database default must be given."""
    conn = connections[DEFAULT_DB_ALIAS]  # resolved once: the proxy costs a lookup per value
    columns = [_column(model, f) for f in fields]
    shared_columns, shared = _shared(model, common, conn)
    values = [[*row, *shared] for row in _prepared(columns, rows, conn)]
    if not values:
        return
    table = conn.ops.quote_name(model._meta.db_table)
    names = ", ".join(conn.ops.quote_name(_name(c)) for c in [*columns, *shared_columns])
    with conn.cursor() as cursor:
        if conn.vendor == "postgresql":
            # COPY bypasses Django's cursor wrapper: it is not in connection.queries.
            with cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                for row in values:
                    copy.write_row(row)
        else:
            placeholders = ", ".join(["%s"] * len(values[0]))
            cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({placeholders})", values)


def update_rows(
    model: type[Model], fields: Sequence[str], rows: Iterable[Sequence], common: Mapping[str, Any] | None = None
) -> None:
    """UPDATE rows by primary key: each row is (pk, *values of `fields`), and takes the `common`
    values too."""
    conn = connections[DEFAULT_DB_ALIAS]
    quote = conn.ops.quote_name
    pk = model._meta.pk
    assert pk is not None  # every model has one
    columns = [_column(model, f) for f in fields]
    shared_columns, shared = _shared(model, common, conn)
    values = _prepared([pk, *columns], rows, conn)
    if not values:
        return
    table = quote(model._meta.db_table)
    with conn.cursor() as cursor:
        if conn.vendor == "postgresql":
            cursor.execute(_pg_update_from_values(conn, table, [pk, *columns], values, zip(shared_columns, shared)))
        else:
            sets = ", ".join(f"{quote(_name(c))} = %s" for c in [*columns, *shared_columns])
            params = [[*row[1:], *shared, row[0]] for row in values]
            cursor.executemany(f"UPDATE {table} SET {sets} WHERE {quote(_name(pk))} = %s", params)


def _pg_update_from_values(conn, table: str, columns: Sequence[Field], values: list[list], shared) -> str:
    """UPDATE table SET c = v.c, ..., s = <shared> FROM (VALUES (...), ...) AS v WHERE table.pk = v.pk.

    Values are merged into the SQL as literals, as Django's client-side binding sends any query,
    by psycopg's own adapters (what mogrify does, without its overhead per call): a statement
    with thousands of placeholders would cost psycopg more to parse than the server to run."""
    from psycopg.adapt import Transformer

    quote = conn.ops.quote_name
    pk, *assigned = columns
    literal = Transformer(conn.connection).as_literal
    rows = b", ".join([b"(" + b", ".join([literal(v) for v in row]) + b")" for row in values]).decode()
    # VALUES columns take their types from the literals (text when a column is all NULL), so
    # each is cast to its column's type; without a length (varchar(n) would truncate silently,
    # where the assignment refuses a value that is too long, as an ordinary UPDATE does).
    cast = {c.column: c.rel_db_type(conn) if c is pk else (c.db_type(conn) or "").partition("(")[0] for c in columns}
    sets = [f"{quote(c.column)} = v.{quote(c.column)}::{cast[c.column]}" for c in assigned]
    sets += [f"{quote(c.column)} = {literal(v).decode()}" for c, v in shared]
    names = ", ".join(quote(c.column) for c in columns)
    return (
        f"UPDATE {table} SET {', '.join(sets)} FROM (VALUES {rows}) AS v({names}) "
        f"WHERE {table}.{quote(pk.column)} = v.{quote(pk.column)}::{cast[pk.column]}"
    )
