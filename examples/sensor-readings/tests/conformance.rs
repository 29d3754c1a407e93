//! The example connector passes the conformance kit, and its data is exact.

use arrow::array::{Array, AsArray, Float64Array};
use arrow::datatypes::{Float64Type, Int64Type};
use sensor_readings::{SensorReadings, readings_batch};
use serde_json::json;

// 3 sensors (partitions) x 600 minutes in 50-minute batches: 12 batches per partition.
connector_sdk::conformance_tests! {
    connector: SensorReadings,
    config: json!({"sensors": 3, "minutes": 600, "batch_minutes": 50, "seed": 7}),
    bad_config: json!({"sensors": 0, "minutes": 600}),
    grown_config: json!({"sensors": 3, "minutes": 750, "batch_minutes": 50, "seed": 7}),
}

#[test]
fn readings_are_exact() {
    let b = readings_batch(7, 2, 10, 12);
    assert_eq!(b.num_rows(), 3);
    let sensor = b.column(0).as_string::<i32>();
    assert_eq!(sensor.iter().collect::<Vec<_>>(), vec![Some("s002"); 3]);
    let minute = b.column(1).as_primitive::<Int64Type>();
    assert_eq!(minute.values().to_vec(), vec![10, 11, 12]);
    let at = b
        .column(2)
        .as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
    assert_eq!(at.value(0), 1_704_067_200_000_000 + 10 * 60_000_000);
    // Values are a pure function of (seed, sensor, minute): a batch split anywhere joins
    // back to the same rows.
    let parts = [readings_batch(7, 2, 10, 10), readings_batch(7, 2, 11, 12)];
    let joined = arrow::compute::concat_batches(&b.schema(), &parts).unwrap();
    assert_eq!(joined, b);
    let t = b.column(3).as_primitive::<Float64Type>();
    let centi: Vec<i64> = t
        .values()
        .iter()
        .map(|v| (v * 100.0).round() as i64)
        .collect();
    assert_eq!(centi, vec![2724, 2935, 2664]);
}

#[test]
fn humidity_dropouts_are_nulls() {
    let b = readings_batch(0, 1, 1, 2000);
    let h: &Float64Array = b.column(4).as_primitive::<Float64Type>();
    // About one reading in 29 drops out; the generator fixes exactly which.
    assert_eq!(h.null_count(), 58);
    assert!(h.iter().flatten().all(|v| (30.0..90.0).contains(&v)));
}
