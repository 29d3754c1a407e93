//! Every value a `numeric(p, s)` column admits comes back exactly, for a generated grid of
//! precisions and scales: every precision 1..=38 at negative, zero, middle, full and
//! larger-than-precision scales, and precisions beyond 38. Each column holds its largest
//! and smallest values (every digit used), the smallest step (one unit in the last place),
//! zero and NULL. The connector's Parquet, read back through the committed Delta table, is
//! compared value by value with the text PostgreSQL prints for the same cell.

mod support;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Decimal128Type};
use connector_sdk::{ExtractCore, ExtractOptions, StopSignal};
use integration_tests::{TestEnv, read_committed};
use postgres_connector::{PostgresConfig, PostgresConnector};
use serde_json::json;
use support::PgServer;

/// The largest value of `numeric(p, s)` as SQL text: p nines, scaled by 10^-s.
fn max_text(p: i32, s: i32) -> String {
    let nines = "9".repeat(p as usize);
    if s <= 0 {
        format!("{nines}{}", "0".repeat((-s) as usize))
    } else if s >= p {
        format!("0.{}{nines}", "0".repeat((s - p) as usize))
    } else {
        let (int, frac) = nines.split_at((p - s) as usize);
        format!("{int}.{frac}")
    }
}

/// The smallest positive step of `numeric(p, s)`: 10^-s.
fn step_text(s: i32) -> String {
    if s <= 0 {
        format!("1{}", "0".repeat((-s) as usize))
    } else {
        format!("0.{}1", "0".repeat((s - 1) as usize))
    }
}

/// `value` (an unscaled Decimal128 at `scale` >= 0) as decimal text with `scale` digits
/// after the point, as PostgreSQL prints a numeric of that scale.
fn decimal_text(value: i128, scale: i8) -> String {
    let digits = value.unsigned_abs().to_string();
    let scale = scale as usize;
    let body = if scale == 0 {
        digits
    } else {
        let padded = format!("{digits:0>width$}", width = scale + 1);
        let (int, frac) = padded.split_at(padded.len() - scale);
        format!("{int}.{frac}")
    };
    if value < 0 { format!("-{body}") } else { body }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_numeric_precision_and_scale_round_trips_exactly_at_its_limits() {
    let pg = PgServer::start();
    let env = TestEnv::start().await;
    let client = pg.client().await;

    let mut grid: Vec<(i32, i32)> = Vec::new();
    for p in 1..=38 {
        for s in [-3, -1, 0, p / 2, p, p + 2] {
            if !grid.contains(&(p, s)) {
                grid.push((p, s));
            }
        }
    }
    for (p, s) in [
        (39, 0),
        (39, 20),
        (60, -10),
        (100, 50),
        (1000, 0),
        (20, 1000),
    ] {
        grid.push((p, s));
    }
    let name = |p: i32, s: i32| {
        format!(
            "n_{p}_{}",
            if s < 0 {
                format!("m{}", -s)
            } else {
                s.to_string()
            }
        )
    };
    let columns: Vec<String> = grid
        .iter()
        .map(|&(p, s)| format!("{} numeric({p},{s})", name(p, s)))
        .collect();
    client
        .batch_execute(&format!(
            "CREATE TABLE limits (id int PRIMARY KEY, {})",
            columns.join(", ")
        ))
        .await
        .unwrap();
    let row = |id: i32, value: &dyn Fn(i32, i32) -> String| {
        let values: Vec<String> = grid.iter().map(|&(p, s)| value(p, s)).collect();
        format!("INSERT INTO limits VALUES ({id}, {})", values.join(", "))
    };
    for sql in [
        row(1, &|p, s| max_text(p, s)),
        row(2, &|p, s| format!("-{}", max_text(p, s))),
        row(3, &|_, s| step_text(s)),
        row(4, &|_, s| format!("-{}", step_text(s))),
        row(5, &|_, _| "0".into()),
        row(6, &|_, _| "NULL".into()),
    ] {
        client.batch_execute(&sql).await.unwrap();
    }

    let mut config = pg.config(json!([{"table": "limits"}]));
    config["unconstrained_numeric"] = json!("decimal");
    let config: PostgresConfig = serde_json::from_value(config).unwrap();
    let core = ExtractCore::new(
        PostgresConnector,
        config,
        env.store().await,
        ExtractOptions::new(env.output("limits")),
        "test",
    )
    .unwrap();
    let report = core
        .run("limits", &StopSignal::new())
        .await
        .expect("every column maps to a Delta type and every value fits");
    assert_eq!(report.rows, 6);
    let got = read_committed(&env.store().await, &env.output("limits"), "limits", "id")
        .await
        .unwrap();

    let mut checked = 0;
    for &(p, s) in &grid {
        let col = name(p, s);
        let expected: Vec<Option<String>> = client
            .query(&format!("SELECT {col}::text FROM limits ORDER BY id"), &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let array = got
            .column_by_name(&col)
            .unwrap_or_else(|| panic!("{col} missing"));
        let actual: Vec<Option<String>> = match array.data_type() {
            DataType::Decimal128(dp, ds) => {
                // A Delta-valid decimal that holds every value of the column.
                assert!(
                    *ds >= 0 && (*ds as u8) <= *dp && *dp <= 38,
                    "{col}: Decimal128({dp}, {ds})"
                );
                let a = array.as_primitive::<Decimal128Type>();
                (0..a.len())
                    .map(|i| a.is_valid(i).then(|| decimal_text(a.value(i), *ds)))
                    .collect()
            }
            DataType::Utf8 => {
                let a = array.as_string::<i32>();
                (0..a.len())
                    .map(|i| a.is_valid(i).then(|| a.value(i).to_string()))
                    .collect()
            }
            other => panic!("{col}: unexpected type {other}"),
        };
        assert_eq!(actual, expected, "column {col} (numeric({p},{s}))");
        // Which type: a decimal exactly when at most 38 digits are needed.
        let digits = if s < 0 { p - s } else { p.max(s) };
        assert_eq!(
            matches!(array.data_type(), DataType::Decimal128(..)),
            digits <= 38,
            "{col}: {}",
            array.data_type()
        );
        checked += 1;
    }
    assert_eq!(checked, grid.len());
}
