//! The invocation event (an extract request) and the invocation response.

use std::fmt;

use connector_sdk::{OutputLocation, RunReport, RunStatus};
pub use runner_layer::ExtractSettings;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

use crate::error::LambdaError;

/// The invocation event: extract one stream of the connector into `output`.
///
/// Chaining (Step Functions style): when the response has `"status": "partial"`, invoke
/// again with the same event plus the response's `continuation`; repeat until
/// `"status": "complete"`.
#[derive(Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtractRequest {
    /// The connector config, inline: a JSON object in the connector's config schema
    /// (`<binary> spec`). Exactly one of `config` and `config_env` must be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<serde_json::Value>,
    /// Name of a function environment variable whose value is the connector config as
    /// JSON (for example filled from Secrets Manager at deploy time), so secrets stay out
    /// of the event. Exactly one of `config` and `config_env` must be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_env: Option<String>,
    /// Where the dataset goes: `s3://bucket/prefix`.
    pub output: OutputLocation,
    /// The stream to extract.
    pub stream: String,
    /// Read only this partition of the plan (its id); the other partitions stay pending
    /// and the run reports `partial`. Default: every partition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// Extract options, with the same names as every other input path (`codec`,
    /// `part_size`, `concurrency`, `max_runtime_secs`, ...; see `spec`). Default: the
    /// SDK's defaults. The run also stops at the invocation deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<ExtractSettings>,
    /// Stop reading this many milliseconds before the invocation deadline, to leave time
    /// to close files and commit. Default: a tenth of the remaining time, between 1 s
    /// and 30 s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety_margin_ms: Option<u64>,
    /// The `continuation` of the previous invocation's partial response. With it, the
    /// invocation checks that the dataset is still exactly where that invocation stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continuation: Option<Continuation>,
}

// The config may hold secrets: never print it.
impl fmt::Debug for ExtractRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExtractRequest")
            .field("config", &self.config.as_ref().map(|_| "<hidden>"))
            .field("config_env", &self.config_env)
            .field("output", &self.output.to_string())
            .field("stream", &self.stream)
            .field("partition", &self.partition)
            .field("options", &self.options)
            .field("safety_margin_ms", &self.safety_margin_ms)
            .field("continuation", &self.continuation)
            .finish()
    }
}

/// Where a partial invocation stopped: pass it back as the next event's `continuation`.
/// The committed dataset manifest holds the actual resume state (the pending plan and each
/// partition's checkpoint); this names the commit the next invocation must continue.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Continuation {
    /// The stream (must equal the event's `stream`).
    pub stream: String,
    /// Sequence of the partial commit to continue from.
    pub sequence: u64,
    /// Run id of the partial commit.
    pub run_id: String,
    /// How many invocations of this chain came before the next one (1 after the first).
    pub invocations: u32,
    /// How many invocations in a row, up to the previous one, committed no progress
    /// (their deadline came before the first checkpoint). At [`MAX_STALLED`] the chain
    /// fails with `NonRetryable.NoProgress` instead of looping forever.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub stalled: u32,
}

/// Invocations in a row without progress after which a chain fails.
pub const MAX_STALLED: u32 = 3;

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// What an invocation returns (well under Lambda's 6 MB response limit: a summary, no
/// file list, no cursor).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtractResponse {
    /// `complete` (the plan is done) or `partial` (invoke again with `continuation`).
    pub status: ResponseStatus,
    /// Present when `status` is `partial`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continuation: Option<Continuation>,
    /// Connector name.
    pub connector: String,
    /// Stream.
    pub stream: String,
    /// This invocation's run id.
    pub run_id: String,
    /// The Lambda request id.
    pub request_id: String,
    /// Sequence this invocation committed, if it committed.
    pub sequence: Option<u64>,
    /// `s3://bucket/prefix/stream`.
    pub dataset: String,
    /// The committed manifest's URL, if any.
    pub manifest: Option<String>,
    /// Rows committed by this invocation.
    pub rows: u64,
    /// Bytes committed by this invocation.
    pub bytes: u64,
    /// Files committed by this invocation.
    pub files: u64,
    /// Partitions in the plan.
    pub partitions: u64,
    /// Partitions finished over the whole plan (including earlier invocations).
    pub partitions_done: u64,
    /// Wall time of the run, milliseconds.
    pub duration_ms: u64,
    /// S3 requests made.
    pub s3_requests: u64,
    /// S3 request attempts that were retries.
    pub s3_retries: u64,
}

