//! A fake ECS task metadata endpoint v4 for tests: `GET /v4/<id>/task` answers a Fargate
//! task document (the shape AWS documents), `GET /v4/<id>` the container document. It
//! counts the requests it served, so a test can prove the runner asked.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use serde_json::json;
use tokio::net::TcpListener;

/// The task ARN the fake endpoint reports.
pub const TASK_ARN: &str =
    "arn:aws:ecs:eu-west-1:111122223333:task/connectors/0f3c9a4b5e6d4f7a8b9c0d1e2f3a4b5c";
/// The cluster it reports.
pub const CLUSTER: &str = "arn:aws:ecs:eu-west-1:111122223333:cluster/connectors";
/// The availability zone it reports.
pub const AVAILABILITY_ZONE: &str = "eu-west-1b";

/// A running fake metadata endpoint.
#[derive(Debug)]
pub struct EcsMetadataServer {
    addr: SocketAddr,
    requests: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for EcsMetadataServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl EcsMetadataServer {
    /// Start on a free port of 127.0.0.1, reporting a task with `vcpu` vCPUs.
    pub async fn start(vcpu: f64) -> EcsMetadataServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let requests = Arc::new(AtomicU64::new(0));
        let counter = requests.clone();
        let task = crate::http_server::spawn_http_server(listener, move |req| {
            counter.fetch_add(1, Ordering::SeqCst);
            let path = req.uri().path().to_string();
            async move { answer(&path, vcpu) }
        });
        EcsMetadataServer {
            addr,
            requests,
            task,
        }
    }

    /// The value of `ECS_CONTAINER_METADATA_URI_V4`.
    pub fn uri(&self) -> String {
        format!("http://{}/v4/0f3c9a4b5e6d4f7a-1234567890", self.addr)
    }

    /// Requests served so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

fn answer(path: &str, vcpu: f64) -> Response<Full<Bytes>> {
    let body = if path.ends_with("/task") {
        json!({
            "Cluster": CLUSTER,
            "TaskARN": TASK_ARN,
            "Family": "orders-demo",
            "Revision": "7",
            "DesiredStatus": "RUNNING",
            "KnownStatus": "RUNNING",
            "Limits": {"CPU": vcpu, "Memory": 2048},
            "AvailabilityZone": AVAILABILITY_ZONE,
            "LaunchType": "FARGATE",
            "Containers": [{"Name": "orders-demo", "Limits": {"CPU": 1024, "Memory": 2048}}]
        })
    } else if path.starts_with("/v4/") {
        json!({"Name": "orders-demo", "Limits": {"CPU": 1024, "Memory": 2048}})
    } else {
        return Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Full::new(Bytes::from_static(b"not found")))
            .expect("response");
    };
    Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("response")
}
