//! Property tests (proptest, stable Rust) of the parsers that take outside input: the S3
//! output location, the committed state, run record and run plan (read back from the
//! bucket, or handed between Glue's steps), the extract options. Each property: no panic on any input, and a round trip where one
//! exists. The case count is modest here (`PROPTEST_CASES` raises it);
//! `scripts/fuzz-campaign.sh` runs a long campaign and keeps failing inputs in
//! `tests/fuzz.proptest-regressions`.

use connector_sdk::dataset::{PartitionProgress, PendingPlan};
use connector_sdk::{
    Codec, DatasetManifest, Dictionary, ExtractOptions, OutputLocation, Partition, StreamState,
};
use proptest::prelude::*;
use serde_json::Value;

/// Any JSON value (cursors and checkpoints are connector-defined JSON).
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        // Finite floats only: JSON has no NaN or infinity.
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".*".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A cursor or checkpoint: any JSON but `null` (the core refuses a null one, which would
/// read back as none).
fn non_null_json() -> impl Strategy<Value = Value> {
    json_value().prop_filter("not null", |v| !v.is_null())
}

fn partition() -> impl Strategy<Value = Partition> {
    (
        "[A-Za-z0-9._=-]{1,20}",
        prop::collection::vec(("[a-z]{1,5}", "[a-z0-9-]{1,8}"), 0..3),
        json_value(),
    )
        .prop_map(|(id, hive, spec)| Partition { id, hive, spec })
}

fn stream_state() -> impl Strategy<Value = StreamState> {
    let pending = (
        prop::option::of(non_null_json()),
        prop::collection::vec(
            (
                partition(),
                prop::option::of(non_null_json()),
                any::<bool>(),
            )
                .prop_map(|(partition, checkpoint, done)| PartitionProgress {
                    partition,
                    checkpoint,
                    done,
                }),
            0..4,
        ),
    )
        .prop_map(|(target_cursor, partitions)| PendingPlan {
            target_cursor,
            partitions,
            staged: Vec::new(),
        });
    (prop::option::of(non_null_json()), prop::option::of(pending))
        .prop_map(|(cursor, pending)| StreamState { cursor, pending })
}

proptest! {
    // Failing inputs go to `tests/fuzz.proptest-regressions` (replayed first by every run):
    // proptest's default places the file beside `src/lib.rs`, which an integration test
    // has not, and then keeps nothing. The rest of the config (PROPTEST_CASES) as default.
    #![proptest_config(ProptestConfig {
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct("tests/fuzz.proptest-regressions"),
        )),
        ..ProptestConfig::default()
    })]

    /// Any string: a location or a one-line error, never a panic; a parsed location
    /// prints back to a string that parses to the same location.
    #[test]
    fn output_locations_parse_or_fail_cleanly(s in "(s3://)?[a-z0-9./-]{0,40}|.{0,60}") {
        match s.parse::<OutputLocation>() {
            Ok(loc) => {
                let again: OutputLocation = loc.to_string().parse().unwrap();
                prop_assert_eq!(again, loc);
            }
            Err(e) => prop_assert!(!e.to_string().contains('\n')),
        }
    }

    /// A valid bucket and prefix always round-trip exactly.
    #[test]
    fn valid_output_locations_round_trip(
        bucket in "[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]",
        prefix in prop::collection::vec("[A-Za-z0-9_=-]{1,10}", 0..4),
    ) {
        let prefix = prefix.join("/");
        let text = if prefix.is_empty() {
            format!("s3://{bucket}")
        } else {
            format!("s3://{bucket}/{prefix}")
        };
        let loc: OutputLocation = text.parse().unwrap();
        prop_assert_eq!(&loc.bucket, &bucket);
        prop_assert_eq!(&loc.prefix, &prefix);
        prop_assert_eq!(loc.to_string(), text);
    }

    /// The committed state (cursor, pending plan with checkpoints) survives the JSON the
    /// commit stores it as, whatever JSON the connector's cursors hold.
    #[test]
    fn stream_state_round_trips_through_json(state in stream_state()) {
        let text = serde_json::to_string(&state).unwrap();
        let back: StreamState = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(back, state);
    }

    /// Whatever bytes a bucket returns as a run record: a record or an error, no panic.
    #[test]
    fn run_records_from_any_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = serde_json::from_slice::<DatasetManifest>(&bytes);
        let _ = serde_json::from_slice::<StreamState>(&bytes);
        let _ = serde_json::from_slice::<connector_sdk::RunPlan>(&bytes);
    }

    /// Near-miss JSON objects (real field names, any values): a record or an error.
    #[test]
    fn run_records_with_wrong_values_never_panic(
        fields in prop::collection::btree_map(
            prop::sample::select(vec![
                "format", "sequence", "run_id", "stream", "connector", "connector_version",
                "runner", "status", "started_at", "committed_at", "timings", "schema", "files",
                "rows", "bytes", "state", "replaced_table", "removed_files", "cursor", "pending",
            ]),
            json_value(),
            0..12,
        )
    ) {
        let value = Value::Object(fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect());
        let _ = serde_json::from_value::<DatasetManifest>(value.clone());
        let _ = serde_json::from_value::<connector_sdk::RunPlan>(value.clone());
        let _ = serde_json::from_value::<StreamState>(value);
    }

    /// Extract options at and beyond every limit: validation says yes or gives a one-line
    /// error naming the option, never a panic.
    #[test]
    fn extract_options_validate_without_panicking(
        zstd_level in any::<i32>(),
        row_group_rows in any::<usize>(),
        target_file_bytes in any::<u64>(),
        part_bytes in any::<usize>(),
        max_buffered_parts in prop::option::of(any::<usize>()),
        max_concurrent_partitions in any::<usize>(),
        codec in prop::sample::select(vec![Codec::Zstd, Codec::Snappy, Codec::Lz4, Codec::None]),
        dictionary in prop::sample::select(vec![Dictionary::Auto, Dictionary::Always, Dictionary::Never]),
    ) {
        let mut o = ExtractOptions::new("s3://bucket/prefix".parse().unwrap());
        o.parquet.codec = codec;
        o.parquet.zstd_level = zstd_level;
        o.parquet.row_group_rows = row_group_rows;
        o.parquet.target_file_bytes = target_file_bytes;
        o.parquet.dictionary = dictionary;
        o.upload.part_bytes = part_bytes;
        o.upload.max_buffered_parts = max_buffered_parts;
        o.max_concurrent_partitions = max_concurrent_partitions;
        if let Err(e) = o.validate() {
            let m = e.to_string();
            prop_assert!(!m.contains('\n'), "{}", m);
        }
    }
}
