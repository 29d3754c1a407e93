//! One connector value shared by many extract cores.
//!
//! `ExtractCore::new` takes the connector by value and a runner is handed exactly one value
//! (connectors need not be `Clone`), so each run's core gets a `SharedConnector` that
//! delegates to the one `Arc`ed connector.

use std::sync::Arc;

use async_trait::async_trait;

use crate::{
    Connector, ConnectorError, Cursor, Partition, Plan, ReadContext, ReadStream, StreamDescriptor,
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
