//! The pagination styles of REST APIs and their resume state.
//!
//! A [`Pagination`] (config) turns the stream's first-page URL and a [`PageState`] into
//! the URL of the page to fetch, and a fetched page into the next state. The state is the
//! connector's checkpoint: a stopped run resumes at the next page.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use url::Url;

use connector_sdk::ConnectorError;

use crate::client::HttpResponse;
use crate::records::value_at;

/// How the API splits a collection into pages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "style", rename_all = "snake_case", deny_unknown_fields)]
pub enum Pagination {
    /// One request returns every record.
    None,
    /// Each page names the next page's URL: the `Link` header's `rel="next"` (RFC 8288,
    /// GitHub-style), or the body's `next_path` when set (e.g. `links.next`). No link, or
    /// a null/empty one: the last page. The link must stay on the first URL's origin.
    NextLink {
        /// Dotted path of the next URL in the body (absolute or relative). Unset: the
        /// `Link` header.
        #[serde(default)]
        next_path: Option<String>,
    },
    /// Each page carries a token for the next (`token_path` in the body), sent back as the
    /// query parameter `token_param`. No token, or a null/empty one: the last page.
    Cursor {
        /// Dotted path of the next page's token in the body, e.g. `meta.next_cursor`.
        token_path: String,
        /// Query parameter the token is sent in, e.g. `cursor`.
        token_param: String,
    },
    /// `offset` and `limit` query parameters (the offset advances by the records each
    /// page holds); an empty page is the last.
    Offset {
        /// Query parameter of the offset (the first is 0).
        #[serde(default = "default_offset_param")]
        offset_param: String,
        /// Query parameter of the page size.
        #[serde(default = "default_limit_param")]
        limit_param: String,
        /// Records per page (1 or more).
        limit: u64,
    },
    /// A page number (and optionally a page size) parameter; an empty page is the last.
    PageNumber {
        /// Query parameter of the page number.
        #[serde(default = "default_page_param")]
        page_param: String,
        /// Query parameter of the page size (unset: the API's fixed page size, which
        /// `size` must then equal).
        #[serde(default)]
        size_param: Option<String>,
        /// Records per page (1 or more).
        size: u64,
        /// The first page's number.
        #[serde(default = "default_first_page")]
        first_page: u64,
    },
}

fn default_offset_param() -> String {
    "offset".into()
}
fn default_limit_param() -> String {
    "limit".into()
}
fn default_page_param() -> String {
    "page".into()
}
fn default_first_page() -> u64 {
    1
}

/// Where a paginated read stands: the next page to fetch. The checkpoint of a paginated
/// stream, stored with the committed data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PageState {
    /// The first page.
    First,
    /// The next page's URL (next-link).
    Url(String),
    /// The next page's token (cursor).
    Token(String),
    /// The next page's offset.
    Offset(u64),
    /// The next page's number.
    Page(u64),
    /// Every page has been read.
    Done,
}

impl Pagination {
    /// Check the values without I/O.
    pub fn validate(&self) -> Result<(), ConnectorError> {
        let empty = |what: &str, v: &str| {
            if v.is_empty() {
                Err(ConnectorError::config(format!(
                    "pagination.{what} is empty; name the query parameter or body path"
                )))
            } else {
                Ok(())
            }
        };
        match self {
            Pagination::None => Ok(()),
            Pagination::NextLink { next_path } => match next_path {
                Some(p) => empty("next_path", p),
                None => Ok(()),
            },
            Pagination::Cursor {
                token_path,
                token_param,
            } => {
                empty("token_path", token_path)?;
                empty("token_param", token_param)
            }
            Pagination::Offset {
                offset_param,
                limit_param,
                limit,
            } => {
                empty("offset_param", offset_param)?;
                empty("limit_param", limit_param)?;
                positive("limit", *limit)
            }
            Pagination::PageNumber {
                page_param,
                size_param,
                size,
                ..
            } => {
                empty("page_param", page_param)?;
                if let Some(p) = size_param {
                    empty("size_param", p)?;
                }
                positive("size", *size)
            }
        }
    }

