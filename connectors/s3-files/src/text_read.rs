//! CSV and JSON Lines: the object body streamed from S3 (decompressed on the fly), cut
//! into records, decoded in batches with `arrow-csv` / `arrow-json`, with rows that do not
//! fit rejected or failing the run by name.

use std::io::Cursor;
use std::pin::Pin;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use async_compression::tokio::bufread::{GzipDecoder, ZstdDecoder};
use bytes::Bytes;
use connector_sdk::json_decoders::JsonDecoders;
use connector_sdk::json_flat_lines::{FlatLinesDecoder, escaped_pairs_as_utf8};
use connector_sdk::{ConnectorError, ListedObject, ReadItem, ReadStream, S3Store};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, BufReader};

use crate::config::{BadRows, Compression, Format, StreamConfig};
use crate::{ObjectPart, Position};

type Body = Pin<Box<dyn AsyncBufRead + Send>>;

/// Buffer between a decompressor and the record cutting.
const BUFFER: usize = 256 << 10;
/// What schema inference reads at most.
const SAMPLE_BYTES: usize = 1 << 20;
const SAMPLE_ROWS: usize = 1000;
/// A rejected row's text is kept up to this many bytes.
const REJECT_TEXT: usize = 4096;

/// One partition's read of a text object.
#[derive(Debug)]
pub(crate) struct TextRead {
    pub store: S3Store,
    pub bucket: String,
    pub rejects: Option<(String, String)>,
    pub stream: StreamConfig,
    pub schema: SchemaRef,
    pub partition_id: String,
    pub part: ObjectPart,
    /// The CSV null markers as a regex, compiled once per read; `None` for the default (only
    /// the empty field is null), which arrow-csv checks without a regex.
    pub null_regex: Option<regex::Regex>,
}

/// Open `key` from byte `from` (S3 Range), decompressed. `None`: the object is gone or
/// changed since it was planned (ETag).
async fn open(
    store: &S3Store,
    bucket: &str,
    part: &ObjectPart,
    from: u64,
) -> Result<Option<Body>, ConnectorError> {
    let mut request = store.client().get_object().bucket(bucket).key(&part.key);
    if !part.etag.is_empty() && !part.etag.starts_with(crate::NO_ETAG) {
        request = request.if_match(&part.etag);
    }
    if from > 0 {
        request = request.range(format!("bytes={from}-"));
    }
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) => {
            let status = e.raw_response().map(|r| r.status().as_u16());
            if matches!(status, Some(404 | 412)) {
                tracing::warn!(
                    key = %part.key,
                    "the object was deleted or replaced since the plan: the rest of this version is not read; a new version is ingested by the next run"
                );
                return Ok(None);
            }
            let text =
                connector_sdk::one_line(&format!("{}", aws_sdk_s3::error::DisplayErrorContext(&e)));
            return Err(ConnectorError::source_error(format!(
                "reading s3://{bucket}/{}: {text}",
                part.key
            ))
            .with_source(e));
        }
    };
    // The body's own reader is buffered (it hands out the received chunks as they are):
    // records are cut straight from them, with no second buffer to copy through.
    let raw = response.body.into_async_read();
    let body: Body = match part.compression.unwrap_or(Compression::None) {
        Compression::Gzip => {
            let mut d = GzipDecoder::new(raw);
            d.multiple_members(true);
            Box::pin(BufReader::with_capacity(BUFFER, d))
        }
        Compression::Zstd => {
            let mut d = ZstdDecoder::new(raw);
            d.multiple_members(true);
            Box::pin(BufReader::with_capacity(BUFFER, d))
        }
        Compression::None | Compression::Auto => Box::pin(raw),
    };
    Ok(Some(body))
}

fn io_error(part: &ObjectPart, bucket: &str, e: std::io::Error) -> ConnectorError {
    let compressed = !matches!(part.compression, None | Some(Compression::None));
    let hint = if compressed && e.kind() == std::io::ErrorKind::InvalidData {
        " (is the object really compressed as its extension or `compression` says?)"
    } else {
        ""
    };
    ConnectorError::source_error(format!("reading s3://{bucket}/{}: {e}{hint}", part.key))
        .with_source(e)
}

