//! PostgreSQL connector.
//!
//! Rows leave the server through `COPY (SELECT ...) TO STDOUT (FORMAT binary)` and are
//! decoded straight into Arrow builders ([`copy_binary`]): no per-row objects, no text
//! round trip. A stream is a table or a named query; it can be split into ranges of a
//! partition column (read concurrently, each on its own connection, on one exported
//! snapshot) and extracted incrementally after a cursor column. Every batch is followed by
//! a checkpoint holding the last key read, so an interrupted partition resumes exactly
//! after it. See the README for the type mapping and the consistency note.

use connector_sdk::{
    Connector, ConnectorError, Partition, Plan, ReadContext, ReadStream, StreamDescriptor,
    async_trait,
};

mod catalog;
mod config;
mod connect;
pub mod copy_binary;
mod plan;
mod read;
mod types;

pub use plan::{PartitionSpec, StreamCursor};
pub use read::{KeyCheckpoint, KeyValue, PostgresRun};

pub use config::{
    PasswordSource, PostgresConfig, SslMode, StreamConfig, UnconstrainedNumeric, UnsupportedColumns,
};

/// The PostgreSQL connector.
#[derive(Debug, Clone, Copy, Default)]
pub struct PostgresConnector;

#[async_trait]
impl Connector for PostgresConnector {
    type Config = PostgresConfig;
    type Cursor = StreamCursor;
    type PartitionSpec = PartitionSpec;
    type Checkpoint = KeyCheckpoint;
    type Run = PostgresRun;
    const MANIFEST: &'static str = include_str!("../connector.toml");

    /// The one server the config connects to: `host:port` (an IPv6 address in brackets).
    fn source_endpoints(&self, config: &Self::Config) -> Vec<String> {
        let host = config.host.trim();
        if host.contains(':') && !host.starts_with('[') {
            vec![format!("[{host}]:{}", config.port)]
        } else {
            vec![format!("{host}:{}", config.port)]
        }
    }

    async fn check(&self, config: &Self::Config) -> Result<(), ConnectorError> {
        config.validate()?;
        let client = connect::connect(config).await?;
        client
            .simple_query("SELECT 1")
            .await
            .map_err(|e| connect::pg_error("running `SELECT 1`", e))?;
        Ok(())
    }

    async fn discover(
        &self,
        config: &Self::Config,
    ) -> Result<Vec<StreamDescriptor>, ConnectorError> {
        config.validate()?;
        let client = connect::connect(config).await?;
        Ok(catalog::resolve_all(&client, config)
            .await?
            .iter()
            .map(catalog::ResolvedStream::descriptor)
            .collect())
    }

    async fn plan(
        &self,
        config: &Self::Config,
        stream: &StreamDescriptor,
        cursor: Option<&StreamCursor>,
    ) -> Result<Plan<PartitionSpec, StreamCursor>, ConnectorError> {
        config.validate()?;
        let client = connect::connect(config).await?;
        let resolved = catalog::resolve_named(&client, config, &stream.name).await?;
        let plan = plan::plan(&client, &resolved, cursor).await?;
        tracing::info!(
            stream = %stream.name,
            partitions = plan.partitions.len(),
            incremental = resolved.cursor.is_some(),
            resumable = !resolved.key.is_empty(),
            "postgres plan"
        );
        Ok(plan)
    }

    /// A cursor column of a date or time type is a point in time: runners report how far
    /// the committed cursor is behind. Other cursor types have no lag.
    fn cursor_time(&self, cursor: &StreamCursor) -> Option<chrono::DateTime<chrono::Utc>> {
        plan::cursor_time(&cursor.value)
    }

    async fn open_run(
        &self,
        config: &Self::Config,
        _stream: &StreamDescriptor,
    ) -> Result<PostgresRun, ConnectorError> {
        Ok(PostgresRun::new(config))
    }

    fn read<'a>(
        &'a self,
        config: &'a Self::Config,
        run: &'a PostgresRun,
        stream: &'a StreamDescriptor,
        partition: &'a Partition<PartitionSpec>,
        ctx: ReadContext<KeyCheckpoint>,
    ) -> ReadStream<'a, KeyCheckpoint> {
        Box::pin(read::read_partition(
            config,
            run,
            &stream.name,
            &partition.spec,
            ctx.checkpoint,
        ))
    }
}
