-- The runner matrix's source table (matrix.toml): 20 000 rows of several mapped types,
-- partitioned by `id` into 4 ranges, incremental on `id`.
CREATE TABLE matrix_orders (
    id         bigint PRIMARY KEY,
    customer   text NOT NULL,
    amount     numeric(12, 2),
    placed_at  timestamptz NOT NULL,
    shipped    boolean,
    tags       text[]
);
INSERT INTO matrix_orders
SELECT g,
       'customer-' || (g % 397),
       CASE WHEN g % 11 = 0 THEN NULL ELSE round((g * 7.31)::numeric % 10000, 2) END,
       timestamptz '2024-01-01 00:00:00+00' + g * interval '37 seconds',
       CASE WHEN g % 5 = 0 THEN NULL ELSE g % 2 = 0 END,
       ARRAY['t' || (g % 3), 'u' || (g % 7)]
FROM generate_series(1, 20000) AS g;