/// One record, appended to `out`: up to and including its line break; with `quote` (CSV
/// whose quoted fields may hold line breaks), up to the line break that ends an even number
/// of quotes. Returns its length (0 at the end of the body).
async fn read_record(
    body: &mut Body,
    out: &mut Vec<u8>,
    quote: Option<u8>,
) -> std::io::Result<usize> {
    let start = out.len();
    let mut n = body.read_until(b'\n', out).await?;
    if let Some(q) = quote {
        while n > 0 && out[start..].iter().filter(|b| **b == q).count() % 2 == 1 {
            let more = body.read_until(b'\n', out).await?;
            if more == 0 {
                break;
            }
            n += more;
        }
    }
    Ok(n)
}

/// Records gathered for one batch: their text, one after the other, each ending in a line
/// break (what the decoders read as it is, with no copy per record); where each ends in
/// `text`; their line (relative to the read's start) and byte offset.
#[derive(Default)]
struct Pending {
    text: Vec<u8>,
    ends: Vec<usize>,
    rel_lines: Vec<u64>,
    offsets: Vec<u64>,
}

impl Pending {
    fn len(&self) -> usize {
        self.ends.len()
    }

    fn row(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.text[start..self.ends[i]]
    }

    /// These records with every escaped UTF-16 pair written as its character, for
    /// `arrow-json` (which reads such pairs wrong: `escaped_pairs_as_utf8`); `None` when
    /// there is none.
    fn with_escaped_pairs_as_utf8(&self) -> Option<Pending> {
        memchr::memmem::find(&self.text, b"\\u")?;
        let mut out = Pending {
            rel_lines: self.rel_lines.clone(),
            offsets: self.offsets.clone(),
            ..Pending::default()
        };
        let mut any = false;
        for i in 0..self.len() {
            match escaped_pairs_as_utf8(self.row(i)) {
                Some(row) => {
                    any = true;
                    out.text.extend_from_slice(&row);
                }
                None => out.text.extend_from_slice(self.row(i)),
            }
            out.ends.push(out.text.len());
        }
        any.then_some(out)
    }

    fn clear(&mut self) {
        self.text.clear();
        self.ends.clear();
        self.rel_lines.clear();
        self.offsets.clear();
    }
}