    /// The URL of the page `state` stands for (`first` is the stream's first-page URL,
    /// with its fixed query), or `None` when every page has been read.
    pub fn url(&self, first: &Url, state: &PageState) -> Result<Option<Url>, ConnectorError> {
        let mut url = first.clone();
        match (self, state) {
            (_, PageState::Done) => return Ok(None),
            (
                Pagination::None | Pagination::NextLink { .. } | Pagination::Cursor { .. },
                PageState::First,
            ) => {}
            (Pagination::NextLink { .. }, PageState::Url(next)) => {
                url = same_origin(first, first, next)?;
            }
            (Pagination::Cursor { token_param, .. }, PageState::Token(token)) => {
                set_param(&mut url, token_param, token);
            }
            (
                Pagination::Offset {
                    offset_param,
                    limit_param,
                    limit,
                },
                PageState::First | PageState::Offset(_),
            ) => {
                let offset = match state {
                    PageState::Offset(o) => *o,
                    _ => 0,
                };
                set_param(&mut url, offset_param, &offset.to_string());
                set_param(&mut url, limit_param, &limit.to_string());
            }
            (
                Pagination::PageNumber {
                    page_param,
                    size_param,
                    size,
                    first_page,
                },
                PageState::First | PageState::Page(_),
            ) => {
                let page = match state {
                    PageState::Page(p) => *p,
                    _ => *first_page,
                };
                set_param(&mut url, page_param, &page.to_string());
                if let Some(p) = size_param {
                    set_param(&mut url, p, &size.to_string());
                }
            }
            (style, state) => {
                return Err(ConnectorError::config(format!(
                    "the checkpoint {state:?} does not belong to pagination style {}; the config's pagination changed since the run stopped (run with a fresh output, or restore the pagination)",
                    style.name()
                )));
            }
        }
        Ok(Some(url))
    }

    /// The state after `page` (fetched from the state's URL) with `records` records.
    pub fn next(
        &self,
        first: &Url,
        state: &PageState,
        page: &HttpResponse,
        body: &serde_json::Value,
        records: usize,
    ) -> Result<PageState, ConnectorError> {
        let records = records as u64;
        Ok(match self {
            Pagination::None => PageState::Done,
            Pagination::NextLink { next_path } => {
                let next = match next_path {
                    Some(path) => value_at(body, path)
                        .and_then(|v| v.as_str())
                        .map(str::to_string),
                    None => link_next(&page.headers),
                };
                match next.filter(|n| !n.trim().is_empty()) {
                    None => PageState::Done,
                    Some(n) => {
                        let url = same_origin(first, &page.url, &n)?;
                        if url == page.url {
                            return Err(ConnectorError::source_error(format!(
                                "the API's next-page link of {} points to the same page; stopping rather than looping",
                                page.url
                            )));
                        }
                        PageState::Url(url.to_string())
                    }
                }
            }
            Pagination::Cursor { token_path, .. } => {
                let token = value_at(body, token_path).and_then(|v| match v {
                    serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
                    serde_json::Value::Number(n) => Some(n.to_string()),
                    _ => None,
                });
                match token {
                    None => PageState::Done,
                    Some(t) if *state == PageState::Token(t.clone()) => {
                        return Err(ConnectorError::source_error(format!(
                            "the API returned the same cursor token twice ({} at `{token_path}`); stopping rather than looping",
                            page.url
                        )));
                    }
                    Some(t) => PageState::Token(t),
                }
            }
            // An empty page ends the read, not a short one: an API that caps the page
            // size below the configured one answers short pages all along.
            Pagination::Offset { .. } => match state {
                _ if records == 0 => PageState::Done,
                PageState::Offset(o) => PageState::Offset(o + records),
                _ => PageState::Offset(records),
            },
            Pagination::PageNumber { first_page, .. } => match state {
                _ if records == 0 => PageState::Done,
                PageState::Page(p) => PageState::Page(p + 1),
                _ => PageState::Page(first_page + 1),
            },
        })
    }

    fn name(&self) -> &'static str {
        match self {
            Pagination::None => "none",
            Pagination::NextLink { .. } => "next_link",
            Pagination::Cursor { .. } => "cursor",
            Pagination::Offset { .. } => "offset",
            Pagination::PageNumber { .. } => "page_number",
        }
    }
}

