//! The one place that pages: marker/limit with `<resource>_links` (Nova,
//! Cinder, Neutron) and Glance's `next`. The next page is requested with our
//! own base URL and query plus the `marker` taken from the server's link, so
//! proxies that rewrite hosts cannot break paging. Also the query builder, and [`Paged`]: the
//! trait every listing request implements (its first page's [`Pager`]), giving it `stream`
//! and `list`.

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

/// A listing request (`ListServers`, `ListVolumes`, …): it says only what differs, its first
/// page's call and where the items and the next-page link are ([`Paged::pager`]); paging,
/// decoding and collecting are the same for all.
pub trait Paged {
    /// What one item of the listing decodes to.
    type Item: DeserializeOwned + Send + 'static;

    /// The first page's call, the items' JSON pointer and where the next page is announced.
    fn pager(&self) -> Pager;

    /// The items of every page, decoded as each page arrives.
    fn stream(&self, s: &Session) -> BoxStream<'static, Result<Self::Item>> {
        self.pager().items(s)
    }

    /// Every item of every page.
    fn list(&self, s: &Session) -> impl Future<Output = Result<Vec<Self::Item>>> + Send {
        self.pager().collect(s)
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
        Next::Links(key) | Next::Field(key) => marker_in(page.get(key)?, next),
        Next::None => None,
    }
}

/// The next page's marker in the value under the page's `next` key.
fn marker_in(v: &Value, next: Next) -> Option<String> {
    match next {
        Next::Links(_) => v
            .as_array()?
            .iter()
            .find(|l| l.get("rel").and_then(Value::as_str) == Some("next"))
            .and_then(|l| l.get("href")?.as_str())
            .and_then(marker_of),
        Next::Field(_) => v.as_str().and_then(marker_of),
        Next::None => None,
    }
}

/// A page decoded straight into its items (no `Value` tree per item) and the value under
/// its `next` key (the only other part paging reads); every other key is skipped.
struct TypedPage<T> {
    items: Vec<T>,
    next: Option<Value>,
}

/// Decodes a [`TypedPage`]: `items` is the top-level key of the items array.
struct PageSeed<T> {
    items: &'static str,
    next: Option<&'static str>,
    item: std::marker::PhantomData<fn() -> T>,
}

impl<'de, T: serde::Deserialize<'de>> serde::de::DeserializeSeed<'de> for PageSeed<T> {
    type Value = TypedPage<T>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> std::result::Result<TypedPage<T>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for PageSeed<T> {
    type Value = TypedPage<T>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "an object with {:?}", self.items)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> std::result::Result<TypedPage<T>, A::Error> {
        let mut page = TypedPage { items: Vec::new(), next: None };
        while let Some(key) = map.next_key::<String>()? {
            if key == self.items {
                page.items = map.next_value::<Option<Vec<T>>>()?.unwrap_or_default();
            } else if self.next == Some(key.as_str()) {
                page.next = Some(map.next_value()?);
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(page)
    }
}

impl Pager {
    pub fn new(call: Call, items: &'static str, next: Next) -> Pager {
        Pager { call, items, next }
    }

    /// Raw page bodies, in order.
    pub fn pages(self, session: &Session) -> BoxStream<'static, Result<Value>> {
        self.decoded(session, |pager, resp| {
            let page: Value = resp.json()?;
            let empty = page.pointer(pager.items).and_then(Value::as_array).is_none_or(|a| a.is_empty());
            let next = if empty { None } else { next_marker(&page, pager.next) };
            Ok((page, next))
        })
    }

    /// Each page as `decode` makes it of the answer, with the marker of the next page.
    fn decoded<P: Send + 'static>(
        self,
        session: &Session,
        decode: fn(&Pager, &crate::session::Response) -> Result<(P, Option<String>)>,
    ) -> BoxStream<'static, Result<P>> {
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
                let (page, next) = decode(&pager, &resp)?;
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

    /// Items of every page, decoded as `T` as each page arrives. A top-level items key
    /// (`/servers`) is decoded straight from the page's bytes; a nested one through `Value`.
    pub fn items<T: DeserializeOwned + Send + 'static>(self, session: &Session) -> BoxStream<'static, Result<T>> {
        let key = self.items;
        let service = self.call.service;
        let route = self.call.route;
        let item_error = move |e: serde_json::Error| Error::Decode {
            request: RequestInfo { service: service.as_str().into(), method: "GET".into(), url: route.into() },
            message: format!("an item of {key}: {e}"),
        };
        if key.strip_prefix('/').is_some_and(|k| !k.is_empty() && !k.contains('/')) {
            return self
                .decoded(session, |pager, resp| {
                    let next_key = match pager.next {
                        Next::Links(k) | Next::Field(k) => Some(k),
                        Next::None => None,
                    };
                    let seed =
                        PageSeed::<T> { items: &pager.items[1..], next: next_key, item: std::marker::PhantomData };
                    let mut de = serde_json::Deserializer::from_slice(&resp.body);
                    let page = serde::de::DeserializeSeed::deserialize(seed, &mut de)
                        .and_then(|p| de.end().map(|()| p))
                        .map_err(|e| Error::Decode {
                            request: resp.request.clone(),
                            message: format!("an item of {}: {e}", pager.items),
                        })?;
                    let next = match (&page.next, page.items.is_empty()) {
                        (Some(v), false) => marker_in(v, pager.next),
                        _ => None,
                    };
                    Ok((page.items, next))
                })
                .map_ok(|items| stream::iter(items.into_iter().map(Ok)))
                .try_flatten()
                .boxed();
        }
        self.pages(session)
            .map_ok(move |mut page| {
                let items = match page.pointer_mut(key).map(Value::take) {
                    Some(Value::Array(a)) => a,
                    _ => Vec::new(),
                };
                stream::iter(items.into_iter().map(move |v| serde_json::from_value::<T>(v).map_err(item_error)))
            })
            .try_flatten()
            .boxed()
    }

    /// Every item of every page.
    pub async fn collect<T: DeserializeOwned + Send + 'static>(self, session: &Session) -> Result<Vec<T>> {
        self.items(session).try_collect().await
    }
}