/// The read stream of a CSV or JSON Lines partition.
pub(crate) fn read<'a>(t: Arc<TextRead>, checkpoint: Option<Position>) -> ReadStream<'a, Position> {
    Box::pin(async_stream::try_stream! {
        let part = &t.part;
        let compressed = !matches!(part.compression, None | Some(Compression::None));
        let (range_start, end) = part.range.unwrap_or((0, u64::MAX));
        // Where the read starts, and whether it must first skip to a record boundary.
        let (mut p, line_base, align) = match &checkpoint {
            Some(c) => (c.offset, (c.line > 0).then_some(c.line), false),
            None if range_start == 0 => (0, Some(1), false),
            None => (range_start - 1, None, true),
        };
        let from = if compressed { 0 } else { p };
        let empty = part.size == 0 || (!compressed && from >= part.size);
        let body = if empty { None } else { open(&t.store, &t.bucket, part, from).await? };
        if let Some(mut body) = body {
            if compressed && p > 0 {
                // A compressed body cannot be entered in the middle: skip to the checkpoint.
                let skipped = tokio::io::copy(&mut (&mut body).take(p), &mut tokio::io::sink())
                    .await
                    .map_err(|e| io_error(part, &t.bucket, e))?;
                if skipped < p {
                    Err(ConnectorError::source_error(format!(
                        "s3://{}/{} is shorter than the checkpoint at byte {p}; it changed without a new ETag",
                        t.bucket, part.key
                    )))?;
                }
            }
            let mut record = Vec::new();
            if align {
                // The record under the range start belongs to the previous range.
                p += read_record(&mut body, &mut record, None)
                    .await
                    .map_err(|e| io_error(part, &t.bucket, e))? as u64;
            }
            let aligned = p;
            let mut line_base = line_base;
            let mut rel = 0u64;
            let line_at = |base: Option<u64>, rel: u64| base.map_or(0, |b| b + rel);
            yield ReadItem::Checkpoint(Position { offset: p, line: line_at(line_base, rel) });
            let (header, quote) = match &t.stream.format {
                Format::Csv { header, quote, quoted_newlines, .. } => {
                    (*header, quoted_newlines.then(|| quote.as_bytes()[0]))
                }
                _ => (false, None),
            };
            let mut pending = Pending::default();
            // One decoder for the whole read: its buffers are reused batch after batch.
            let mut decoder = t.new_decoder(t.stream.batch_rows).map_err(|e| {
                ConnectorError::internal(format!("s3://{}/{}: {e}", t.bucket, part.key))
            })?;
            // JSON Lines: the flat-records path, tried first on every batch when the schema
            // allows it (it keeps the key order from batch to batch).
            let mut flat = match t.stream.format {
                Format::Jsonl => FlatLinesDecoder::new(&t.schema),
                _ => None,
            };
            // The header is the first record that is not blank, read from the top.
            let mut header_pending = header && p == 0;
            loop {
                let at_end = p >= end;
                let mut cut = 0;
                if !at_end && quote.is_none() && !header_pending {
                    // The whole records already in the body's buffer, cut in one pass (no
                    // await per record); a record the buffer holds only the start of is
                    // read below, as every record is with quoted line breaks or a header.
                    let buffered = body.fill_buf().await.map_err(|e| io_error(part, &t.bucket, e))?;
                    let mut used = 0;
                    for newline in memchr::memchr_iter(b'\n', buffered) {
                        let record = &buffered[used..=newline];
                        used = newline + 1;
                        let start = p;
                        p += record.len() as u64;
                        rel += 1;
                        if !record.iter().all(|b| b.is_ascii_whitespace()) {
                            pending.text.extend_from_slice(record);
                            pending.ends.push(pending.text.len());
                            pending.rel_lines.push(rel - 1);
                            pending.offsets.push(start);
                        }
                        if p >= end || pending.len() >= t.stream.batch_rows {
                            break;
                        }
                    }
                    body.consume(used);
                    cut = used;
                }
                // Each record is read straight onto the batch's text; one that is not a
                // row (blank, the header) is cut off again.
                let record_start = pending.text.len();
                let n = if cut > 0 {
                    cut
                } else if at_end {
                    0
                } else {
                    read_record(&mut body, &mut pending.text, quote)
                        .await
                        .map_err(|e| io_error(part, &t.bucket, e))?
                };
                if n > 0 && cut == 0 {
                    let start = p;
                    let record_rel = rel;
                    p += n as u64;
                    let record = &pending.text[record_start..];
                    rel += match quote {
                        Some(_) => record.iter().filter(|b| **b == b'\n').count() as u64,
                        // Without quoted line breaks, a line break can only end it.
                        None => u64::from(record.last() == Some(&b'\n')),
                    };
                    let blank = record.iter().all(|b| b.is_ascii_whitespace());
                    if !blank && header_pending {
                        header_pending = false;
                        let line = record.strip_suffix(b"\n").unwrap_or(record);
                        let line = line.strip_suffix(b"\r").unwrap_or(line);
                        if line.contains(&b'\r') {
                            Err(ConnectorError::config(format!(
                                "s3://{}/{}: the header line holds a carriage return that does not end it: lines ending in a carriage return alone are not supported (convert the file to LF or CRLF line endings)",
                                t.bucket, part.key
                            )))?;
                        }
                        pending.text.truncate(record_start);
                    } else if blank {
                        pending.text.truncate(record_start);
                    } else {
                        if record.last() != Some(&b'\n') {
                            // The last record of the object, with no line break of its own.
                            pending.text.push(b'\n');
                        }
                        pending.ends.push(pending.text.len());
                        pending.rel_lines.push(record_rel);
                        pending.offsets.push(start);
                    }
                }
                let full = pending.len() >= t.stream.batch_rows;
                if full || (n == 0 && pending.len() > 0) {
                    let batch = t
                        .decode(&mut decoder, flat.as_mut(), &pending, aligned, &mut line_base)
                        .await?;
                    pending.clear();
                    if let Some(b) = batch {
                        yield ReadItem::Batch(b);
                    }
                    yield ReadItem::Checkpoint(Position { offset: p, line: line_at(line_base, rel) });
                }
                if n == 0 {
                    break;
                }
            }
        }
    })
}