fn positive(what: &str, v: u64) -> Result<(), ConnectorError> {
    if v == 0 {
        Err(ConnectorError::config(format!(
            "pagination.{what} is 0; use the number of records per page (1 or more)"
        )))
    } else {
        Ok(())
    }
}

/// `url` with query parameter `name` set to `value` (replacing any value it had).
pub fn set_param(url: &mut Url, name: &str, value: &str) {
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != name)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut pairs = url.query_pairs_mut();
    pairs.clear();
    for (k, v) in &kept {
        pairs.append_pair(k, v);
    }
    pairs.append_pair(name, value);
}

/// `next` resolved against `base`, refused unless on `first`'s origin (scheme, host and
/// port): a link elsewhere would reach an endpoint the manifest does not declare.
fn same_origin(first: &Url, base: &Url, next: &str) -> Result<Url, ConnectorError> {
    let url = base.join(next).map_err(|e| {
        ConnectorError::source_error(format!(
            "the API's next-page link {next:?} (from {base}) is not a URL: {e}"
        ))
    })?;
    if url.origin() != first.origin() {
        return Err(ConnectorError::source_error(format!(
            "the API's next-page link goes to {}, not {}: the connector follows links only on its configured base URL's origin (a declared endpoint)",
            url.origin().ascii_serialization(),
            first.origin().ascii_serialization()
        )));
    }
    Ok(url)
}

