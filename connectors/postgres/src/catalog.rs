//! Reading the catalog: tables, columns, their types and primary keys.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use connector_sdk::{ConnectorError, ConnectorErrorKind, StreamDescriptor};
use tokio_postgres::Client;

use crate::config::{
    PostgresConfig, StreamConfig, TableName, UnconstrainedNumeric, UnsupportedColumns,
    is_stream_name, quote_ident, quote_literal,
};
use crate::connect::pg_error;
use crate::types::{KeyKind, NumericMapping, PgType, UNCONSTRAINED_DECIMAL, builtin};

/// Where a stream's rows come from.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    Table(TableName),
    Query(String),
}

impl Source {
    /// The `FROM` item.
    pub(crate) fn sql_from_clause(&self) -> String {
        match self {
            Source::Table(t) => t.sql(),
            Source::Query(q) => format!("({}) AS q", q.trim().trim_end_matches(';')),
        }
    }
    /// For messages.
    pub(crate) fn display(&self) -> String {
        match self {
            Source::Table(t) => format!("table `{}`", t.display()),
            Source::Query(_) => "query".into(),
        }
    }
}

/// A column the stream reads.
#[derive(Debug, Clone)]
pub(crate) struct Column {
    pub name: String,
    pub ty: PgType,
    pub nullable: bool,
}

/// A stream resolved against the catalog.
#[derive(Debug, Clone)]
pub(crate) struct ResolvedStream {
    pub name: String,
    pub source: Source,
    pub columns: Vec<Column>,
    /// Indices of the resume-key columns (empty: no mid-partition resume).
    pub key: Vec<usize>,
    pub cursor: Option<usize>,
    pub partition: Option<usize>,
    pub partitions: u32,
    pub write_disposition: Option<connector_sdk::WriteDisposition>,
}

impl ResolvedStream {
    /// The descriptor `discover` reports.
    pub(crate) fn descriptor(&self) -> StreamDescriptor {
        let fields: Vec<Field> = self
            .columns
            .iter()
            .map(|c| Field::new(&c.name, c.ty.arrow_type(), c.nullable))
            .collect();
        StreamDescriptor {
            name: self.name.clone(),
            schema: Arc::new(Schema::new(fields)) as SchemaRef,
            cursor_field: self.cursor.map(|i| self.columns[i].name.clone()),
            primary_key: self
                .key
                .iter()
                .map(|&i| self.columns[i].name.clone())
                .collect(),
            write_disposition: self.write_disposition,
        }
    }

    /// The column named `name`, for messages.
    pub(crate) fn column_name(&self, i: usize) -> &str {
        &self.columns[i].name
    }

    /// The key kinds of the key columns.
    pub(crate) fn key_kinds(&self) -> Vec<KeyKind> {
        self.key
            .iter()
            .filter_map(|&i| self.columns[i].ty.key_kind())
            .collect()
    }
}

/// A catalog column before type mapping.
struct RawColumn {
    name: String,
    oid: u32,
    typmod: i32,
    not_null: bool,
    type_name: String,
}

/// Every stream of `config`, resolved.
pub(crate) async fn resolve_all(
    client: &Client,
    config: &PostgresConfig,
) -> Result<Vec<ResolvedStream>, ConnectorError> {
    let mut out = Vec::new();
    for s in stream_configs(client, config).await? {
        out.push(resolve(client, config, &s).await?);
    }
    Ok(out)
}

/// The stream named `name`, resolved.
pub(crate) async fn resolve_named(
    client: &Client,
    config: &PostgresConfig,
    name: &str,
) -> Result<ResolvedStream, ConnectorError> {
    for s in stream_configs(client, config).await? {
        if s.stream_name(0)? == name {
            return resolve(client, config, &s).await;
        }
    }
    Err(ConnectorError::config(format!(
        "stream `{name}` is not in the config; run `discover` to list the streams"
    )))
}

