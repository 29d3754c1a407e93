//! The REST API connector against a real REST server no one here wrote (`json-server` from
//! npm), through the SDK core to the local S3 server. Expected rows always come from the
//! server itself (a plain GET of the whole collection), never from the generator.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, Int64Type, TimestampMicrosecondType};
use connector_sdk::{
    ConnectorErrorKind, Error, ExtractCore, ExtractOptions, RunReport, RunStatus, StopSignal,
    WriteDisposition,
};
use http_api::{HttpApi, HttpApiConfig};
use integration_tests::json_server::JsonServer;
use integration_tests::{TestEnv, read_committed};
use local_s3::{FaultConfig, FaultProxy, Throttle};
use serde_json::{Value, json};

/// Item `i` of the generated collection: strings with quotes, backslashes and non-ASCII,
/// floats, nulls, the largest integers a JSON API served by JavaScript keeps exactly
/// (±(2^53 − 1)), timestamps with and without fractions and offsets, nested values.
fn item(i: i64) -> Value {
    let big = match i % 3 {
        0 => json!(9_007_199_254_740_991i64),
        1 => json!(-9_007_199_254_740_991i64),
        _ => json!(i),
    };
    let at = 1_704_067_200 + i * 37;
    let updated_at = match i % 4 {
        0 => chrono::DateTime::from_timestamp(at, 0)
            .unwrap()
            .to_rfc3339(),
        1 => chrono::DateTime::from_timestamp(at, 123_456_000)
            .unwrap()
            .with_timezone(&chrono::FixedOffset::east_opt(5 * 3600 + 1800).unwrap())
            .to_rfc3339(),
        _ => format!(
            "{}Z",
            chrono::DateTime::from_timestamp(at, 0)
                .unwrap()
                .naive_utc()
                .format("%Y-%m-%dT%H:%M:%S%.6f")
        ),
    };
    json!({
        "id": i,
        "name": format!("item {i} \"q\" \\ {}", "é€😀".repeat((i % 4) as usize)),
        "score": (i as f64) * 0.25 - 1e6,
        "active": if i % 7 == 0 { Value::Null } else { json!(i % 2 == 0) },
        "big": big,
        "updated_at": updated_at,
        "tags": if i % 5 == 0 { Value::Null } else { json!({"a": [i, null, "x"], "b": {"c": i % 3 == 0}}) },
        "not_extracted": "ignored",
    })
}

fn items(first: i64, last: i64) -> Vec<Value> {
    (first..=last).map(item).collect()
}

fn columns() -> Value {
    json!([
        {"name": "id", "type": "int64", "nullable": false},
        {"name": "name", "type": "string"},
        {"name": "score", "type": "float64"},
        {"name": "active", "type": "boolean"},
        {"name": "big", "type": "int64"},
        {"name": "updated_at", "type": "timestamp", "nullable": false},
        {"name": "tags", "type": "json"}
    ])
}

fn stream(path: &str, pagination: Value) -> Value {
    json!({
        "name": "items",
        "path": path,
        "query": {"_sort": "id"},
        "pagination": pagination,
        "schema": columns(),
        "primary_key": ["id"]
    })
}

fn config(base: &str, stream: Value) -> Value {
    json!({
        "base_url": base,
        "http": {"retry": {"initial_backoff_ms": 5, "max_backoff_ms": 100, "max_attempts": 30}},
        "streams": [stream]
    })
}

fn page_number(size: u64) -> Value {
    json!({"style": "page_number", "page_param": "_page", "size_param": "_limit", "size": size})
}

async fn core(env: &TestEnv, config: &Value, prefix: &str) -> ExtractCore<HttpApi> {
    let config: HttpApiConfig = serde_json::from_value(config.clone()).expect("valid config");
    ExtractCore::new(
        HttpApi,
        config,
        env.store().await,
        ExtractOptions::new(env.output(prefix)),
        "test",
    )
    .expect("core")
}

async fn run(env: &TestEnv, config: &Value, prefix: &str) -> RunReport {
    core(env, config, prefix)
        .await
        .run("items", &StopSignal::new())
        .await
        .expect("extract")
}

