//! The one place that pages: marker/limit with `<resource>_links` (Nova,
//! Cinder, Neutron) and Glance's `next`. The next page is requested with our
//! own base URL and query plus the `marker` taken from the server's link, so
//! proxies that rewrite hosts cannot break paging. Also the query builder.

use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{Error, RequestInfo, Result};
use crate::session::{Call, Session};

/// Query parameters in order; `None` and `false` flags are left out.
#[derive(Debug, Default, Clone)]
pub struct Query(pub Vec<(String, String)>);

impl Query {
    pub fn new() -> Self {
        Query(Vec::new())
    }
    pub fn set(mut self, key: &str, value: impl ToString) -> Self {
        self.0.push((key.to_string(), value.to_string()));
        self
    }
    pub fn opt<T: ToString>(self, key: &str, value: Option<T>) -> Self {
        match value {
            Some(v) => self.set(key, v),
            None => self,
        }
    }
    /// `key=<on>` when `flag` is true.
    pub fn flag(self, key: &str, flag: bool, on: &str) -> Self {
        if flag { self.set(key, on) } else { self }
    }
    pub fn into_vec(self) -> Vec<(String, String)> {
        self.0
    }
}

/// Where a page says "there is more".
#[derive(Debug, Clone, Copy)]
pub enum Next {
    /// `{"servers_links": [{"rel": "next", "href": ...}]}`
    Links(&'static str),
    /// Glance `{"next": "/v2/images?marker=..."}`
    Field(&'static str),
    /// No paging (one request).
    None,
}

/// A paged list: the first page's call and where items and links are.
#[derive(Debug, Clone)]
pub struct Pager {
    pub call: Call,
    /// JSON pointer of the items array (`/servers`).
    pub items: &'static str,
    pub next: Next,
}

fn marker_of(href: &str) -> Option<String> {
    let base = url::Url::parse("http://x/").ok()?;
    let u = base.join(href).ok()?;
    u.query_pairs().find(|(k, _)| k == "marker").map(|(_, v)| v.into_owned())
}

fn next_marker(page: &Value, next: Next) -> Option<String> {
    match next {
        Next::Links(key) => page
            .get(key)?
            .as_array()?
            .iter()
            .find(|l| l.get("rel").and_then(Value::as_str) == Some("next"))
            .and_then(|l| l.get("href")?.as_str())
            .and_then(marker_of),
        Next::Field(key) => page.get(key).and_then(Value::as_str).and_then(marker_of),
        Next::None => None,
    }
}

impl Pager {
    pub fn new(call: Call, items: &'static str, next: Next) -> Pager {
        Pager { call, items, next }
    }

    /// Raw page bodies, in order.
    pub fn pages(self, session: &Session) -> BoxStream<'static, Result<Value>> {
        let session = session.clone();
        // state: Some(marker for the next request) / None when done
        stream::try_unfold((Some(None::<String>), Vec::<String>::new()), move |(state, mut seen)| {
            let session = session.clone();
            let pager = self.clone();
            async move {
                let Some(marker) = state else { return Ok(None) };
                let mut call = pager.call.clone();
                if let Some(m) = &marker {
                    call.query.retain(|(k, _)| k != "marker");
                    call.query.push(("marker".into(), m.clone()));
                }
                let resp = session.send(call).await?;
                let page: Value = resp.json()?;
                let empty = page.pointer(pager.items).and_then(Value::as_array).is_none_or(|a| a.is_empty());
                let next = if empty { None } else { next_marker(&page, pager.next) };
                if let Some(n) = &next {
                    if seen.contains(n) {
                        return Err(Error::Decode {
                            request: resp.request.clone(),
                            message: format!("pagination loop: marker {n} returned twice"),
                        });
                    }
                    seen.push(n.clone());
                }
                Ok(Some((page, (next.map(Some), seen))))
            }
        })
        .boxed()
    }

    /// Items of every page, decoded as `T`.
    pub fn items<T: DeserializeOwned + Send + 'static>(self, session: &Session) -> BoxStream<'static, Result<T>> {
        let key = self.items;
        let service = self.call.service;
        let route = self.call.route;
        self.pages(session)
            .map_ok(move |mut page| {
                let items = match page.pointer_mut(key).map(Value::take) {
                    Some(Value::Array(a)) => a,
                    _ => Vec::new(),
                };
                stream::iter(items.into_iter().map(move |v| {
                    serde_json::from_value::<T>(v).map_err(|e| Error::Decode {
                        request: RequestInfo {
                            service: service.as_str().into(),
                            method: "GET".into(),
                            url: route.into(),
                        },
                        message: format!("an item of {key}: {e}"),
                    })
                }))
            })
            .try_flatten()
            .boxed()
    }

    /// Every item of every page.
    pub async fn collect<T: DeserializeOwned + Send + 'static>(self, session: &Session) -> Result<Vec<T>> {
        self.items(session).try_collect().await
    }
}
