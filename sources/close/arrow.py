"""Report rows as Arrow: typed from the raw-table contract, batched, keys kept unique.

dlt loads Arrow tables ~100x faster than dict rows (DESIGN §7), so report tables reach it as
Arrow batches whose schema comes from ``settings.TABLES`` (plus one column per metric key).
Values are accepted only if they already are of the declared type; anything else stays dict
rows, so dlt still adds new columns and reports variant columns exactly as for dicts.

This is the one module that touches dlt internals: ``generate_dlt_ids`` and the load
package's ``load_id`` (``with_dlt_columns``), because Arrow tables skip dlt's normalizer,
which would otherwise add ``_dlt_load_id`` / ``_dlt_id``.
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import dlt
import pyarrow as pa
import pyarrow.compute as pc
from dlt.common import logger
from dlt.common.normalizers.utils import generate_dlt_ids
from dlt.common.schema.typing import C_DLT_ID, C_DLT_LOAD_ID, TDataType

from . import memory
from .reshape import Row, metric_column_name
from .settings import (
    ALL_SEGMENT,
    ARROW_BATCH_BYTES,
    ARROW_BATCH_ROWS,
    ARROW_CONVERT_ROWS,
    TABLES,
    column_hints,
    metric_data_type,
)
from .windows import Window

Part = Union[pa.Table, List[Row]]
"""One window's rows: an Arrow table, or dict rows that did not fit the table's schema."""


ARROW_TYPES: Dict[str, pa.DataType] = {
    "text": pa.string(),
    "bigint": pa.int64(),
    "double": pa.float64(),
    "bool": pa.bool_(),
    "date": pa.date32(),
}
"""Arrow type of each warehouse type the report tables use (``json`` and ``timestamp``
columns are left to dlt's dict path)."""

_DLT_FIELDS = (
    pa.field(C_DLT_LOAD_ID, pa.string(), nullable=False),
    pa.field(C_DLT_ID, pa.string(), nullable=False),
)


def arrow_schema(table: str, metric_keys: Sequence[str] = ()) -> pa.Schema:
    """The Arrow schema of a report table: its ``settings.TABLES`` columns whose type has an
    Arrow equivalent, then one column per metric key (typed by ``metric_data_type``).

    Key columns are non-nullable, as dlt makes them; a partitioned table ends with its
    ``EMPTY_WINDOW_COLUMN`` (null but in empty-window markers).
    """
    hints = column_hints(table)
    types: Dict[str, TDataType] = {}
    for name, hint in hints.items():
        data_type = hint.get("data_type")
        if data_type is not None:
            types[name] = data_type
    for key in metric_keys:
        types.setdefault(metric_column_name(key), metric_data_type(key))
    return pa.schema(
        [
            pa.field(
                name,
                ARROW_TYPES[data_type],
                nullable=hints.get(name, {}).get("nullable", True) is not False,
            )
            for name, data_type in types.items()
            if data_type in ARROW_TYPES
        ]
    )


class Constant:
    """A column whose value is the same in every row (window, org, timezone ...)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def columns_to_arrow(
    columns: Mapping[str, Any], count: int, schema: pa.Schema
) -> Optional[pa.Table]:
    """Columns (name -> list of ``count`` values, or a ``Constant``) as an Arrow table of
    exactly ``schema``, or None when they do not fit it.

    They fit when every column is in ``schema`` and each column's values, read by pyarrow
    without a target type, are of the column's type, all null, or integers in a double
    column; schema columns not given are null. Anything else (a field Close added, a number
    sent as text, a fraction in an integer column, a null in a key) returns None: the caller
    loads those rows as dicts, so dlt adds the new column or reports the variant column
    exactly as before. (Converting with the target type instead would be wrong: pyarrow
    truncates 0.5 to 0 in an int64 column without a word.)
    """
    if count == 0 or not set(columns).issubset(schema.names):
        return None
    arrays: List[pa.Array] = []
    try:
        for field in schema:
            values = columns.get(field.name)
            if values is None:
                array = pa.nulls(count, field.type)
            elif isinstance(values, Constant):
                one = _fit(pa.array([values.value]), field.type)
                if one is None:
                    return None
                array = pa.repeat(one[0], count)
            else:
                array = _fit(pa.array(values), field.type)
                if array is None:
                    return None
            if not field.nullable and array.null_count:
                return None
            arrays.append(array)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return None
    return pa.Table.from_arrays(arrays, schema=schema)


def _fit(array: pa.Array, data_type: pa.DataType) -> Optional[pa.Array]:
    """``array`` as ``data_type`` if that loses nothing (same type, all null, or integers
    as doubles), else None."""
    if array.type == data_type:
        return array
    if pa.types.is_null(array.type):
        return pa.nulls(len(array), data_type)
    if pa.types.is_integer(array.type) and pa.types.is_floating(data_type):
        return array.cast(data_type)
    return None


def rows_to_arrow(rows: Sequence[Row], schema: pa.Schema) -> Optional[pa.Table]:
    """Dict rows as an Arrow table of exactly ``schema``, or None when they do not fit it
    (see ``columns_to_arrow``; a key missing from some rows is null there, as in dlt)."""
    if not rows:
        return None
    names = list(set().union(*rows))
    return columns_to_arrow(_transpose(rows, names), len(rows), schema)


def _transpose(rows: Sequence[Mapping[str, Any]], names: List[str]) -> Dict[str, Sequence[Any]]:
    """Row dicts -> ``{name: values}``; a key missing from a row is None there."""
    if not names:
        return {}
    try:  # every row has every key: one C call per row instead of one per value
        values = (
            map(itemgetter(*names), rows) if len(names) > 1 else ((row[names[0]],) for row in rows)
        )
        return dict(zip(names, zip(*values, strict=True), strict=True))
    except KeyError:
        return {name: [row.get(name) for row in rows] for name in names}


def activity_comparison_table(
    response: Mapping[str, Any],
    *,
    org_id: str,
    window: Window,
    timezone: str,
    schema: pa.Schema,
    segment: str = ALL_SEGMENT,
) -> Optional[pa.Table]:
    """``activity_comparison_rows`` built straight into columns (the largest table: one row
    per user per day, one column per metric), or None when the response is anything but the
    plain case; the caller then takes the dict path, which reports what is odd."""
    if window.days != 1 or not isinstance(response, Mapping):
        return None
    data = response.get("data")
    lookup = response.get("lookup", {})
    users = lookup.get("user", {}) if isinstance(lookup, Mapping) else {}
    if not isinstance(data, list) or not data or not isinstance(users, Mapping):
        return None
    if not all(type(item) is dict and item.get("user_id") for item in data):
        return None
    keys = set().union(*data)
    keys.discard("user_id")
    context = {
        "org_id": Constant(org_id),
        "segment": Constant(segment),
        "window_start": Constant(window.start),
        "window_end": Constant(window.end),
        "timezone": Constant(timezone),
        "date": Constant(window.start),
    }
    names = [item["user_id"] for item in data]
    if len(set(names)) != len(names):
        return None
    labels = []
    for user_id in names:
        display = users.get(user_id, {})
        labels.append(display.get("display") if isinstance(display, Mapping) else None)
    columns: Dict[str, Any] = {**context, "user_id": names, "user_name": labels}
    metrics = list(keys)
    for key, values in _transpose(data, metrics).items():
        column = metric_column_name(key)
        if column in columns:
            return None
        columns[column] = values
    return columns_to_arrow(columns, len(data), schema)


def unique_rows(rows: List[Row], key: Sequence[str]) -> List[Row]:
    """``rows`` with each ``key`` value once (the last row of a repeated key, at the place of
    its first one): tables are merged without dlt's dedup pass (``MERGE_DEDUPLICATED``)."""
    if len(rows) < 2:
        return rows
    index: Dict[Tuple[Any, ...], Row] = {}
    for row in rows:
        index[tuple(row.get(k) for k in key)] = row
    return rows if len(index) == len(rows) else list(index.values())


def unique_table(table: pa.Table, key: Sequence[str]) -> pa.Table:
    """``unique_rows`` for an Arrow table (the last row of each key value)."""
    if table.num_rows < 2:
        return table
    names = list(key)
    if table.group_by(names).aggregate([]).num_rows == table.num_rows:
        return table
    row = "__close_row"
    numbered = table.append_column(row, pa.array(range(table.num_rows), pa.int64()))
    last = numbered.group_by(names).aggregate([(row, "max")])[f"{row}_max"]
    return table.take(pc.take(last, pc.sort_indices(last)))


def with_dlt_columns(table: pa.Table, load_id: Optional[str]) -> pa.Table:
    """Adds ``_dlt_load_id`` and ``_dlt_id`` (random, as dlt's own normalizer makes them for
    root tables written with ``merge``/``replace``), so Arrow batches land with exactly the
    columns dict rows get, and dbt's ``loaded_at`` keeps working.

    Without a load id (the resource read outside a pipeline) the table is returned as is.
    """
    if load_id is None:
        return table
    count = table.num_rows
    table = table.append_column(_DLT_FIELDS[0], pa.repeat(load_id, count).cast(pa.string()))
    return table.append_column(_DLT_FIELDS[1], pa.array(generate_dlt_ids(count), pa.string()))


def current_load_id() -> Optional[str]:
    """The load id of the package being extracted (None outside a pipeline run)."""
    try:
        return str(dlt.current.load_package_state()["load_id"])
    except Exception:  # noqa: BLE001 - no load package in context
        return None


class Batcher:
    """Turns the rows of consecutive windows of one table into few, large Arrow tables.

    ``add`` takes one window's rows (dicts, or an Arrow table already built from the
    response); dict rows are converted ``convert_rows`` at a time (pyarrow's cost per call,
    not per value, dominates small conversions); tables are handed on in batches of about
    ``min_rows`` rows or ``max_bytes`` bytes (the status tables carry long drill-down URLs
    in every row), with ``_dlt_load_id`` / ``_dlt_id``. Rows that do not fit ``schema``
    (see ``columns_to_arrow``) are handed on as dicts, so dlt treats them exactly as
    before. Each primary-key value is handed on once (the last row of a repeated one): keys
    include their window, so one batch is all a key can repeat in, and dlt's own dedup pass
    is skipped (``settings.MERGE_DEDUPLICATED``). Memory stays flat over a long backfill.
    """

    def __init__(
        self,
        table: str,
        schema: pa.Schema,
        load_id: Optional[str],
        *,
        convert_rows: int = ARROW_CONVERT_ROWS,
        min_rows: int = ARROW_BATCH_ROWS,
        max_bytes: int = ARROW_BATCH_BYTES,
    ) -> None:
        self.table = table
        self.key = TABLES[table][1]
        self.schema = schema
        self.load_id = load_id
        self.convert_rows = convert_rows
        self.min_rows = min_rows
        self.max_bytes = max_bytes
        self._rows: List[Row] = []
        self._tables: List[pa.Table] = []
        self._count = 0
        self._bytes = 0

    def add(self, part: Part) -> Iterator[Part]:
        """Takes one window's rows; yields what is ready to hand to dlt."""
        if isinstance(part, pa.Table):
            self._keep(part)
        elif part:
            self._rows.extend(part)
            if len(self._rows) >= self.convert_rows:
                yield from self._convert()
        if self._count >= self.min_rows or self._bytes >= self.max_bytes:
            yield from self._hand_on()

    def flush(self) -> Iterator[Part]:
        """Yields everything still collected (at the end of an org's windows), then hands
        freed memory back to the system (``memory.release``)."""
        yield from self._convert()
        yield from self._hand_on()
        memory.release()

    def _keep(self, table: pa.Table) -> None:
        if table.num_rows:
            self._tables.append(table)
            self._count += table.num_rows
            self._bytes += table.nbytes

    def _convert(self) -> Iterator[Part]:
        rows, self._rows = self._rows, []
        if not rows:
            return
        table = rows_to_arrow(rows, self.schema)
        if table is None:
            logger.info(
                "%s: %d rows do not fit the declared column types; loading them as dicts",
                self.table,
                len(rows),
            )
            yield unique_rows(rows, self.key)
        else:
            self._keep(table)

    def _hand_on(self) -> Iterator[Part]:
        if self._tables:
            table = unique_table(pa.concat_tables(self._tables), self.key)
            self._tables, self._count, self._bytes = [], 0, 0
            yield with_dlt_columns(table, self.load_id)
