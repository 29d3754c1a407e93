//! The streams' Delta tables in the AWS Glue Data Catalog, so Athena (engine v3) queries
//! them: a CloudFormation template with one `AWS::Glue::Table` per stream, or the Athena
//! `CREATE EXTERNAL TABLE` statements. Athena reads a Delta table's schema, files and
//! statistics from its log; the catalog entry only names the location and the format.

use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::manifest::ConnectorManifest;
use crate::options::OutputLocation;

/// What to render the catalog entries as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogFormat {
    /// A CloudFormation template (JSON), one `AWS::Glue::Table` per stream.
    CloudFormation,
    /// Athena DDL: one `CREATE EXTERNAL TABLE` per stream.
    AthenaSql,
}

/// The catalog entries of `streams` (every declared stream when empty) of the connector
/// whose tables live under `output`, in `database`.
pub fn render_catalog_tables(
    manifest: &ConnectorManifest,
    output: &OutputLocation,
    database: &str,
    streams: &[String],
    format: CatalogFormat,
) -> Result<String> {
    if database.is_empty()
        || database.len() > 255
        || !database
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(Error::request(format!(
            "database name {database:?} is not a Glue database name; use 1-255 characters of [a-z0-9_]"
        )));
    }
    let streams: Vec<String> = if streams.is_empty() {
        if manifest.streams.is_empty() {
            return Err(Error::request(format!(
                "connector `{}` discovers its streams at run time; name them with --stream",
                manifest.name
            )));
        }
        manifest.streams.iter().map(|s| s.name.clone()).collect()
    } else {
        for s in streams {
            if !crate::manifest::is_stream_name(s) {
                return Err(Error::request(format!(
                    "stream name {s:?} is not a stream name ([a-z][a-z0-9_]*)"
                )));
            }
            manifest.require_stream(s)?;
        }
        streams.to_vec()
    };
    let location = |stream: &str| {
        format!(
            "s3://{}/{}",
            output.bucket,
            output.key(&format!("{stream}/"))
        )
    };
    match format {
        CatalogFormat::AthenaSql => Ok(streams
            .iter()
            .map(|s| {
                format!(
                    "CREATE EXTERNAL TABLE `{database}`.`{s}`\nLOCATION '{}'\nTBLPROPERTIES ('table_type' = 'DELTA');\n",
                    location(s)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")),
        CatalogFormat::CloudFormation => {
            let mut resources = serde_json::Map::new();
            for s in &streams {
                resources.insert(
                    format!("{}Table", logical_id(s)),
                    json!({
                        "Type": "AWS::Glue::Table",
                        "Properties": {
                            "CatalogId": {"Ref": "AWS::AccountId"},
                            "DatabaseName": {"Ref": "DatabaseName"},
                            "TableInput": {
                                "Name": s,
                                "Description": format!(
                                    "Stream `{s}` of connector {} {} (Delta Lake; schema, files and statistics in its _delta_log)",
                                    manifest.name, manifest.version
                                ),
                                "TableType": "EXTERNAL_TABLE",
                                "Parameters": {
                                    "table_type": "DELTA",
                                    "EXTERNAL": "TRUE",
                                    "classification": "delta"
                                },
                                "StorageDescriptor": {"Location": location(s)}
                            }
                        }
                    }),
                );
            }
            let template = json!({
                "AWSTemplateFormatVersion": "2010-09-09",
                "Description": format!(
                    "Glue Data Catalog tables for the Delta tables of connector {} under {output}",
                    manifest.name
                ),
                "Parameters": {
                    "DatabaseName": {
                        "Type": "String",
                        "Default": database,
                        "AllowedPattern": "^[a-z0-9_]{1,255}$",
                        "Description": "The Glue database the tables go into (it must exist)"
                    }
                },
                "Resources": Value::Object(resources)
            });
            serde_json::to_string_pretty(&template)
                .map_err(|e| Error::internal_caused(format!("serializing the template: {e}"), e))
        }
    }
}

/// `orders_2024` -> `Orders2024`: a CloudFormation logical id.
fn logical_id(stream: &str) -> String {
    stream
        .split('_')
        .map(|part| {
            let mut c = part.chars();
            match c.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn logical_ids_are_alphanumeric() {
        assert_eq!(super::logical_id("orders_2024_eu"), "Orders2024Eu");
        assert_eq!(super::logical_id("x"), "X");
    }
}