/// `complete` or `partial`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResponseStatus {
    /// Every partition of the plan is committed.
    Complete,
    /// Stopped before the deadline with progress committed; invoke again with `continuation`.
    Partial,
}

impl ExtractResponse {
    /// The response for `report`; `continuation` is set when the run is partial.
    pub fn from_report(
        report: &RunReport,
        request_id: &str,
        continuation: Option<Continuation>,
    ) -> Self {
        let status = match report.status {
            RunStatus::Complete => ResponseStatus::Complete,
            _ => ResponseStatus::Partial,
        };
        ExtractResponse {
            status,
            continuation: if status == ResponseStatus::Partial {
                continuation
            } else {
                None
            },
            connector: report.connector.clone(),
            stream: report.stream.clone(),
            run_id: report.run_id.clone(),
            request_id: request_id.to_string(),
            sequence: report.sequence,
            dataset: report.dataset.clone(),
            manifest: report.manifest.clone(),
            rows: report.rows,
            bytes: report.bytes,
            files: report.files,
            partitions: report.partitions,
            partitions_done: report.partitions_done,
            duration_ms: report.duration_ms,
            s3_requests: report.s3_requests,
            s3_retries: report.s3_retries,
        }
    }
}

/// The raw invocation payload: parsed JSON, or why it is not JSON. Deserializing it never
/// fails, so the handler (not the runtime) answers a bad event, with a clear message.
pub enum RawEvent {
    /// A JSON value.
    Json(serde_json::Value),
    /// The payload is not JSON; the parser's message (it quotes no input).
    NotJson(String),
}

impl fmt::Debug for RawEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RawEvent::Json(_) => f.write_str("RawEvent::Json(<hidden>)"),
            RawEvent::NotJson(m) => write!(f, "RawEvent::NotJson({m:?})"),
        }
    }
}

impl<'de> Deserialize<'de> for RawEvent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match serde_json::Value::deserialize(d) {
            Ok(v) => RawEvent::Json(v),
            Err(e) => RawEvent::NotJson(e.to_string()),
        })
    }
}

/// What an invocation asks for.
#[derive(Debug)]
pub enum LambdaEvent {
    /// Our extract request.
    Extract(Box<ExtractRequest>),
    /// S3 objects (bucket, decoded key) an AWS event names as created: an S3
    /// notification, directly or in SQS message bodies, or an EventBridge "Object Created"
    /// event. Run with the function's event request, restricted to these objects.
    Objects(Vec<(String, String)>),
    /// An EventBridge scheduled event: run the function's event request as it is.
    Scheduled,
}

/// The function environment variable holding the extract request (JSON, no secrets:
/// `config_env`, `output`, `stream`, `options`) that S3, SQS, EventBridge and scheduled
/// events run, since those events carry none.
pub const EVENT_REQUEST_ENV: &str = "CONNECTOR_EVENT_REQUEST";

impl RawEvent {
    /// The invocation: an AWS event (S3, SQS, EventBridge) when the payload is one, else
    /// our extract request.
    pub fn into_event(self) -> Result<LambdaEvent, LambdaError> {
        if let RawEvent::Json(v) = &self
            && let Some(event) = aws_event(v)?
        {
            return Ok(event);
        }
        self.into_request()
            .map(|r| LambdaEvent::Extract(Box::new(r)))
    }

    /// Parse raw payload bytes (what the Runtime API delivers).
    pub fn from_slice(body: &[u8]) -> Self {
        match serde_json::from_slice(body) {
            Ok(v) => RawEvent::Json(v),
            Err(e) => RawEvent::NotJson(e.to_string()),
        }
    }

