//! OAuth2 client credentials against a protected API: a small token endpoint and gateway
//! in the test (they share the list of issued tokens), in front of json-server. Tokens
//! expire (by lifetime, and by the gateway revoking them after a few uses); the connector
//! fetches new ones and every record lands once. Wrong credentials fail clearly, and no
//! secret appears in an error.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use bytes::Bytes;
use connector_sdk::{ConnectorErrorKind, Error, ExtractCore, ExtractOptions, StopSignal};
use http_api::{HttpApi, HttpApiConfig};
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use integration_tests::TestEnv;
use integration_tests::http_server::spawn_http_server;
use integration_tests::json_server::JsonServer;
use serde_json::{Value, json};

const CLIENT_ID: &str = "connector";
const SECRET: &str = "s3cr3t-🔑-value";

#[derive(Debug, Default, Clone)]
struct Tokens {
    /// Issued token → uses left.
    live: HashMap<String, u32>,
    issued: u32,
    refused: u32,
}

/// The token endpoint (`POST /token`) and the gateway (`GET /api/...` → json-server).
async fn start_gateway(
    upstream: String,
    uses_per_token: u32,
    expires_in: u64,
) -> (String, Arc<Mutex<Tokens>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tokens = Arc::new(Mutex::new(Tokens::default()));
    let state = tokens.clone();
    let http = reqwest::Client::new();
    spawn_http_server(listener, move |req: Request<hyper::body::Incoming>| {
        let state = state.clone();
        let http = http.clone();
        let upstream = upstream.clone();
        async move {
            let reply = |status: StatusCode, body: String| {
                Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(body)))
                    .unwrap()
            };
            if req.uri().path() == "/token" {
                let expected = format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD
                        .encode(format!("{CLIENT_ID}:{}", url_encode(SECRET)))
                );
                let auth = req
                    .headers()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let body = req.into_body().collect().await.unwrap().to_bytes();
                let form = String::from_utf8_lossy(&body).to_string();
                if auth.as_deref() != Some(expected.as_str())
                    || !form.contains("grant_type=client_credentials")
                {
                    return reply(
                        StatusCode::UNAUTHORIZED,
                        json!({"error": "invalid_client"}).to_string(),
                    );
                }
                let mut t = state.lock().unwrap();
                t.issued += 1;
                let token = format!("token-{}", t.issued);
                t.live.insert(token.clone(), uses_per_token);
                return reply(
                    StatusCode::OK,
                    json!({"access_token": token, "token_type": "bearer", "expires_in": expires_in}).to_string(),
                );
            }
            let Some(rest) = req
                .uri()
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .and_then(|p| p.strip_prefix("/api/").map(str::to_string))
            else {
                return reply(StatusCode::NOT_FOUND, "{}".into());
            };
            let token = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::to_string);
            {
                let mut t = state.lock().unwrap();
                let ok = match token.as_ref().and_then(|k| t.live.get_mut(k)) {
                    Some(uses) if *uses > 0 => {
                        *uses -= 1;
                        true
                    }
                    _ => false,
                };
                if !ok {
                    t.refused += 1;
                    return reply(
                        StatusCode::UNAUTHORIZED,
                        json!({"error": "invalid_token"}).to_string(),
                    );
                }
            }
            let r = http.get(format!("{upstream}{rest}")).send().await.unwrap();
            let status = r.status();
            reply(status, r.text().await.unwrap())
        }
    });
    (format!("http://{addr}"), tokens)
}

fn url_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn config(gateway: &str, secret: Value) -> Value {
    json!({
        "base_url": format!("{gateway}/api/"),
        "http": {
            "auth": {"oauth2_client_credentials": {
                "token_url": format!("{gateway}/token"),
                "client_id": CLIENT_ID,
                "client_secret": secret,
                "scopes": ["read:items"]
            }},
            "retry": {"initial_backoff_ms": 5, "max_backoff_ms": 50}
        },
        "streams": [{
            "name": "items", "path": "items", "query": {"_sort": "id"},
            "pagination": {"style": "page_number", "page_param": "_page", "size_param": "_limit", "size": 10},
            "schema": [
                {"name": "id", "type": "int64", "nullable": false},
                {"name": "name", "type": "string"}
            ]
        }]
    })
}

async fn extract(
    env: &TestEnv,
    config: Value,
    prefix: &str,
) -> Result<connector_sdk::RunReport, Error> {
    let config: HttpApiConfig = serde_json::from_value(config).unwrap();
    ExtractCore::new(
        HttpApi,
        config,
        env.store().await,
        ExtractOptions::new(env.output(prefix)),
        "test",
    )
    .unwrap()
    .run("items", &StopSignal::new())
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_and_revoked_tokens_are_refreshed_and_every_record_lands_once() {
    let records: Vec<Value> = (1..=205)
        .map(|i| json!({"id": i, "name": format!("n{i}")}))
        .collect();
    let server = tokio::task::spawn_blocking(move || JsonServer::start(&json!({"items": records})))
        .await
        .unwrap();
    let env = TestEnv::start().await;
    // The secret in a file, as a mounted secret would be (a trailing newline is ignored).
    let secret_file = env.dir.path().join("client-secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let secret = json!({"file": secret_file});

    // Revoked after 4 uses (a long lifetime): the API's 401 makes the client fetch anew.
    let (gateway, tokens) = start_gateway(server.url(), 4, 3600).await;
    let report = extract(&env, config(&gateway, secret.clone()), "revoked")
        .await
        .unwrap();
    assert_eq!(report.rows, 205);
    let batch = integration_tests::read_committed(
        &env.store().await,
        &env.output("revoked"),
        "items",
        "id",
    )
    .await
    .unwrap();
    integration_tests::assert_ids_exact(&batch, "id", 1, 205);
    let t = tokens.lock().unwrap().clone();
    // 21 pages (+ none for check) at 4 uses per token: at least 6 tokens, each refusal
    // cured by exactly one new token.
    assert!(t.issued >= 6, "{t:?}");
    assert_eq!(t.refused, t.issued - 1, "{t:?}");

    // Short-lived tokens (2 s, used for 1 s): fetched again before they expire, so the
    // API never refuses one.
    let (gateway, tokens) = start_gateway(server.url(), u32::MAX, 2).await;
    let mut c = config(&gateway, secret.clone());
    c["http"]["rate_limit"] = json!({"requests_per_second": 8.0});
    let report = extract(&env, c, "expiring").await.unwrap();
    assert_eq!(report.rows, 205);
    let t = tokens.lock().unwrap().clone();
    assert!(t.issued >= 2, "{t:?}");
    assert_eq!(t.refused, 0, "{t:?}");

    // Wrong secret: an auth error naming the token endpoint, not the secret; nothing committed.
    let wrong_file = env.dir.path().join("wrong-secret");
    std::fs::write(&wrong_file, "wrong-secret-value").unwrap();
    let e = extract(&env, config(&gateway, json!({"file": wrong_file})), "wrong")
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Connector(c) if c.kind() == ConnectorErrorKind::Auth),
        "{e}"
    );
    let text = e.to_string();
    assert!(
        text.contains("refused the client credentials") && text.contains("/token"),
        "{text}"
    );
    assert!(
        !text.contains("wrong-secret-value") && !text.contains(SECRET),
        "{text}"
    );
    assert!(env.keys("wrong/items/_delta_log").await.is_empty());
    // A secret variable that is not set: named, before any request.
    let e = extract(
        &env,
        config(&gateway, json!({"env": "OAUTH_TEST_UNSET"})),
        "unset",
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("OAUTH_TEST_UNSET"), "{e}");
}
