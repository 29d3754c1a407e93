//! One connector value shared by every job.
//!
//! `ExtractCore::new` takes the connector by value and the facade hands the runner exactly
//! one value (connectors need not be `Clone`), so each job's core gets a `SharedConnector`
//! that delegates to the one `Arc`ed connector.

use std::sync::Arc;

use connector_sdk::{
    Connector, ConnectorError, Cursor, Partition, Plan, ReadContext, ReadStream, StreamDescriptor,
    async_trait,
};

/// A connector behind an `Arc`, itself a connector with the same manifest and config.
#[derive(Debug)]
pub struct SharedConnector<C>(pub Arc<C>);

impl<C> Clone for SharedConnector<C> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

#[async_trait]
impl<C: Connector> Connector for SharedConnector<C> {
    type Config = C::Config;
    const MANIFEST: &'static str = C::MANIFEST;

    async fn check(&self, config: &Self::Config) -> Result<(), ConnectorError> {
        self.0.check(config).await
    }

    async fn discover(
        &self,
        config: &Self::Config,
    ) -> Result<Vec<StreamDescriptor>, ConnectorError> {
        self.0.discover(config).await
    }

    async fn plan(
        &self,
        config: &Self::Config,
        stream: &StreamDescriptor,
        cursor: Option<&Cursor>,
    ) -> Result<Plan, ConnectorError> {
        self.0.plan(config, stream, cursor).await
    }

    fn read<'a>(
        &'a self,
        config: &'a Self::Config,
        stream: &'a StreamDescriptor,
        partition: &'a Partition,
        ctx: ReadContext,
    ) -> ReadStream<'a> {
        self.0.read(config, stream, partition, ctx)
    }
}