async fn committed(env: &TestEnv, prefix: &str) -> RecordBatch {
    read_committed(&env.store().await, &env.output(prefix), "items", "id")
        .await
        .expect("a committed table")
}

/// The whole collection as the server answers it, sorted by id.
async fn server_records(server: &JsonServer, collection: &str) -> Vec<Value> {
    let url = format!("{}{collection}?_sort=id", server.url());
    let body = reqwest::get(&url)
        .await
        .expect("GET")
        .bytes()
        .await
        .expect("body");
    match serde_json::from_slice(&body).expect("JSON") {
        Value::Array(a) => a,
        other => panic!("not an array: {other}"),
    }
}

fn micros(ts: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(ts)
        .unwrap_or_else(|e| panic!("{ts}: {e}"))
        .timestamp_micros()
}

/// Every committed row equals the server's record with the same id, and the ids are
/// exactly the server's (no loss, no duplicate).
fn assert_matches(batch: &RecordBatch, records: &[Value]) {
    let ids = batch
        .column_by_name("id")
        .unwrap()
        .as_primitive::<Int64Type>();
    let got: Vec<i64> = ids.values().to_vec();
    let want: Vec<i64> = records.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    if got != want {
        let dup = got.windows(2).find(|w| w[0] == w[1]).map(|w| w[0]);
        let missing = want.iter().find(|i| !got.contains(i));
        panic!(
            "{} rows committed, the server has {} (first duplicate {dup:?}, first missing {missing:?})",
            got.len(),
            want.len()
        );
    }
    let name = batch.column_by_name("name").unwrap().as_string::<i32>();
    let score = batch
        .column_by_name("score")
        .unwrap()
        .as_primitive::<Float64Type>();
    let active = batch.column_by_name("active").unwrap().as_boolean();
    let big = batch
        .column_by_name("big")
        .unwrap()
        .as_primitive::<Int64Type>();
    let at = batch
        .column_by_name("updated_at")
        .unwrap()
        .as_primitive::<TimestampMicrosecondType>();
    let tags = batch.column_by_name("tags").unwrap().as_string::<i32>();
    for (row, r) in records.iter().enumerate() {
        let id = r["id"].as_i64().unwrap();
        assert_eq!(name.value(row), r["name"].as_str().unwrap(), "name of {id}");
        assert_eq!(
            score.value(row),
            r["score"].as_f64().unwrap(),
            "score of {id}"
        );
        match r["active"].as_bool() {
            Some(b) => assert_eq!(active.value(row), b, "active of {id}"),
            None => assert!(active.is_null(row), "active of {id} should be null"),
        }
        assert_eq!(big.value(row), r["big"].as_i64().unwrap(), "big of {id}");
        assert_eq!(
            at.value(row),
            micros(r["updated_at"].as_str().unwrap()),
            "updated_at of {id}"
        );
        match &r["tags"] {
            Value::Null => assert!(tags.is_null(row), "tags of {id} should be null"),
            v => assert_eq!(
                serde_json::from_str::<Value>(tags.value(row)).unwrap(),
                *v,
                "tags of {id}"
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_pagination_style_reads_exactly_the_servers_records() {
    // 1 037 items: pages of 50 end on a partial page; `even` (100 items) ends on a full
    // page followed by an empty one; `one` has a single record.
    let server = tokio::task::spawn_blocking(|| {
        JsonServer::start(
            &json!({"items": items(1, 1037), "even": items(1, 100), "one": items(7, 7)}),
        )
    })
    .await
    .unwrap();
    let env = TestEnv::start().await;
    let all = server_records(&server, "items").await;
    assert_eq!(all.len(), 1037);
    let cases = [
        ("items", page_number(50), "page"),
        (
            "items",
            json!({"style": "offset", "offset_param": "_start", "limit_param": "_limit", "limit": 50}),
            "offset",
        ),
        ("items", json!({"style": "next_link"}), "link"),
        ("items", page_number(1), "page-of-one"),
        ("items", page_number(5000), "one-page"),
        ("even", page_number(50), "even"),
        ("one", json!({"style": "none"}), "none"),
    ];
    for (collection, pagination, prefix) in cases {
        let mut s = stream(collection, pagination);
        if prefix == "link" {
            // json-server answers `_page` requests with a `Link` header; the connector
            // follows rel="next" only.
            s["query"] = json!({"_sort": "id", "_page": "1", "_limit": "50"});
        }
        let report = run(&env, &config(&server.url(), s), prefix).await;
        let want = server_records(&server, collection).await;
        assert_eq!(report.status, RunStatus::Complete, "{prefix}");
        assert_eq!(report.rows, want.len() as u64, "{prefix}");
        assert_matches(&committed(&env, prefix).await, &want);
    }
    // A reader that is not ours sees the same table.
    let read = integration_tests::read_with_deltalake(&env, &env.output("page"), "items");
    assert_eq!(read["rows"], 1037);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_and_failing_server_gives_every_record_once() {
    let server =
        tokio::task::spawn_blocking(|| JsonServer::start(&json!({"items": items(1, 611)})))
            .await
            .unwrap();
    let upstream = format!("127.0.0.1:{}", server.port).parse().unwrap();
    let proxy = FaultProxy::start(
        upstream,
        FaultConfig {
            slow_down_rate: 0.2,
            reset_rate: 0.1,
            throttle: Some(Throttle {
                rate: 0.2,
                retry_after_secs: 1,
            }),
            seed: 18,
            ..FaultConfig::default()
        },
    )
    .await
    .unwrap();
    let env = TestEnv::start().await;
    let base = format!("{}/", proxy.endpoint());
    let started = Instant::now();
    let report = run(
        &env,
        &config(&base, stream("items", page_number(25))),
        "faults",
    )
    .await;
    let elapsed = started.elapsed();
    let stats = proxy.stats();
    assert!(
        stats.throttled >= 2 && stats.slow_downs >= 2 && stats.resets >= 1,
        "{stats:?}"
    );
    // Every 429 was waited out for its Retry-After (1 s each, never shortened).
    assert!(
        elapsed >= Duration::from_secs(stats.throttled),
        "{} throttled answers but the run took {elapsed:?}",
        stats.throttled
    );
    assert_eq!(report.status, RunStatus::Complete);
    assert_matches(
        &committed(&env, "faults").await,
        &server_records(&server, "items").await,
    );

    // A server that never recovers: a clear error after the attempts, nothing committed.
    proxy.set_config(FaultConfig {
        fail_all: true,
        ..FaultConfig::default()
    });
    let mut c = config(&base, stream("items", page_number(25)));
    c["http"]["retry"]["max_attempts"] = json!(3);
    let e = core(&env, &c, "never")
        .await
        .run("items", &StopSignal::new())
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("after 3 attempt(s)") && text.contains("503"),
        "{text}"
    );
    assert!(!text.contains('\n'));
    assert!(env.keys("never/items/_delta_log").await.is_empty());
    // Retry-After longer than allowed: refused, naming the wait.
    proxy.set_config(FaultConfig {
        throttle: Some(Throttle {
            rate: 1.0,
            retry_after_secs: 3600,
        }),
        ..FaultConfig::default()
    });
    let e = core(&env, &c, "long-wait")
        .await
        .run("items", &StopSignal::new())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("retry after 3600 s") && e.contains("max_retry_after_secs"),
        "{e}"
    );
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_run_resumes_at_the_next_page() {
    let server =
        tokio::task::spawn_blocking(|| JsonServer::start(&json!({"items": items(1, 500)})))
            .await
            .unwrap();
    let upstream = format!("127.0.0.1:{}", server.port).parse().unwrap();
    let proxy = FaultProxy::start(upstream, FaultConfig::default())
        .await
        .unwrap();
    let env = TestEnv::start().await;
    let base = format!("{}/", proxy.endpoint());
    let mut c = config(&base, stream("items", page_number(20)));
    // Slow enough that the stop lands mid-pagination: 20 requests per second.
    c["http"]["rate_limit"] = json!({"requests_per_second": 20.0});
    let core1 = core(&env, &c, "stop").await;
    let stop = StopSignal::new();
    let cancel = stop.cancel.clone();
    let watcher = {
        let proxy_seen = Arc::new(AtomicU64::new(0));
        let p = proxy_seen.clone();
        let proxy = &proxy;
        async move {
            while proxy.stats().requests < 7 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            p.store(proxy.stats().requests, Ordering::Relaxed);
            cancel.cancel();
        }
    };
    let (report, ()) = tokio::join!(core1.run("items", &stop), watcher);
    let report = report.expect("a stopped run commits what it read");
    assert_eq!(report.status, RunStatus::Partial);
    let pages_read = report.rows / 20;
    assert!(
        report.rows > 0 && report.rows < 500 && report.rows % 20 == 0,
        "{}",
        report.rows
    );

    let before = proxy.seen().len();
    let report = run(&env, &c, "stop").await;
    assert_eq!(report.status, RunStatus::Complete);
    // The resumed run asks for the page after the last committed one first.
    let first = proxy.seen()[before..]
        .iter()
        .find(|r| r.path == "/items")
        .map(|r| r.query.clone())
        .unwrap();
    assert!(
        first.contains(&format!("_page={}&", pages_read + 1))
            || first.ends_with(&format!("_page={}", pages_read + 1)),
        "resumed at {first}, expected page {}",
        pages_read + 1
    );
    assert_matches(
        &committed(&env, "stop").await,
        &server_records(&server, "items").await,
    );
    proxy.shutdown().await;
}

async fn post(server: &JsonServer, path: &str, method: reqwest::Method, body: &Value) {
    let r = reqwest::Client::new()
        .request(method, format!("{}{path}", server.url()))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(body).unwrap())
        .send()
        .await
        .expect("write to json-server");
    assert!(r.status().is_success(), "{path}: {}", r.status());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_runs_pick_up_new_and_changed_records_once() {
    let server =
        tokio::task::spawn_blocking(|| JsonServer::start(&json!({"items": items(1, 240)})))
            .await
            .unwrap();
    let env = TestEnv::start().await;
    // By id: the latest id from a descending request; the API filters with id_gte
    // (inclusive: the connector drops the boundary record itself).
    let mut by_id = stream("items", page_number(25));
    by_id["cursor"] = json!({
        "field": "id", "lower_param": "id_gte", "upper_param": "id_lte",
        "latest": {"path": "items", "query": {"_sort": "id", "_order": "desc", "_limit": "1"}}
    });
    let c = config(&server.url(), by_id);
    assert_eq!(run(&env, &c, "by-id").await.rows, 240);
    assert_eq!(
        run(&env, &c, "by-id").await.rows,
        0,
        "nothing new, nothing read"
    );
    for i in 241..=273 {
        post(&server, "items", reqwest::Method::POST, &item(i)).await;
    }
    let report = run(&env, &c, "by-id").await;
    assert_eq!(report.rows, 33);
    assert_eq!(report.cursor, Some(json!({"value": 273})));
    assert_matches(
        &committed(&env, "by-id").await,
        &server_records(&server, "items").await,
    );

    // By time, merged by key: records changed at the source replace their old rows.
    let mut by_time = stream("items", page_number(25));
    // No lag: the test's changes are stamped just before the run.
    by_time["cursor"] =
        json!({"field": "updated_at", "lower_param": "updated_at_gte", "lag_secs": 0});
    by_time["write_disposition"] = json!("merge");
    let c = config(&server.url(), by_time);
    assert_eq!(run(&env, &c, "by-time").await.rows, 273);
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    for i in [1, 100, 273] {
        let mut changed = item(i);
        changed["name"] = json!(format!("changed {i}"));
        changed["updated_at"] = json!(now);
        post(
            &server,
            &format!("items/{i}"),
            reqwest::Method::PUT,
            &changed,
        )
        .await;
    }
    let mut new = item(274);
    new["updated_at"] = json!(now);
    post(&server, "items", reqwest::Method::POST, &new).await;
    let report = run(&env, &c, "by-time").await;
    assert_eq!(report.rows, 4, "three changed records and one new");
    let want = server_records(&server, "items").await;
    assert_eq!(want[0]["name"], "changed 1");
    assert_matches(&committed(&env, "by-time").await, &want);
    let _ = WriteDisposition::Merge;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_one_clear_line_and_commits_nothing() {
    let server = tokio::task::spawn_blocking(|| {
        JsonServer::start(&json!({"items": items(1, 60), "wrapped": {"data": items(1, 3)}}))
    })
    .await
    .unwrap();
    let env = TestEnv::start().await;
    let fails = |c: Value, prefix: &'static str| {
        let env = &env;
        async move {
            let e = core(env, &c, prefix)
                .await
                .run("items", &StopSignal::new())
                .await
                .unwrap_err();
            assert!(
                env.keys(&format!("{prefix}/items/_delta_log"))
                    .await
                    .is_empty()
            );
            e
        }
    };
    // A record that does not fit its column: named by record and page.
    let mut s = stream("items", page_number(25));
    s["schema"][1]["type"] = json!("int64");
    let e = fails(config(&server.url(), s), "bad-record")
        .await
        .to_string();
    assert!(
        e.contains("record 0 of the page GET") && e.contains("_page=1"),
        "{e}"
    );
    // A path the API does not have.
    let e = fails(
        config(&server.url(), stream("nothing", page_number(25))),
        "no-path",
    )
    .await;
    assert!(
        matches!(&e, Error::Connector(c) if c.kind() == ConnectorErrorKind::Config),
        "{e}"
    );
    assert!(e.to_string().contains("404"), "{e}");
    // Records not where the config says.
    let mut s = stream("wrapped", json!({"style": "none"}));
    s["records_path"] = json!("items");
    let e = fails(config(&server.url(), s), "records-path")
        .await
        .to_string();
    assert!(
        e.contains("records_path `items`") && e.contains("nothing"),
        "{e}"
    );
    // Nobody listening: unreachable, naming host and port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut c = config(
        &format!("http://127.0.0.1:{port}/"),
        stream("items", page_number(25)),
    );
    c["http"]["retry"]["max_attempts"] = json!(2);
    let e = fails(c, "unreachable").await;
    assert!(
        matches!(&e, Error::Connector(c) if c.kind() == ConnectorErrorKind::Unreachable),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains(&format!("cannot reach 127.0.0.1:{port}")),
        "{e}"
    );
    // Config mistakes, before any request.
    for (patch, expected) in [
        (json!({"base_url": "ftp://x/"}), "not an http(s) URL"),
        (json!({"streams": []}), "streams is empty"),
    ] {
        let mut c = config(&server.url(), stream("items", page_number(25)));
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        let parsed: HttpApiConfig = serde_json::from_value(c).unwrap();
        let e = connector_sdk::Connector::discover(&HttpApi, &parsed)
            .await
            .unwrap_err();
        assert!(e.to_string().contains(expected), "{e}");
    }
    let mut s = stream("items", page_number(25));
    s["cursor"] = json!({"field": "id"});
    let parsed: HttpApiConfig = serde_json::from_value(config(&server.url(), s)).unwrap();
    let e = connector_sdk::Connector::discover(&HttpApi, &parsed)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("cursor.latest"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_spaces_requests() {
    let server =
        tokio::task::spawn_blocking(|| JsonServer::start(&json!({"items": items(1, 200)})))
            .await
            .unwrap();
    let env = TestEnv::start().await;
    // 21 requests (20 pages of 10 and the empty one) at 40 per second, burst 1: the
    // token bucket makes them take at least 20 intervals of 25 ms.
    let mut c = config(&server.url(), stream("items", page_number(10)));
    c["http"]["rate_limit"] = json!({"requests_per_second": 40.0, "burst": 1});
    let started = Instant::now();
    let report = run(&env, &c, "limited").await;
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "21 requests at 40/s took {:?}",
        started.elapsed()
    );
    assert_matches(
        &committed(&env, "limited").await,
        &server_records(&server, "items").await,
    );
    assert_eq!(report.rows, 200);
}
