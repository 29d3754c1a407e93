//! An OTLP/HTTP receiver for tests: accepts `POST /v1/traces` and `POST /v1/metrics`
//! (protobuf), decodes them with the `opentelemetry-proto` types and keeps every span and
//! metric data point, so a test can assert the span tree and the metric values a real run
//! exported. (No OTLP collector is packaged in crates.io, PyPI, Debian or npm.)

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Response, StatusCode};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use prost::Message;
use tokio::net::TcpListener;

/// One received span.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedSpan {
    /// Span name.
    pub name: String,
    /// Span id (hex).
    pub span_id: String,
    /// Parent span id (hex), empty for a root.
    pub parent_span_id: String,
    /// Trace id (hex).
    pub trace_id: String,
    /// String and integer attributes, as text.
    pub attributes: Vec<(String, String)>,
    /// Duration in nanoseconds.
    pub duration_nanos: u64,
    /// The resource's `service.name`.
    pub service: String,
}

impl ReceivedSpan {
    /// The attribute `key`, if present.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// One received metric data point (sums and gauges; histograms as count and sum).
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedPoint {
    /// Metric name.
    pub metric: String,
    /// Unit.
    pub unit: String,
    /// Attributes, as text.
    pub attributes: Vec<(String, String)>,
    /// The value (a sum or gauge), or the sum of a histogram.
    pub value: f64,
    /// A histogram's count (0 for sums and gauges).
    pub count: u64,
}

impl ReceivedPoint {
    /// The attribute `key`, if present.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Default)]
struct Received {
    spans: Vec<ReceivedSpan>,
    points: Vec<ReceivedPoint>,
    errors: Vec<String>,
}

/// A running receiver on 127.0.0.1.
#[derive(Debug)]
pub struct OtlpReceiver {
    addr: SocketAddr,
    received: Arc<Mutex<Received>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl OtlpReceiver {
    /// Start on a free port.
    pub async fn start() -> OtlpReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let received = Arc::new(Mutex::new(Received::default()));
        let store = received.clone();
        let task = crate::http_server::spawn_http_server(listener, move |req| {
            let store = store.clone();
            async move {
                let path = req.uri().path().to_string();
                let body = match req.into_body().collect().await {
                    Ok(b) => b.to_bytes(),
                    Err(e) => return answer(StatusCode::BAD_REQUEST, e.to_string()),
                };
                let mut r = store.lock().unwrap_or_else(|e| e.into_inner());
                match take(&mut r, &path, &body) {
                    Ok(()) => answer(StatusCode::OK, String::new()),
                    Err(e) => {
                        r.errors.push(e.clone());
                        answer(StatusCode::BAD_REQUEST, e)
                    }
                }
            }
        });
        OtlpReceiver {
            addr,
            received,
            task,
        }
    }

    /// The value of `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.lock().spans.clone()
    }

    /// Every metric data point received so far.
    pub fn points(&self) -> Vec<ReceivedPoint> {
        self.lock().points.clone()
    }

    /// Requests that did not decode.
    pub fn errors(&self) -> Vec<String> {
        self.lock().errors.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Received> {
        self.received.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn answer(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/x-protobuf")
        .body(Full::new(Bytes::from(body)))
        .expect("response")
}

fn text(v: &Option<AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        other => format!("{other:?}"),
    }
}

fn attributes(kvs: &[KeyValue]) -> Vec<(String, String)> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), text(&kv.value)))
        .collect()
}

fn take(r: &mut Received, path: &str, body: &[u8]) -> Result<(), String> {
    match path {
        "/v1/traces" => {
            let req = ExportTraceServiceRequest::decode(body).map_err(|e| e.to_string())?;
            for rs in req.resource_spans {
                let service = rs
                    .resource
                    .as_ref()
                    .and_then(|res| res.attributes.iter().find(|kv| kv.key == "service.name"))
                    .map(|kv| text(&kv.value))
                    .unwrap_or_default();
                for ss in rs.scope_spans {
                    for s in ss.spans {
                        r.spans.push(ReceivedSpan {
                            name: s.name,
                            span_id: hex(&s.span_id),
                            parent_span_id: hex(&s.parent_span_id),
                            trace_id: hex(&s.trace_id),
                            attributes: attributes(&s.attributes),
                            duration_nanos: s
                                .end_time_unix_nano
                                .saturating_sub(s.start_time_unix_nano),
                            service: service.clone(),
                        });
                    }
                }
            }
            Ok(())
        }
        "/v1/metrics" => {
            let req = ExportMetricsServiceRequest::decode(body).map_err(|e| e.to_string())?;
            for rm in req.resource_metrics {
                for sm in rm.scope_metrics {
                    for m in sm.metrics {
                        let point =
                            |attributes: &[KeyValue], value: f64, count: u64| ReceivedPoint {
                                metric: m.name.clone(),
                                unit: m.unit.clone(),
                                attributes: self::attributes(attributes),
                                value,
                                count,
                            };
                        let number = |v: &Option<number_data_point::Value>| match v {
                            Some(number_data_point::Value::AsInt(i)) => *i as f64,
                            Some(number_data_point::Value::AsDouble(d)) => *d,
                            None => f64::NAN,
                        };
                        match &m.data {
                            Some(metric::Data::Sum(s)) => {
                                for p in &s.data_points {
                                    r.points.push(point(&p.attributes, number(&p.value), 0));
                                }
                            }
                            Some(metric::Data::Gauge(g)) => {
                                for p in &g.data_points {
                                    r.points.push(point(&p.attributes, number(&p.value), 0));
                                }
                            }
                            Some(metric::Data::Histogram(h)) => {
                                for p in &h.data_points {
                                    r.points.push(point(
                                        &p.attributes,
                                        p.sum.unwrap_or(f64::NAN),
                                        p.count,
                                    ));
                                }
                            }
                            other => {
                                return Err(format!(
                                    "metric {} has unexpected data {other:?}",
                                    m.name
                                ));
                            }
                        }
                    }
                }
            }
            Ok(())
        }
        other => Err(format!("unexpected path {other}")),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