/// The configured streams, or one per table of `schemas` when none are configured.
async fn stream_configs(
    client: &Client,
    config: &PostgresConfig,
) -> Result<Vec<StreamConfig>, ConnectorError> {
    if !config.streams.is_empty() {
        return Ok(config.streams.clone());
    }
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition \
               AND n.nspname = ANY($1::text[]) AND has_table_privilege(c.oid, 'SELECT') \
             ORDER BY 1, 2",
            &[&config.schemas],
        )
        .await
        .map_err(|e| pg_error("listing tables", e))?;
    let mut streams = Vec::new();
    for row in rows {
        let schema: String = row.get(0);
        let table: String = row.get(1);
        let base = if schema == "public" {
            table.clone()
        } else {
            format!("{schema}_{table}")
        };
        let mut name: String = base
            .chars()
            .map(|c| {
                let c = c.to_ascii_lowercase();
                if c.is_ascii_lowercase() || c.is_ascii_digit() {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
            name = format!("t_{name}");
        }
        name.truncate(64);
        if !is_stream_name(&name) {
            tracing::warn!(schema, table, "table skipped: no valid stream name");
            continue;
        }
        if let Some(other) = streams
            .iter()
            .find(|s: &&StreamConfig| s.name.as_deref() == Some(name.as_str()))
        {
            return Err(ConnectorError::config(format!(
                "tables {} and {schema}.{table} both map to stream name `{name}`; list the tables in `streams`, each with its own `name`",
                other.table.as_deref().unwrap_or("?"),
            )));
        }
        streams.push(StreamConfig {
            name: Some(name),
            table: Some(format!("{schema}.{table}")),
            query: None,
            key: vec![],
            cursor_column: None,
            partition_column: None,
            partitions: 1,
            write_disposition: None,
        });
    }
    Ok(streams)
}

/// Resolve one stream config against the catalog.
pub(crate) async fn resolve(
    client: &Client,
    config: &PostgresConfig,
    s: &StreamConfig,
) -> Result<ResolvedStream, ConnectorError> {
    let name = s.stream_name(0)?;
    let (source, raw, primary_key) = match (&s.table, &s.query) {
        (Some(t), _) => {
            let table = TableName::parse(t)?;
            let (raw, pk) = table_columns(client, config, &table).await?;
            (Source::Table(table), raw, pk)
        }
        (None, Some(q)) => {
            let source = Source::Query(q.clone());
            let raw = query_columns(client, &name, &source).await?;
            (source, raw, vec![])
        }
        (None, None) => {
            return Err(ConnectorError::config(format!(
                "stream `{name}`: set `table` or `query`"
            )));
        }
    };
    let unconstrained = match config.unconstrained_numeric {
        UnconstrainedNumeric::Decimal => UNCONSTRAINED_DECIMAL,
        UnconstrainedNumeric::String => NumericMapping::Text,
    };
    let types = resolve_types(client, &raw, unconstrained).await?;
    let mut columns = Vec::new();
    for c in raw {
        match types.get(&(c.oid, c.typmod)) {
            Some(Some(ty)) => columns.push(Column {
                name: c.name,
                ty: ty.clone(),
                nullable: !c.not_null,
            }),
            _ => match config.unsupported_columns {
                UnsupportedColumns::Error => {
                    return Err(ConnectorError::new(
                        ConnectorErrorKind::Unsupported,
                        format!(
                            "stream `{name}`: {} column `{}` has type `{}`, which the connector does not map; set unsupported_columns = \"skip\" or cast it in a custom query",
                            source.display(),
                            c.name,
                            c.type_name
                        ),
                    ));
                }
                UnsupportedColumns::Skip => {
                    tracing::warn!(
                        stream = %name,
                        column = %c.name,
                        r#type = %c.type_name,
                        "column of an unsupported type skipped"
                    );
                }
            },
        }
    }
    if columns.is_empty() {
        return Err(ConnectorError::config(format!(
            "stream `{name}`: {} has no columns the connector can read",
            source.display()
        )));
    }
    let find = |col: &str, what: &str| -> Result<usize, ConnectorError> {
        columns.iter().position(|c| c.name == col).ok_or_else(|| {
            ConnectorError::config(format!(
                "stream `{name}`: {what} column `{col}` is not a column of {} (or has a skipped type)",
                source.display()
            ))
        })
    };
    let key_names = if s.key.is_empty() {
        primary_key
    } else {
        s.key.clone()
    };
    let mut key = Vec::new();
    for k in &key_names {
        let i = find(k, "key")?;
        if columns[i].ty.key_kind().is_none() {
            return Err(ConnectorError::config(format!(
                "stream `{name}`: key column `{k}` has a type that cannot be a resume key (use integer, text, uuid, numeric, date or timestamp columns)"
            )));
        }
        key.push(i);
    }
    if key.is_empty() {
        tracing::debug!(stream = %name, "no key: an interrupted partition restarts from its beginning");
    }
    let cursor = s
        .cursor_column
        .as_deref()
        .map(|c| find(c, "cursor"))
        .transpose()?;
    let partition = s
        .partition_column
        .as_deref()
        .map(|c| find(c, "partition"))
        .transpose()?;
    if let Some(p) = partition
        && !matches!(
            columns[p].ty.key_kind(),
            Some(KeyKind::Int | KeyKind::Date | KeyKind::Timestamp | KeyKind::Timestamptz)
        )
    {
        return Err(ConnectorError::config(format!(
            "stream `{name}`: partition column `{}` must be an integer, date or timestamp column",
            columns[p].name
        )));
    }
    Ok(ResolvedStream {
        name,
        source,
        columns,
        key,
        cursor,
        partition,
        partitions: s.partitions,
        write_disposition: s.write_disposition,
    })
}

async fn table_columns(
    client: &Client,
    config: &PostgresConfig,
    table: &TableName,
) -> Result<(Vec<RawColumn>, Vec<String>), ConnectorError> {
    let row = client
        .query_one("SELECT to_regclass($1)::oid", &[&table.sql()])
        .await
        .map_err(|e| pg_error(&format!("looking up table `{}`", table.display()), e))?;
    let oid: Option<u32> = row.get(0);
    let Some(oid) = oid else {
        return Err(ConnectorError::config(format!(
            "table `{}` does not exist in database `{}` (or user `{}` cannot see it)",
            table.display(),
            config.database,
            config.user
        )));
    };
    let rows = client
        .query(
            "SELECT a.attname::text, a.atttypid, a.atttypmod, a.attnotnull, \
                    format_type(a.atttypid, a.atttypmod) \
             FROM pg_attribute a \
             WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attnum",
            &[&oid],
        )
        .await
        .map_err(|e| pg_error(&format!("reading the columns of `{}`", table.display()), e))?;
    let raw = rows
        .iter()
        .map(|r| RawColumn {
            name: r.get(0),
            oid: r.get(1),
            typmod: r.get(2),
            not_null: r.get(3),
            type_name: r.get(4),
        })
        .collect();
    let pk = client
        .query(
            "SELECT a.attname::text FROM pg_index i \
             CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
             WHERE i.indrelid = $1 AND i.indisprimary ORDER BY k.ord",
            &[&oid],
        )
        .await
        .map_err(|e| {
            pg_error(
                &format!("reading the primary key of `{}`", table.display()),
                e,
            )
        })?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok((raw, pk))
}

async fn query_columns(
    client: &Client,
    name: &str,
    source: &Source,
) -> Result<Vec<RawColumn>, ConnectorError> {
    let stmt = client
        .prepare(&format!("SELECT * FROM {}", source.sql_from_clause()))
        .await
        .map_err(|e| pg_error(&format!("stream `{name}`: the query is invalid"), e))?;
    let mut seen = std::collections::BTreeSet::new();
    let mut raw = Vec::new();
    for c in stmt.columns() {
        if !seen.insert(c.name().to_string()) {
            return Err(ConnectorError::config(format!(
                "stream `{name}`: the query returns column `{}` twice; alias the columns",
                c.name()
            )));
        }
        raw.push(RawColumn {
            name: c.name().to_string(),
            oid: c.type_().oid(),
            typmod: c.type_modifier(),
            not_null: false,
            type_name: c.type_().name().to_string(),
        });
    }
    Ok(raw)
}

/// Map every `(oid, typmod)` of `raw` to a type; `None` for unsupported types. Enums,
/// domains (over supported types) and arrays of them are resolved from `pg_type`.
async fn resolve_types(
    client: &Client,
    raw: &[RawColumn],
    unconstrained: NumericMapping,
) -> Result<HashMap<(u32, i32), Option<PgType>>, ConnectorError> {
    let mut out = HashMap::new();
    let mut pending = Vec::new();
    for c in raw {
        match builtin(c.oid, c.typmod, unconstrained) {
            Some(t) => {
                out.insert((c.oid, c.typmod), Some(t));
            }
            None => pending.push((c.oid, c.typmod)),
        }
    }
    for (oid, typmod) in pending {
        let ty = resolve_custom(client, oid, typmod, unconstrained, 0).await?;
        out.insert((oid, typmod), ty);
    }
    Ok(out)
}

fn resolve_custom<'a>(
    client: &'a Client,
    oid: u32,
    typmod: i32,
    unconstrained: NumericMapping,
    depth: u32,
) -> futures::future::BoxFuture<'a, Result<Option<PgType>, ConnectorError>> {
    Box::pin(async move {
        if let Some(t) = builtin(oid, typmod, unconstrained) {
            return Ok(Some(t));
        }
        if depth > 8 {
            return Ok(None);
        }
        let row = client
            .query_opt(
                "SELECT typtype::text, typelem, typbasetype, typtypmod, typcategory::text \
                 FROM pg_type WHERE oid = $1",
                &[&oid],
            )
            .await
            .map_err(|e| pg_error("reading pg_type", e))?;
        let Some(row) = row else { return Ok(None) };
        let typtype: String = row.get(0);
        let elem: u32 = row.get(1);
        let base: u32 = row.get(2);
        let base_typmod: i32 = row.get(3);
        let category: String = row.get(4);
        Ok(match typtype.as_str() {
            "e" => Some(PgType::Text),
            "d" => {
                let m = if typmod >= 0 { typmod } else { base_typmod };
                resolve_custom(client, base, m, unconstrained, depth + 1).await?
            }
            "b" if category == "A" && elem != 0 => {
                match resolve_custom(client, elem, typmod, unconstrained, depth + 1).await? {
                    Some(PgType::Array(_)) | None => None,
                    Some(t) => Some(PgType::Array(Box::new(t))),
                }
            }
            _ => None,
        })
    })
}

/// Ensure the quoting helpers are used consistently by SQL builders.
pub(crate) fn column_sql(c: &Column) -> String {
    quote_ident(&c.name)
}

/// A text value as an untyped SQL literal (the server gives it the column's type).
pub(crate) fn text_literal(s: &str) -> String {
    quote_literal(s)
}