/// The `rel="next"` target of the `Link` headers (RFC 8288).
///
/// Written here: the crates for this header pull a regex engine for a few lines of
/// splitting; this handles several headers, several links per header, quoted and
/// unquoted `rel` with several relation types, and commas inside `<…>`.
pub fn link_next(headers: &http::HeaderMap) -> Option<String> {
    for value in headers.get_all(http::header::LINK) {
        let Ok(value) = value.to_str() else {
            continue;
        };
        let mut rest = value;
        while let Some(start) = rest.find('<') {
            let Some(end) = rest[start..].find('>') else {
                break;
            };
            let target = &rest[start + 1..start + end];
            let after = &rest[start + end + 1..];
            let params_end = after.find('<').unwrap_or(after.len());
            let params = after[..params_end].trim_end().trim_end_matches(',');
            let is_next = params.split(';').any(|p| {
                let Some((k, v)) = p.split_once('=') else {
                    return false;
                };
                k.trim().eq_ignore_ascii_case("rel")
                    && v.trim()
                        .trim_matches('"')
                        .split_ascii_whitespace()
                        .any(|r| r.eq_ignore_ascii_case("next"))
            });
            if is_next {
                return Some(target.trim().to_string());
            }
            rest = &after[params_end..];
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn page(url: &str, link: Option<&str>) -> HttpResponse {
        let mut headers = http::HeaderMap::new();
        if let Some(l) = link {
            headers.insert(http::header::LINK, l.parse().unwrap());
        }
        HttpResponse {
            url: Url::parse(url).unwrap(),
            status: http::StatusCode::OK,
            headers,
            body: Default::default(),
        }
    }

    #[test]
    fn link_header_forms() {
        let h = |v: &str| {
            let mut m = http::HeaderMap::new();
            m.insert(http::header::LINK, v.parse().unwrap());
            link_next(&m)
        };
        assert_eq!(
            h(
                r#"<http://a/items?_page=1>; rel="first", <http://a/items?_page=3>; rel="next", <http://a/items?_page=9>; rel="last""#
            ),
            Some("http://a/items?_page=3".into())
        );
        assert_eq!(h("</p?x=1,2>; rel=next"), Some("/p?x=1,2".into()));
        assert_eq!(
            h(r#"<https://a/p2>; rel="prev next""#),
            Some("https://a/p2".into())
        );
        assert_eq!(h(r#"<https://a/p1>; rel="prev""#), None);
        assert_eq!(h(r#"<https://a/p1>; title="next"; rel="last""#), None);
        assert_eq!(h("garbage"), None);
    }

    #[test]
    fn every_style_walks_and_ends() {
        let first = Url::parse("http://h:1/items?_sort=id").unwrap();
        let off = Pagination::Offset {
            offset_param: "_start".into(),
            limit_param: "_limit".into(),
            limit: 10,
        };
        let u = off.url(&first, &PageState::First).unwrap().unwrap();
        assert_eq!(u.as_str(), "http://h:1/items?_sort=id&_start=0&_limit=10");
        let p = page(u.as_str(), None);
        let s = off
            .next(&first, &PageState::First, &p, &json!([]), 10)
            .unwrap();
        assert_eq!(s, PageState::Offset(10));
        let u = off.url(&first, &s).unwrap().unwrap();
        assert_eq!(u.as_str(), "http://h:1/items?_sort=id&_start=10&_limit=10");
        // A short page (an API capping the size) is not the end; an empty one is.
        assert_eq!(
            off.next(&first, &s, &p, &json!([]), 9).unwrap(),
            PageState::Offset(19)
        );
        assert_eq!(
            off.next(&first, &s, &p, &json!([]), 0).unwrap(),
            PageState::Done
        );
        assert_eq!(off.url(&first, &PageState::Done).unwrap(), None);

        let num = Pagination::PageNumber {
            page_param: "_page".into(),
            size_param: Some("_limit".into()),
            size: 5,
            first_page: 0,
        };
        let u = num.url(&first, &PageState::First).unwrap().unwrap();
        assert_eq!(u.as_str(), "http://h:1/items?_sort=id&_page=0&_limit=5");
        let s = num
            .next(&first, &PageState::First, &p, &json!([]), 5)
            .unwrap();
        assert_eq!(s, PageState::Page(1));
        assert_eq!(
            num.next(&first, &s, &p, &json!([]), 0).unwrap(),
            PageState::Done
        );

        let cur = Pagination::Cursor {
            token_path: "meta.next".into(),
            token_param: "cursor".into(),
        };
        let s = cur
            .next(
                &first,
                &PageState::First,
                &p,
                &json!({"meta": {"next": "abc=="}}),
                3,
            )
            .unwrap();
        assert_eq!(s, PageState::Token("abc==".into()));
        let u = cur.url(&first, &s).unwrap().unwrap();
        assert_eq!(u.as_str(), "http://h:1/items?_sort=id&cursor=abc%3D%3D");
        for end in [
            json!({"meta": {"next": null}}),
            json!({"meta": {"next": ""}}),
            json!({}),
        ] {
            assert_eq!(cur.next(&first, &s, &p, &end, 3).unwrap(), PageState::Done);
        }
        let again = cur.next(&first, &s, &p, &json!({"meta": {"next": "abc=="}}), 3);
        assert!(again.unwrap_err().to_string().contains("same cursor token"));

        let link = Pagination::NextLink { next_path: None };
        let p1 = page(
            "http://h:1/items?_sort=id",
            Some(r#"</items?_sort=id&_page=2>; rel="next""#),
        );
        let s = link
            .next(&first, &PageState::First, &p1, &json!([]), 1)
            .unwrap();
        assert_eq!(
            s,
            PageState::Url("http://h:1/items?_sort=id&_page=2".into())
        );
        let elsewhere = page(
            "http://h:1/items",
            Some(r#"<http://evil:1/items?_page=2>; rel="next""#),
        );
        let e = link
            .next(&first, &PageState::First, &elsewhere, &json!([]), 1)
            .unwrap_err();
        assert!(e.to_string().contains("http://evil:1"), "{e}");
        let body_link = Pagination::NextLink {
            next_path: Some("links.next".into()),
        };
        let s = body_link
            .next(
                &first,
                &PageState::First,
                &p,
                &json!({"links": {"next": "?_page=7"}}),
                1,
            )
            .unwrap();
        assert_eq!(s, PageState::Url("http://h:1/items?_page=7".into()));
        // A checkpoint of another style is refused, not misread.
        assert!(off.url(&first, &PageState::Token("x".into())).is_err());
    }

    #[test]
    fn config_is_checked() {
        let p: Pagination = serde_json::from_value(json!({"style": "offset", "limit": 0})).unwrap();
        assert!(p.validate().unwrap_err().to_string().contains("limit"));
        assert!(
            serde_json::from_value::<Pagination>(
                json!({"style": "offset", "limit": 1, "extra": 1})
            )
            .is_err()
        );
        assert!(serde_json::from_value::<Pagination>(json!({"style": "pages"})).is_err());
    }
}
