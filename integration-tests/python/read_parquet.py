"""Read Parquet files with pyarrow (a reader that is not ours) and print, as JSON, the
schema as pyarrow sees it and every column's values in a canonical form:

    {"schema": [[name, pyarrow type, nullable], ...], "rows": N,
     "columns": {name: [value, ...]}}

Values: integers and booleans as JSON; floats as the integer of their IEEE 754 bits
(exact: a JSON float parsed back may be one unit off); strings as strings; decimals as
their exact decimal text (str(Decimal)); timestamps, dates and times as integers of
their unit since the epoch / midnight; binary as hex; lists as lists; structs as
objects; nulls as null.

Usage: python read_parquet.py FILE...          (files in order; one table)
       python read_parquet.py --delta DIR     (the Delta table at DIR, read by deltalake)
       python read_parquet.py --duckdb DIR    (the Delta table at DIR, read by DuckDB's
                                               delta extension, from the pip package)
       python read_parquet.py --delta-key DIR COLUMN
           (deltalake; only {"rows", "distinct", "min", "max"} of the integer COLUMN: for
            tables too large to print, exact when the keys are 1..=N)
"""
import json
import struct
import sys
from decimal import Decimal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq


def canonical(array):
    t = array.type
    if pa.types.is_timestamp(t) or pa.types.is_time(t):
        return pc.cast(array, pa.int64()).to_pylist()
    if pa.types.is_date32(t):
        return pc.cast(array, pa.int32()).to_pylist()
    if pa.types.is_decimal(t):
        return [None if v is None else str(v) for v in array.to_pylist()]
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        values = canonical(array.values)
        offsets = array.offsets.to_pylist()
        return [
            None if not array[i].is_valid else values[offsets[i] : offsets[i + 1]]
            for i in range(len(array))
        ]
    if pa.types.is_struct(t):
        fields = {t.field(j).name: canonical(array.field(j)) for j in range(t.num_fields)}
        return [
            None if not array[i].is_valid else {k: v[i] for k, v in fields.items()}
            for i in range(len(array))
        ]
    if pa.types.is_float64(t):
        return [None if v is None else struct.unpack("<q", struct.pack("<d", v))[0]
                for v in array.to_pylist()]
    if pa.types.is_float32(t):
        return [None if v is None else struct.unpack("<i", struct.pack("<f", v))[0]
                for v in array.to_pylist()]
    if pa.types.is_string_view(t) or pa.types.is_large_string(t):
        return pc.cast(array, pa.string()).to_pylist()
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return [None if v is None else v.hex() for v in array.to_pylist()]
    return array.to_pylist()


def main(args):
    if args[:1] == ["--delta-key"]:
        from deltalake import DeltaTable

        keys = DeltaTable(args[1]).to_pyarrow_table(columns=[args[2]]).column(args[2])
        out = {
            "rows": len(keys),
            "distinct": pc.count_distinct(keys).as_py(),
            "min": pc.min(keys).as_py(),
            "max": pc.max(keys).as_py(),
        }
        json.dump(out, sys.stdout)
        return
    if args[:1] == ["--delta"]:
        # delta-rs: the table's latest snapshot, as an engine would query it.
        from deltalake import DeltaTable

        table = DeltaTable(args[1]).to_pyarrow_table()
    elif args[:1] == ["--duckdb"]:
        # DuckDB's delta_scan (delta-kernel-rs inside DuckDB), the extension loaded from the
        # duckdb-ext-delta wheel: no download at test time.
        import os
        import site

        import duckdb

        extensions = os.path.join(site.getsitepackages()[0], "duckdb_ext", "extensions")
        con = duckdb.connect(
            config={"extension_directory": extensions, "autoinstall_known_extensions": False}
        )
        con.execute("LOAD delta")
        table = con.execute("SELECT * FROM delta_scan(?)", [args[1]]).fetch_arrow_table()
    else:
        # Each file on its own (no hive partition columns inferred from the paths).
        tables = [pq.ParquetFile(p).read() for p in args]
        table = pa.concat_tables(tables) if tables else None
    if table is None:
        print(json.dumps({"schema": [], "rows": 0, "columns": {}}))
        return
    table = table.combine_chunks()
    out = {
        "schema": [[f.name, str(f.type), f.nullable] for f in table.schema],
        "rows": table.num_rows,
        "columns": {
            name: canonical(table.column(name).combine_chunks())
            for name in table.column_names
        },
    }
    json.dump(out, sys.stdout, default=lambda v: str(v) if isinstance(v, Decimal) else v)


if __name__ == "__main__":
    main(sys.argv[1:])
    sys.stdout.flush()
    # Skip interpreter teardown: delta-rs' runtime threads can abort it ("terminate called
    # without an active exception") after the output is complete.
    import os

    os._exit(0)