/// `schema` with every timestamp in the zone named "UTC" given the fixed offset "+00:00"
/// instead, for the CSV decoder: the same instants (a text without an offset is read as UTC
/// either way), but arrow parses against a fixed offset without a time zone database lookup
/// per value (chrono-tz's was ~2 % of a CSV run's CPU). [`TextRead::as_stream_schema`]
/// gives the batches the stream's schema back. (JSON Lines needs none of this: its
/// timestamps go through `json_temporal`, which reads a "UTC" column as fast.)
fn decoding_schema(schema: &SchemaRef) -> SchemaRef {
    use arrow::datatypes::{DataType, Field, Schema};
    let utc = |f: &Field| matches!(f.data_type(), DataType::Timestamp(_, Some(tz)) if tz.as_ref() == "UTC");
    if !schema.fields().iter().any(|f| utc(f)) {
        return schema.clone();
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Timestamp(unit, _) if utc(f) => f
                .as_ref()
                .clone()
                .with_data_type(DataType::Timestamp(*unit, Some("+00:00".into()))),
            _ => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// A CSV or JSON Lines decoder.
enum BatchDecoder {
    Csv(Box<arrow_csv::reader::Decoder>),
    Json(arrow_json::reader::Decoder),
}

/// Every record of `text` (each ending in a line break; no more than the decoder's batch
/// size) decoded into one batch; `None` when nothing was.
fn decode_with(decoder: &mut BatchDecoder, text: &[u8]) -> Result<Option<RecordBatch>, ArrowError> {
    match decoder {
        BatchDecoder::Csv(d) => {
            feed(text, |b| d.decode(b))?;
            d.decode(&[])?;
            d.flush()
        }
        BatchDecoder::Json(d) => {
            feed(text, |b| d.decode(b))?;
            d.flush()
        }
    }
}

/// All of `text` handed to a decoder's `decode` (which takes what fits its batch and says
/// how much it took).
fn feed(
    text: &[u8],
    mut decode: impl FnMut(&[u8]) -> Result<usize, ArrowError>,
) -> Result<(), ArrowError> {
    let mut rest = text;
    while !rest.is_empty() {
        let used = decode(rest)?;
        if used == 0 {
            break;
        }
        rest = &rest[used..];
    }
    Ok(())
}

/// The batch, unless it does not hold exactly `rows` rows (a record holding a line break
/// the splitter did not see, an unbalanced quote...).
fn checked_rows(
    batch: Result<Option<RecordBatch>, ArrowError>,
    rows: usize,
) -> Result<RecordBatch, ArrowError> {
    let batch = batch?;
    let decoded = batch.as_ref().map_or(0, RecordBatch::num_rows);
    match batch {
        Some(b) if decoded == rows => Ok(b),
        _ => Err(ArrowError::ParseError(format!(
            "{rows} record(s) decoded into {decoded} row(s): a line break the reader did not split on (a lone carriage return?) or an unbalanced quote"
        ))),
    }
}

impl TextRead {
    /// Decode `pending`; rows that do not fit are rejected (or fail the run).
    async fn decode(
        &self,
        decoder: &mut BatchDecoder,
        flat: Option<&mut FlatLinesDecoder>,
        pending: &Pending,
        aligned: u64,
        line_base: &mut Option<u64>,
    ) -> Result<Option<RecordBatch>, ConnectorError> {
        if let Some(batch) = flat.and_then(|f| f.decode(&pending.text, &pending.ends)) {
            return Ok(Some(batch));
        }
        let unescaped = match decoder {
            BatchDecoder::Json(_) => pending.with_escaped_pairs_as_utf8(),
            BatchDecoder::Csv(_) => None,
        };
        // The records as the decoders read them; `pending` still has them as the object does
        // (for the rejects).
        let records = unescaped.as_ref().unwrap_or(pending);
        let first_error = match checked_rows(decode_with(decoder, &records.text), records.len())
            .and_then(|b| self.as_stream_schema(b))
        {
            Ok(b) => return Ok(Some(b)),
            Err(e) => e,
        };
        // A decoder that failed may hold part of the batch: the next batch gets a new one.
        *decoder = self.new_decoder(self.stream.batch_rows).map_err(|e| {
            ConnectorError::internal(format!("s3://{}/{}: {e}", self.bucket, self.part.key))
        })?;
        // Find the rows that do not fit, one by one (only on this error path).
        let mut good = Vec::new();
        let mut good_rows = 0;
        let mut bad = Vec::new();
        for i in 0..records.len() {
            let row = records.row(i);
            match self.decode_rows(row, 1) {
                Ok(_) => {
                    good.extend_from_slice(row);
                    good_rows += 1;
                }
                Err(e) => bad.push((i, e.to_string())),
            }
        }
        if bad.is_empty() {
            // The rows fit alone but not together: not a row's fault.
            return Err(ConnectorError::source_error(format!(
                "decoding s3://{}/{}: {first_error}",
                self.bucket, self.part.key
            )));
        }
        if line_base.is_none() {
            *line_base = Some(self.lines_before(aligned).await? + 1);
        }
        let base = line_base.unwrap_or(1);
        let object = format!("s3://{}/{}", self.bucket, self.part.key);
        match (self.stream.bad_rows, &self.rejects) {
            (BadRows::Reject, Some((bucket, prefix))) => {
                let mut body = Vec::new();
                for (i, reason) in &bad {
                    let text = pending.row(*i);
                    let text = String::from_utf8_lossy(&text[..text.len().min(REJECT_TEXT)]);
                    let line = serde_json::json!({
                        "object": object,
                        "etag": self.part.etag,
                        "line": base + pending.rel_lines[*i],
                        "byte_offset": pending.offsets[*i],
                        "reason": connector_sdk::one_line(reason),
                        "row": text.trim_end_matches(['\r', '\n']),
                    });
                    body.extend_from_slice(line.to_string().as_bytes());
                    body.push(b'\n');
                }
                // One file per batch, named by its first record: a retried partition
                // writes the same file again, never a second one.
                let key = format!(
                    "{}{}{}/{}/{:020}.jsonl",
                    prefix,
                    if prefix.is_empty() { "" } else { "/" },
                    self.stream.name,
                    self.partition_id,
                    pending.offsets[0]
                );
                self.store
                    .put(bucket, &key, Bytes::from(body), false)
                    .await
                    .map_err(|e| {
                        crate::s3_error(&format!("writing rejects to s3://{bucket}/{key}"), e)
                    })?;
                tracing::warn!(
                    stream = %self.stream.name, object = %object, rejected = bad.len(),
                    rejects = %format!("s3://{bucket}/{key}"),
                    "rows that do not fit the schema were rejected"
                );
            }
            _ => {
                let (i, reason) = &bad[0];
                return Err(ConnectorError::config(format!(
                    "{object} line {} (byte {}): the row does not fit the schema: {} (fix the schema or the file, or set bad_rows = \"reject\" with a rejects location)",
                    base + pending.rel_lines[*i],
                    pending.offsets[*i],
                    connector_sdk::one_line(reason)
                )));
            }
        }
        if good_rows == 0 {
            return Ok(None);
        }
        self.decode_rows(&good, good_rows)
            .map(Some)
            .map_err(|e| ConnectorError::source_error(format!("decoding {object}: {e}")))
    }

    /// The `rows` records of `text` (each ending in a line break) decoded by a decoder of
    /// their own (the rows of a batch that failed, one by one, and the rows that fit).
    fn decode_rows(&self, text: &[u8], rows: usize) -> Result<RecordBatch, ArrowError> {
        let mut decoder = self.new_decoder(rows.max(1))?;
        checked_rows(decode_with(&mut decoder, text), rows).and_then(|b| self.as_stream_schema(b))
    }

    /// A batch decoded with [`decoding_schema`] (CSV) given the stream's schema back (the
    /// timestamps' zone name; the values are the same instants).
    fn as_stream_schema(&self, batch: RecordBatch) -> Result<RecordBatch, ArrowError> {
        if batch.schema() == self.schema {
            return Ok(batch);
        }
        let columns = batch
            .columns()
            .iter()
            .zip(self.schema.fields())
            .map(|(column, field)| {
                if column.data_type() == field.data_type() {
                    Ok(Arc::clone(column))
                } else {
                    arrow::compute::cast(column, field.data_type())
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        RecordBatch::try_new(self.schema.clone(), columns)
    }

    /// A decoder of this read's format and schema, for batches of up to `batch_rows`.
    fn new_decoder(&self, batch_rows: usize) -> Result<BatchDecoder, ArrowError> {
        Ok(match &self.stream.format {
            Format::Csv {
                delimiter, quote, ..
            } => {
                let mut builder = arrow_csv::ReaderBuilder::new(decoding_schema(&self.schema))
                    .with_header(false)
                    .with_delimiter(delimiter.as_bytes()[0])
                    .with_quote(quote.as_bytes()[0])
                    .with_batch_size(batch_rows);
                if let Some(r) = &self.null_regex {
                    builder = builder.with_null_regex(r.clone());
                }
                BatchDecoder::Csv(Box::new(builder.build_decoder()))
            }
            _ => BatchDecoder::Json(
                arrow_json::ReaderBuilder::new(self.schema.clone())
                    .with_batch_size(batch_rows)
                    .with_decoder_factory(Arc::new(JsonDecoders))
                    .build_decoder()?,
            ),
        })
    }

    /// Line breaks in `[0, offset)` of the uncompressed object (for the line numbers of a
    /// range that did not start at the top; only read when a row there is rejected).
    async fn lines_before(&self, offset: u64) -> Result<u64, ConnectorError> {
        if offset == 0 {
            return Ok(0);
        }
        let Some(mut body) = open(&self.store, &self.bucket, &self.part, 0).await? else {
            return Ok(0);
        };
        let mut left = offset;
        let mut lines = 0u64;
        while left > 0 {
            let buf = body
                .fill_buf()
                .await
                .map_err(|e| io_error(&self.part, &self.bucket, e))?;
            if buf.is_empty() {
                break;
            }
            let take = buf.len().min(left as usize);
            lines += buf[..take].iter().filter(|b| **b == b'\n').count() as u64;
            body.as_mut().consume(take);
            left -= take as u64;
        }
        Ok(lines)
    }
}

/// A regex matching exactly the null markers (none: a regex that matches nothing); `None`
/// for the empty field alone, arrow-csv's own rule, which it checks without running a
/// regex on every field.
pub(crate) fn null_regex(values: &[String]) -> Option<regex::Regex> {
    if values.len() == 1 && values[0].is_empty() {
        return None;
    }
    Some(null_regex_of(values))
}

fn null_regex_of(values: &[String]) -> regex::Regex {
    let pattern = if values.is_empty() {
        r"[^\s\S]".to_string()
    } else {
        let alts: Vec<String> = values.iter().map(|v| regex::escape(v)).collect();
        format!("^(?:{})$", alts.join("|"))
    };
    regex::Regex::new(&pattern).unwrap_or_else(|_| regex::Regex::new(r"^$").expect("valid regex"))
}

/// The schema of a text stream from its first object's first rows.
pub(crate) async fn infer_schema(
    store: &S3Store,
    bucket: &str,
    s: &StreamConfig,
    object: &ListedObject,
) -> Result<SchemaRef, ConnectorError> {
    let part = ObjectPart {
        key: object.key.clone(),
        etag: object.etag.clone(),
        size: object.size,
        compression: Some(s.compression.of(&object.key)),
        range: None,
    };
    let mut sample = Vec::new();
    if object.size > 0
        && let Some(mut body) = open(store, bucket, &part, 0).await?
    {
        let mut rows = 0;
        while rows <= SAMPLE_ROWS && sample.len() < SAMPLE_BYTES {
            let n = read_record(&mut body, &mut sample, None)
                .await
                .map_err(|e| io_error(&part, bucket, e))?;
            if n == 0 {
                break;
            }
            rows += 1;
        }
    }
    let what = format!("s3://{bucket}/{}", object.key);
    let inferred = match &s.format {
        Format::Csv {
            header,
            delimiter,
            quote,
            ..
        } => arrow_csv::reader::Format::default()
            .with_header(*header)
            .with_delimiter(delimiter.as_bytes()[0])
            .with_quote(quote.as_bytes()[0])
            .infer_schema(Cursor::new(&sample), Some(SAMPLE_ROWS))
            .map(|(schema, _)| schema),
        _ => arrow_json::reader::infer_json_schema(
            std::io::BufReader::new(Cursor::new(&sample)),
            Some(SAMPLE_ROWS),
        )
        .map(|(schema, _)| schema),
    }
    .map_err(|e| {
        ConnectorError::config(format!(
            "stream `{}`: cannot infer a schema from {what}: {e}; declare `schema`",
            s.name
        ))
    })?;
    if inferred.fields().is_empty() {
        return Err(ConnectorError::config(format!(
            "stream `{}`: {what} has no rows to infer a schema from; declare `schema`",
            s.name
        )));
    }
    Ok(Arc::new(inferred))
}
