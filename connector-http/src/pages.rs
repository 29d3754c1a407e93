//! A paginated read as a connector's read stream: fetch a page, decode its records, yield
//! them as a batch followed by the next page's state as the checkpoint, until the last
//! page. A stopped run resumes at the page after its last checkpoint.

use connector_sdk::{ConnectorError, ReadItem, ReadStream};
use serde_json::Value;
use url::Url;

use crate::client::HttpClient;
use crate::pagination::{PageState, Pagination};
use crate::records::{JsonToArrow, records_at};

/// What a paginated read fetches and how it decodes.
#[derive(Debug, Clone)]
pub struct PagedRead<'a> {
    /// The client (credentials, rate limit, retries).
    pub client: &'a HttpClient,
    /// The API's pagination style.
    pub pagination: &'a Pagination,
    /// The first page's URL, with every fixed query parameter.
    pub first: Url,
    /// Dotted path of the records array in a page (`""`: the page is the array).
    pub records_path: &'a str,
    /// Records to Arrow.
    pub decoder: JsonToArrow,
}

/// The read stream of `read`, from `resume` (a checkpoint of an earlier run) or the first
/// page. `keep` filters records before decoding (e.g. a cursor window); an error from it
/// ends the read.
///
/// The first item is a checkpoint at the start (so a stop while the first page is awaited
/// loses nothing); after it, each page yields its batch (when it kept any record) and then
/// the state of the next page.
pub fn read_pages<'a, F>(
    read: PagedRead<'a>,
    resume: Option<PageState>,
    keep: F,
) -> ReadStream<'a, PageState>
where
    F: Fn(&Value) -> Result<bool, ConnectorError> + Send + Sync + 'a,
{
    Box::pin(async_stream::try_stream! {
        let mut state = resume.unwrap_or(PageState::First);
        yield ReadItem::Checkpoint(state.clone());
        while let Some(url) = read.pagination.url(&read.first, &state)? {
            let page = read.client.get(&url).await?;
            let body = page.json()?;
            let records = records_at(&body, read.records_path, &url)?;
            let mut kept = Vec::with_capacity(records.len());
            for r in records {
                if keep(r)? {
                    // Projected (and so copied) once, by the decoder.
                    kept.push(r);
                }
            }
            let next = read.pagination.next(&read.first, &state, &page, &body, records.len())?;
            if !kept.is_empty() {
                yield ReadItem::Batch(read.decoder.decode(kept, &format!("the page GET {url}"))?);
            }
            state = next;
            yield ReadItem::Checkpoint(state.clone());
        }
    })
}
