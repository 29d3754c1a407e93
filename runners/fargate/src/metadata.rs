//! The ECS task metadata endpoint, version 4 (`ECS_CONTAINER_METADATA_URI_V4`).
//!
//! `GET ${ECS_CONTAINER_METADATA_URI_V4}/task` returns the task's ARN, cluster,
//! availability zone and its CPU/memory limits. Fargate sets the variable in every
//! container; elsewhere it is unset and the runner goes on without it.

use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What the runner uses from the task metadata.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskMetadata {
    /// The task ARN.
    #[serde(rename = "TaskARN", default)]
    pub task_arn: Option<String>,
    /// The cluster name or ARN.
    #[serde(default)]
    pub cluster: Option<String>,
    /// The availability zone the task runs in.
    #[serde(default)]
    pub availability_zone: Option<String>,
    /// `FARGATE` or `EC2`.
    #[serde(default)]
    pub launch_type: Option<String>,
    /// Task definition family.
    #[serde(default)]
    pub family: Option<String>,
    /// Task definition revision.
    #[serde(default)]
    pub revision: Option<String>,
    /// Task-level limits.
    #[serde(default)]
    pub limits: Option<TaskLimits>,
}

/// Task-level limits: `CPU` in vCPU (0.25, 1, 4...), `Memory` in MiB.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskLimits {
    /// vCPUs of the task.
    #[serde(rename = "CPU", default)]
    pub cpu: Option<f64>,
    /// Memory of the task, MiB.
    #[serde(rename = "Memory", default)]
    pub memory: Option<u64>,
}

impl TaskMetadata {
    /// The task's vCPUs, if the metadata gave them.
    pub fn vcpu(&self) -> Option<f64> {
        self.limits
            .as_ref()
            .and_then(|l| l.cpu)
            .filter(|c| *c > 0.0)
    }

    /// The fields that go into logs and the run report's `runtime`.
    pub fn runtime_fields(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        let mut put = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                m.insert(k.into(), v.clone().into());
            }
        };
        put("task_arn", &self.task_arn);
        put("cluster", &self.cluster);
        put("availability_zone", &self.availability_zone);
        put("launch_type", &self.launch_type);
        if let Some(cpu) = self.vcpu() {
            m.insert("task_vcpu".into(), cpu.into());
        }
        m
    }
}

/// Fetch `<uri>/task`. Only plain `http://` is used by ECS for this endpoint.
pub async fn fetch(uri: &str, timeout: Duration) -> Result<TaskMetadata> {
    let url = format!("{}/task", uri.trim_end_matches('/'));
    let parsed: http::Uri = url.parse().map_err(|e| Error::Metadata {
        url: url.clone(),
        reason: format!("not a valid URL ({e}); expected http://host:port/v4/<id>"),
    })?;
    if parsed.scheme_str() != Some("http") {
        return Err(Error::Metadata {
            url,
            reason: "the task metadata endpoint is plain http://".into(),
        });
    }
    let client: Client<_, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let request = async {
        let response = client.get(parsed).await.map_err(|e| e.to_string())?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        if !status.is_success() {
            return Err(format!("HTTP {status}"));
        }
        serde_json::from_slice::<TaskMetadata>(&body)
            .map_err(|e| format!("the response is not task metadata JSON ({e})"))
    };
    match tokio::time::timeout(timeout, request).await {
        Ok(Ok(m)) => Ok(m),
        Ok(Err(reason)) => Err(Error::Metadata { url, reason }),
        Err(_) => Err(Error::Metadata {
            url,
            reason: format!("no answer within {} ms", timeout.as_millis()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_task_response() {
        // Shape of the v4 `/task` response on Fargate (AWS documentation example, trimmed).
        let body = r#"{
            "Cluster": "arn:aws:ecs:us-west-2:111122223333:cluster/default",
            "TaskARN": "arn:aws:ecs:us-west-2:111122223333:task/default/e9028f8d5d8e4f258373e7b93ce9a3c3",
            "Family": "curltest", "Revision": "3", "DesiredStatus": "RUNNING",
            "KnownStatus": "RUNNING", "Limits": {"CPU": 0.25, "Memory": 512},
            "AvailabilityZone": "us-west-2d", "LaunchType": "FARGATE",
            "Containers": [{"Name": "x"}]
        }"#;
        let m: TaskMetadata = serde_json::from_str(body).unwrap();
        assert_eq!(
            m.task_arn.as_deref(),
            Some(
                "arn:aws:ecs:us-west-2:111122223333:task/default/e9028f8d5d8e4f258373e7b93ce9a3c3"
            )
        );
        assert_eq!(m.availability_zone.as_deref(), Some("us-west-2d"));
        assert_eq!(m.vcpu(), Some(0.25));
        let f = m.runtime_fields();
        assert_eq!(
            f["cluster"],
            "arn:aws:ecs:us-west-2:111122223333:cluster/default"
        );
        assert_eq!(f["launch_type"], "FARGATE");
    }

    #[tokio::test]
    async fn unreachable_endpoint_is_an_error_not_a_hang() {
        let e = fetch("http://127.0.0.1:9/v4/x", Duration::from_millis(500))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("127.0.0.1:9/v4/x/task"), "{e}");
        let e = fetch("https://example.invalid/v4", Duration::from_millis(500))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("plain http://"), "{e}");
    }
}
