"""Read an .rrd back through rerun's own dataframe API (a local catalog server on 127.0.0.1).

`summarize(path, index)` returns the recording's timelines, every component column with the number
of rows that hold data on `index`, and the index values; the tests and the benchmark check recordings
with it. Needs `datafusion` (pinned in requirements.txt).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import rerun as rr


@dataclass
class RecordingSummary:
    timelines: list[str]
    counts: dict[str, int]  # "entity:Archetype:component" -> rows with data
    index: list  # values of the index timeline, one per row

    def entities(self) -> set[str]:
        return {column.split(":", 1)[0] for column in self.counts}

    def count(self, entity: str, component: str) -> int:
        return self.counts.get(f"{entity}:{component}", 0)


def summarize(path: str | Path, index: str, contents: str | list[str] = "/**") -> RecordingSummary:
    """Rows per component column of `contents` on the `index` timeline of the recording at `path`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such recording")
    with rr.server.Server(host="127.0.0.1", datasets={"recording": [str(path)]}) as server:
        client = server.client()
        dataset = client.get_dataset("recording")
        schema = dataset.schema()
        timelines = [column.name for column in schema.index_columns()]
        if index not in timelines:
            return RecordingSummary(timelines, {}, [])
        table = dataset.filter_contents(contents).reader(index=index).to_arrow_table()
    counts = {name: len(table) - table.column(name).null_count for name in table.column_names
              if name.startswith("/")}
    return RecordingSummary(timelines, counts, table.column(index).to_pylist())


def values(path: str | Path, index: str, entity: str, component: str) -> tuple[list, list]:
    """(index values, component values) of the rows of `entity` that hold `component` on `index`."""
    with rr.server.Server(host="127.0.0.1", datasets={"recording": [str(path)]}) as server:
        client = server.client()
        table = client.get_dataset("recording").filter_contents(entity).reader(index=index).to_arrow_table()
    name = f"{entity}:{component}"
    if name not in table.column_names:
        return [], []
    column, times = table.column(name).to_pylist(), table.column(index).to_pylist()
    rows = [(t, v) for t, v in zip(times, column) if v is not None]
    return [t for t, _ in rows], [v for _, v in rows]
