//! Deployment and governance as code, from a connector's manifest:
//!
//! - [`render`]: one complete CloudFormation stack per connector × runner (Lambda,
//!   Fargate, EC2, Glue) from the manifest and a [`DeployConfig`], with the network
//!   pattern's resources and least-privilege IAM;
//! - [`checks`]: the governance policy on manifests and templates (`govern`);
//! - [`advisor`]: the runner and network pattern the decision guidance recommends for a
//!   workload profile (`advise`).
//!
//! No I/O but reading the files named on the command line.

pub mod advisor;
pub mod checks;
pub mod config;
pub mod error;
mod iam;
mod network;
mod runners;
mod template;

pub use advisor::{Advice, WorkloadProfile, advise};
pub use checks::{check_manifest, check_template, read_template};
pub use config::{DeployConfig, Schedule};
pub use error::{Error, Result};
pub use iam::{SESSION_MANAGER_ACTIONS, UNSCOPABLE_ACTIONS, VPC_PLACEMENT_ACTIONS, is_unscopable};
pub use runners::daemon_toml;
pub use template::render;

#[cfg(test)]
mod tests;