    /// The extract request, or a one-line error naming what is wrong.
    pub fn into_request(self) -> Result<ExtractRequest, LambdaError> {
        let value = match self {
            RawEvent::Json(v) => v,
            RawEvent::NotJson(m) => {
                return Err(LambdaError::Event(format!(
                    "the payload is not JSON ({m}); send an extract request object: {{\"config\": {{...}}, \"output\": \"s3://bucket/prefix\", \"stream\": \"name\"}}"
                )));
            }
        };
        if !value.is_object() {
            return Err(LambdaError::Event(format!(
                "the payload is JSON {}, not an object; send an extract request object: {{\"config\": {{...}}, \"output\": \"s3://bucket/prefix\", \"stream\": \"name\"}}",
                json_kind(&value)
            )));
        }
        let request: ExtractRequest = serde_json::from_value(value)
            .map_err(|e| LambdaError::Event(format!("{e} (see the extract request schema)")))?;
        match (&request.config, &request.config_env) {
            (Some(_), Some(_)) => Err(LambdaError::Event(
                "both `config` and `config_env` are set; set exactly one".into(),
            )),
            (None, None) => Err(LambdaError::Event(
                "missing field `config` (or `config_env`): the connector config is required".into(),
            )),
            _ => Ok(request),
        }
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

/// The JSON Schema of the invocation event.
pub fn request_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(ExtractRequest)).unwrap_or_default()
}

