"""Write the demo's orders with pyarrow to the local S3 server: same columns, types,
codec (ZSTD level 1), row-group size and value rules as connectors/orders-demo.

Usage: python pyarrow_writer.py ROWS ENDPOINT BUCKET PREFIX [THREADS]
Writes the 4 partitions in THREADS threads at once (default 2: the connector's
--concurrency in bench.py; pyarrow releases the GIL while it encodes and compresses).
Prints one JSON line: rows, bytes, work_s (generation included, as in the connector;
interpreter start-up and imports excluded).
"""
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

ROW_GROUP = 64 * 1024
EPOCH_2024_US = 1_704_067_200_000_000
DAY_US = 86_400_000_000
CURRENCIES = np.array(["USD", "EUR", "GBP", "JPY"], dtype=object)
NOTES = np.array(["", "leave at the door", "gift wrap, please", "żółć – ünïcödé ✓"], dtype=object)

SCHEMA = pa.schema([
    pa.field("order_id", pa.int64(), nullable=False),
    pa.field("customer_id", pa.int32(), nullable=False),
    pa.field("amount", pa.decimal128(12, 2)),
    pa.field("currency", pa.string(), nullable=False),
    pa.field("created_at", pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field("is_gift", pa.bool_()),
    pa.field("discount", pa.float64()),
    pa.field("note", pa.string()),
])


def mix(seed, ids):
    with np.errstate(over="ignore"):
        z = np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15) + ids + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def batch(first, last, rows_per_day):
    ids = np.arange(first, last + 1, dtype=np.uint64)
    h = mix(0, ids)
    cents = ((h >> np.uint64(8)) % np.uint64(1_000_000_000)).astype(np.int64)
    cents = np.where(ids % np.uint64(1000) == 0, -cents, cents)
    # Decimal128(12,2) straight from the cent values: 16-byte little-endian integers.
    words = np.empty((len(ids), 2), dtype=np.int64)
    words[:, 0] = cents
    words[:, 1] = np.where(cents < 0, -1, 0)
    valid = pa.array(ids % np.uint64(17) != 0)
    amount = pa.Array.from_buffers(pa.decimal128(12, 2), len(ids), [valid.buffers()[1], pa.py_buffer(words)])
    idx = (ids - np.uint64(1)).astype(np.int64)
    created = EPOCH_2024_US + (idx // rows_per_day) * DAY_US + ((idx % rows_per_day) * DAY_US) // rows_per_day
    gift = pa.array(h & np.uint64(1) == 1, mask=(ids % np.uint64(13) == 0))
    discount = pa.array(((h >> np.uint64(20)) % np.uint64(5000)).astype(np.float64) / 100.0, mask=(ids % np.uint64(5) == 0))
    note = pa.array(NOTES[((h >> np.uint64(50)) % np.uint64(4)).astype(np.int64)], pa.string(), mask=(ids % np.uint64(7) != 0))
    return pa.record_batch([
        pa.array(ids.astype(np.int64)),
        pa.array(((h % np.uint64(100_000)).astype(np.int64) + 1).astype(np.int32)),
        amount,
        pa.array(CURRENCIES[((h >> np.uint64(40)) % np.uint64(4)).astype(np.int64)], pa.string()),
        pa.array(created, pa.timestamp("us", tz="UTC")),
        gift,
        discount,
        note,
    ], schema=SCHEMA)


def write_partition(fs, bucket, prefix, p, rows_per_day):
    first, last = p * rows_per_day + 1, (p + 1) * rows_per_day
    path = f"{bucket}/{prefix}/orders/part-{p}.parquet"
    with pq.ParquetWriter(path, SCHEMA, filesystem=fs, compression="zstd", compression_level=1) as w:
        for lo in range(first, last + 1, ROW_GROUP):
            w.write_batch(batch(lo, min(last, lo + ROW_GROUP - 1), rows_per_day), row_group_size=ROW_GROUP)
    return fs.get_file_info(path).size


def main():
    rows, endpoint, bucket, prefix = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    threads = int(sys.argv[5]) if len(sys.argv) > 5 else 2
    partitions = 4
    rows_per_day = rows // partitions
    start = time.perf_counter()
    fs = pafs.S3FileSystem(endpoint_override=endpoint, scheme="http", access_key="local-access-key",
                           secret_key="local-secret-key", region="us-east-1")
    with ThreadPoolExecutor(max_workers=threads) as pool:
        sizes = list(pool.map(lambda p: write_partition(fs, bucket, prefix, p, rows_per_day), range(partitions)))
    secs = time.perf_counter() - start
    print(json.dumps({"rows": rows, "bytes": sum(sizes), "work_s": secs}))


if __name__ == "__main__":
    main()
