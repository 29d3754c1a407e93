//! The demo connector passes the conformance kit.

use orders_demo::OrdersDemo;
use serde_json::json;

// 2000 orders, 500 a day (4 partitions), batches of 100 (5 per partition).
connector_sdk::conformance_tests! {
    connector: OrdersDemo,
    config: json!({"rows": 2000, "rows_per_day": 500, "batch_size": 100, "seed": 3}),
    bad_config: json!({"rows": 2000, "rows_per_day": 0}),
    grown_config: json!({"rows": 2600, "rows_per_day": 500, "batch_size": 100, "seed": 3}),
}