/// The JSON Schema of the invocation response.
pub fn response_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(ExtractResponse)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(body: &str) -> Result<ExtractRequest, String> {
        RawEvent::from_slice(body.as_bytes())
            .into_request()
            .map_err(|e| e.to_string())
    }

    #[test]
    fn valid_events_parse() {
        let r = parse(
            r#"{"config": {"rows": 5}, "output": "s3://bkt/p", "stream": "orders",
                "options": {"codec": "snappy"},
                "continuation": {"stream": "orders", "sequence": 2, "run_id": "r", "invocations": 1}}"#,
        )
        .unwrap();
        assert_eq!(r.output.bucket, "bkt");
        assert_eq!(r.continuation.unwrap().sequence, 2);
        assert_eq!(r.options.unwrap().codec, Some(connector_sdk::Codec::Snappy));
    }

    #[test]
    fn bad_events_say_what_is_wrong() {
        let e = parse("not json").unwrap_err();
        assert!(e.contains("the payload is not JSON"), "{e}");
        let e = parse("[1]").unwrap_err();
        assert!(e.contains("JSON array, not an object"), "{e}");
        let e = parse(r#"{"config": {}, "stream": "orders"}"#).unwrap_err();
        assert!(e.contains("missing field `output`"), "{e}");
        let e = parse(r#"{"config": {}, "output": "s3://bkt/p", "stream": "o", "bogus": 1}"#)
            .unwrap_err();
        assert!(e.contains("unknown field `bogus`"), "{e}");
        let e = parse(r#"{"output": "s3://bkt/p", "stream": "o"}"#).unwrap_err();
        assert!(e.contains("missing field `config`"), "{e}");
        let e =
            parse(r#"{"config": {}, "config_env": "X", "output": "s3://bkt/p", "stream": "o"}"#)
                .unwrap_err();
        assert!(e.contains("exactly one"), "{e}");
        let e = parse(r#"{"config": {}, "output": "bkt/p", "stream": "o"}"#).unwrap_err();
        assert!(e.contains("expected s3://bucket/prefix"), "{e}");
    }

    #[test]
    fn debug_hides_the_config() {
        let r =
            parse(r#"{"config": {"password": "hunter2"}, "output": "s3://bkt/p", "stream": "o"}"#)
                .unwrap();
        assert!(!format!("{r:?}").contains("hunter2"));
        let raw = RawEvent::from_slice(br#"{"password": "hunter2"}"#);
        assert!(!format!("{raw:?}").contains("hunter2"));
    }

    mod fuzz {
        use proptest::prelude::*;
        use serde_json::Value;

        use super::super::RawEvent;

        fn json(secret: String) -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(Value::from),
                ".{0,12}".prop_map(Value::String),
                Just(Value::String(secret)),
            ];
            leaf.prop_recursive(3, 16, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                    prop::collection::btree_map("[a-z_]{1,8}", inner, 0..3)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        /// An event with any fields (the request's and others) holding any values.
        fn event() -> impl Strategy<Value = (Value, String)> {
            "[A-Za-z0-9]{12}"
                .prop_flat_map(|token| {
                    let secret = format!("pw-{token}");
                    let fields = prop::collection::btree_map(
                        prop::sample::select(
                            super::REQUEST_FIELDS
                                .iter()
                                .copied()
                                .chain(["bogus"])
                                .collect::<Vec<_>>(),
                        ),
                        prop_oneof![
                            // Other fields echo their values in errors (an output that is not
                            // an S3 location, say); they hold no secrets.
                            json("not-a-secret".into()),
                            Just(Value::String("s3://bucket/prefix".into())),
                            Just(Value::String("orders".into())),
                        ],
                        0..9,
                    );
                    (fields, Just(secret))
                })
                .prop_map(|(fields, secret)| {
                    let map: serde_json::Map<String, Value> = fields
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect();
                    (map, secret)
                })
                .prop_flat_map(|(map, secret)| {
                    // The secret lives in the config, where connectors keep passwords: anywhere
                    // in it, and as the whole config.
                    (Just(map), json(secret.clone()), Just(secret))
                })
                .prop_map(|(mut map, config, secret)| {
                    let config = match config {
                        Value::Object(mut m) => {
                            m.insert("password".into(), Value::String(secret.clone()));
                            Value::Object(m)
                        }
                        other => serde_json::json!({"password": secret.clone(), "nested": other}),
                    };
                    map.insert("config".into(), config);
                    (Value::Object(map), secret)
                })
        }

        proptest! {
            /// Any payload bytes: a request or a one-line error, never a panic.
            #[test]
            fn any_payload_is_a_request_or_a_one_line_error(
                body in prop::collection::vec(any::<u8>(), 0..256),
            ) {
                if let Err(e) = RawEvent::from_slice(&body).into_request() {
                    prop_assert!(!e.to_string().contains('\n'), "{}", e);
                }
            }

            /// Whatever else an event gets wrong, neither the error nor the parsed
            /// request's debug form shows the config's password.
            #[test]
            fn a_config_secret_never_reaches_an_error_or_a_log((event, secret) in event()) {
                let body = serde_json::to_vec(&event).unwrap();
                match RawEvent::from_slice(&body).into_request() {
                    Ok(request) => {
                        let shown = format!("{request:?}");
                        prop_assert!(!shown.contains(&secret));
                    }
                    Err(e) => {
                        let m = e.to_string();
                        prop_assert!(!m.contains(&secret), "{}", m);
                        prop_assert!(!m.contains('\n'), "{}", m);
                    }
                }
                let raw = format!("{:?}", RawEvent::from_slice(&body));
                prop_assert!(!raw.contains(&secret));
            }
        }
    }

    /// Every field of the extract request.
    const REQUEST_FIELDS: [&str; 8] = [
        "config",
        "config_env",
        "output",
        "stream",
        "partition",
        "options",
        "safety_margin_ms",
        "continuation",
    ];

    #[test]
    fn schemas_name_every_field() {
        let s = request_schema();
        for field in REQUEST_FIELDS {
            assert!(
                s["properties"][field]["description"].is_string(),
                "{field} has no description"
            );
        }
        assert_eq!(s["additionalProperties"], json!(false));
        assert_eq!(s["required"], json!(["output", "stream"]));
        assert!(response_schema()["properties"]["continuation"].is_object());
    }
}

/// An S3 notification key: URL-encoded with `+` for a space.
fn notification_key(raw: &str) -> Result<String, LambdaError> {
    let spaced = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map(|k| k.into_owned())
        .map_err(|_| {
            LambdaError::Event(format!(
                "the S3 notification's object key {raw:?} is not URL-encoded UTF-8"
            ))
        })
}

/// The created objects of S3 notification `records` (other event names are skipped).
fn s3_records(
    records: &[serde_json::Value],
    out: &mut Vec<(String, String)>,
) -> Result<(), LambdaError> {
    for r in records {
        if r["eventSource"] != "aws:s3" {
            return Err(LambdaError::Event(format!(
                "an S3 notification record has eventSource {}, not \"aws:s3\"",
                r["eventSource"]
            )));
        }
        if !r["eventName"]
            .as_str()
            .is_some_and(|n| n.starts_with("ObjectCreated:"))
        {
            continue;
        }
        let (Some(bucket), Some(key)) = (
            r["s3"]["bucket"]["name"].as_str(),
            r["s3"]["object"]["key"].as_str(),
        ) else {
            return Err(LambdaError::Event(
                "an S3 notification record has no s3.bucket.name or s3.object.key".into(),
            ));
        };
        out.push((bucket.to_string(), notification_key(key)?));
    }
    Ok(())
}

/// An EventBridge S3 event's object, if it is "Object Created" (its key is not
/// URL-encoded, unlike an S3 notification's).
fn eventbridge_object(v: &serde_json::Value) -> Result<Option<(String, String)>, LambdaError> {
    if v["detail-type"] != "Object Created" {
        return Ok(None);
    }
    match (
        v["detail"]["bucket"]["name"].as_str(),
        v["detail"]["object"]["key"].as_str(),
    ) {
        (Some(b), Some(k)) => Ok(Some((b.to_string(), k.to_string()))),
        _ => Err(LambdaError::Event(
            "the EventBridge S3 event has no detail.bucket.name or detail.object.key".into(),
        )),
    }
}

/// The AWS event `v` is, if any: S3 notifications (direct or in SQS bodies), EventBridge
/// S3 events, EventBridge scheduled events.
fn aws_event(v: &serde_json::Value) -> Result<Option<LambdaEvent>, LambdaError> {
    if let Some(records) = v.get("Records").and_then(|r| r.as_array()) {
        let source = records.first().map(|r| r["eventSource"].clone());
        let mut objects = Vec::new();
        match source.as_ref().and_then(|s| s.as_str()) {
            Some("aws:s3") => s3_records(records, &mut objects)?,
            None if records
                .first()
                .is_some_and(|r| r["EventSource"] == "aws:sns") =>
            {
                for r in records {
                    let message = r["Sns"]["Message"].as_str().unwrap_or_default();
                    let inner: serde_json::Value = serde_json::from_str(message).map_err(|_| {
                        LambdaError::Event(
                            "an SNS record's Message is not JSON; the function takes S3 notifications through SNS".into(),
                        )
                    })?;
                    if inner["Event"] == "s3:TestEvent" {
                        continue;
                    }
                    let Some(inner_records) = inner.get("Records").and_then(|r| r.as_array())
                    else {
                        return Err(LambdaError::Event(
                            "an SNS record's Message is not an S3 notification".into(),
                        ));
                    };
                    s3_records(inner_records, &mut objects)?;
                }
            }
            Some("aws:sqs") => {
                for m in records {
                    let body = m["body"].as_str().unwrap_or_default();
                    let mut inner: serde_json::Value = serde_json::from_str(body).map_err(|_| {
                        LambdaError::Event(format!(
                            "SQS message {} has a body that is not JSON; the function takes S3 notifications (or EventBridge S3 events) through SQS",
                            m["messageId"]
                        ))
                    })?;
                    // S3 -> SNS -> SQS: the notification is the SNS envelope's Message.
                    if inner["Type"] == "Notification"
                        && let Some(message) = inner["Message"].as_str()
                        && let Ok(unwrapped) = serde_json::from_str(message)
                    {
                        inner = unwrapped;
                    }
                    if inner["Event"] == "s3:TestEvent" {
                        continue;
                    }
                    if let Some(r) = inner.get("Records").and_then(|r| r.as_array()) {
                        s3_records(r, &mut objects)?;
                    } else if inner["source"] == "aws.s3" {
                        objects.extend(eventbridge_object(&inner)?);
                    } else {
                        return Err(LambdaError::Event(format!(
                            "SQS message {} is not an S3 notification nor an EventBridge S3 event",
                            m["messageId"]
                        )));
                    }
                }
            }
            _ => return Ok(None),
        }
        return Ok(Some(LambdaEvent::Objects(objects)));
    }
    if v["source"] == "aws.s3" {
        return Ok(Some(LambdaEvent::Objects(
            eventbridge_object(v)?.into_iter().collect(),
        )));
    }
    if v["source"] == "aws.events" && v["detail-type"] == "Scheduled Event" {
        return Ok(Some(LambdaEvent::Scheduled));
    }
    Ok(None)
}

#[cfg(test)]
mod aws_event_tests {
    use super::*;
    use serde_json::json;

    fn objects(v: serde_json::Value) -> Vec<(String, String)> {
        match RawEvent::Json(v).into_event().unwrap() {
            LambdaEvent::Objects(o) => o,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn s3_sqs_and_eventbridge_events_name_their_objects() {
        let n = |name: &str, key: &str| {
            json!({"eventSource": "aws:s3", "eventName": name,
            "s3": {"bucket": {"name": "b"}, "object": {"key": key, "eTag": "x", "size": 1}}})
        };
        let direct = json!({"Records": [n("ObjectCreated:Put", "a/red+flower%281%29.csv"), n("ObjectRemoved:Delete", "gone")]});
        assert_eq!(
            objects(direct.clone()),
            [("b".to_string(), "a/red flower(1).csv".to_string())]
        );
        let sqs = json!({"Records": [
            {"eventSource": "aws:sqs", "messageId": "1", "body": direct.to_string()},
            {"eventSource": "aws:sqs", "messageId": "2", "body": json!({"Event": "s3:TestEvent"}).to_string()},
            {"eventSource": "aws:sqs", "messageId": "3", "body": json!({"source": "aws.s3", "detail-type": "Object Created",
                "detail": {"bucket": {"name": "b"}, "object": {"key": "c+d.csv"}}}).to_string()},
        ]});
        assert_eq!(
            objects(sqs),
            [
                ("b".into(), "a/red flower(1).csv".into()),
                ("b".into(), "c+d.csv".into())
            ]
        );
        let sns = |n: &serde_json::Value| json!({"Type": "Notification", "Message": n.to_string()});
        let via_sns = json!({"Records": [{"eventSource": "aws:sqs", "messageId": "4", "body": sns(&direct).to_string()}]});
        assert_eq!(
            objects(via_sns),
            [("b".to_string(), "a/red flower(1).csv".to_string())]
        );
        let direct_sns = json!({"Records": [{"EventSource": "aws:sns", "Sns": {"Message": direct.to_string()}}]});
        assert_eq!(
            objects(direct_sns),
            [("b".to_string(), "a/red flower(1).csv".to_string())]
        );
        let eb = json!({"source": "aws.s3", "detail-type": "Object Created", "detail": {"bucket": {"name": "b"}, "object": {"key": "k"}}});
        assert_eq!(objects(eb), [("b".to_string(), "k".to_string())]);
        let scheduled =
            json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
        assert!(matches!(
            RawEvent::Json(scheduled).into_event().unwrap(),
            LambdaEvent::Scheduled
        ));
        let bad =
            json!({"Records": [{"eventSource": "aws:sqs", "messageId": "9", "body": "hello"}]});
        let e = RawEvent::Json(bad).into_event().unwrap_err().to_string();
        assert!(
            e.contains("SQS message \"9\"") && e.contains("not JSON"),
            "{e}"
        );
        let e = RawEvent::Json(json!({"Records": [n("ObjectCreated:Put", "%ff")]}))
            .into_event()
            .unwrap_err();
        assert!(e.to_string().contains("URL-encoded"), "{e}");
        // Our own request is still our own request.
        let ours = json!({"config": {}, "output": "s3://bucket/p", "stream": "s"});
        assert!(matches!(
            RawEvent::Json(ours).into_event().unwrap(),
            LambdaEvent::Extract(_)
        ));
    }
}
