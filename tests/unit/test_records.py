"""The record's shape, written once in app.schemas, is the one SQL and the export files use."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import func, literal_column
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

from app import bulkfiles
from app.reads.records import RECORD_FIELDS, json_record, record_json
from app.schemas import UserRecord


def test_the_sql_record_has_the_schema_keys_in_its_order() -> None:
    assert RECORD_FIELDS == ("first_name", "last_name", "userid", "groups")
    assert tuple(UserRecord.model_fields) == RECORD_FIELDS
    dialects: list[tuple[str, Dialect]] = [
        ("sqlite", sqlite.dialect(paramstyle="named")),
        ("postgresql", postgresql.dialect(paramstyle="pyformat")),  # type: ignore[no-untyped-call]
    ]
    for name, dialect in dialects:
        sql = str(record_json(name).compile(dialect=dialect))
        places = [sql.index(f"'{field}'") for field in RECORD_FIELDS]
        assert places == sorted(places), sql


def test_a_record_of_another_shape_is_refused_when_built() -> None:
    columns: dict[str, Any] = {
        field: literal_column("1") for field in RECORD_FIELDS if field != "groups"
    }
    with pytest.raises(ValueError, match="fields"):
        json_record(func.json_object, columns)


def test_the_export_files_write_the_same_record() -> None:
    exported = json.loads(bulkfiles._JSON_RECORD % ('"Joe"', '"Smith"', '"jsmith"', '"admins"'))
    assert tuple(exported) == RECORD_FIELDS
    assert UserRecord.model_validate(exported).groups == ["admins"]
    assert set(bulkfiles.CSV_HEADER) == set(RECORD_FIELDS)
