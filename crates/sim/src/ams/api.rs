//! AMS REST API v1 data endpoints: topics (list/get/create/delete/publish/
//! acl), subscriptions (list/get/create/delete/pull/acknowledge/offsets/
//! modifyOffset/modifyAckDeadline/acl), `/v1/status`, `/v1/version`, with
//! argo-messaging's checks, messages and error shapes (handlers/*.go).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use serde_json::{Value, json};

use super::{AmsPublished, AmsState, AmsUser, Subscription, Topic, decode_b64, format_publish_time};
use crate::error::{ams_error_response, go_indent, json_utf8};

/// An AMS error answer.
#[derive(Debug)]
pub(crate) struct AmsError {
    status: StatusCode,
    message: String,
    kind: &'static str,
}

impl AmsError {
    fn new(status: StatusCode, message: impl Into<String>, kind: &'static str) -> Self {
        AmsError { status, message: message.into(), kind }
    }
    fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized", "UNAUTHORIZED")
    }
    fn forbidden() -> Self {
        Self::new(StatusCode::FORBIDDEN, "Access to this resource is forbidden", "FORBIDDEN")
    }
    fn not_found(resource: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("{resource} doesn't exist"), "NOT_FOUND")
    }
    fn invalid_args(what: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, format!("Invalid {what} Arguments"), "INVALID_ARGUMENT")
    }
    fn invalid_data(msg: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, msg, "INVALID_ARGUMENT")
    }
    fn conflict(resource: &str) -> Self {
        Self::new(StatusCode::CONFLICT, format!("{resource} already exists"), "ALREADY_EXISTS")
    }
    fn internal(msg: &str) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, msg, "INTERNAL_SERVER_ERROR")
    }
}

impl IntoResponse for AmsError {
    fn into_response(self) -> Response {
        ams_error_response(self.status, &self.message, self.kind)
    }
}

type AmsResult = Result<Response, AmsError>;

fn ok<T: Serialize>(body: &T) -> AmsResult {
    Ok(json_utf8(StatusCode::OK, go_indent(body, "   ")))
}

fn ok_empty() -> AmsResult {
    Ok(json_utf8(StatusCode::OK, Vec::new()))
}

/// gorilla/mux's answer for an unknown route.
async fn no_route() -> Response {
    (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "404 page not found\n")
        .into_response()
}

pub(crate) fn router(state: Arc<AmsState>) -> Router {
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/version", get(version))
        .route("/v1/projects/{project}/topics", get(topic_list))
        .route(
            "/v1/projects/{project}/topics/{name}",
            get(topic_get).put(topic_put).delete(topic_delete).post(topic_post),
        )
        .route("/v1/projects/{project}/subscriptions", get(sub_list))
        .route(
            "/v1/projects/{project}/subscriptions/{name}",
            get(sub_get).put(sub_put).delete(sub_delete).post(sub_post),
        )
        .fallback(no_route)
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

const ADMIN: &str = "project_admin";
const PUBLISHER: &str = "publisher";
const CONSUMER: &str = "consumer";

/// Who is calling, after the token and role checks.
struct Caller {
    user: AmsUser,
    admin: bool,
}

/// `x-api-key` header; when it is empty, the `key` query parameter.
fn token(headers: &HeaderMap, query: &Option<String>) -> Option<String> {
    let header = headers.get("x-api-key").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    if !header.is_empty() {
        return Some(header);
    }
    let q = query.as_deref()?;
    url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "key").map(|(_, v)| v.into_owned())
}

fn authorize(
    st: &AmsState,
    headers: &HeaderMap,
    query: &Option<String>,
    project: &str,
    allowed: &[&str],
) -> Result<Caller, AmsError> {
    let tok = token(headers, query).filter(|t| !t.is_empty()).ok_or_else(AmsError::unauthorized)?;
    let user = st.users.iter().find(|u| u.token == tok).cloned().ok_or_else(AmsError::unauthorized)?;
    if !st.store.lock().unwrap().projects.contains_key(project) {
        return Err(AmsError::not_found("Project"));
    }
    let has = |r: &str| user.roles.iter().any(|x| x == r);
    let service_admin = has("service_admin");
    if !service_admin && !allowed.iter().any(|r| has(r)) {
        return Err(AmsError::forbidden());
    }
    Ok(Caller { admin: service_admin || has(ADMIN), user })
}

/// Splits `name:op`.
fn split_op(name: &str) -> (&str, Option<&str>) {
    match name.split_once(':') {
        Some((n, op)) => (n, Some(op)),
        None => (name, None),
    }
}

fn topic_json(project: &str, topic: &str) -> Value {
    json!({"name": format!("/projects/{project}/topics/{topic}")})
}

#[derive(Serialize)]
struct SubJson {
    name: String,
    topic: String,
    #[serde(rename = "pushConfig")]
    push_config: Value,
    #[serde(rename = "ackDeadlineSeconds")]
    ack_deadline_seconds: u32,
}

fn sub_json(project: &str, name: &str, sub: &Subscription) -> SubJson {
    SubJson {
        name: format!("/projects/{project}/subscriptions/{name}"),
        topic: format!("/projects/{project}/topics/{}", sub.topic),
        // A pull subscription's zero PushConfig, as Go serialises it.
        push_config: json!({"pushEndpoint": "", "maxMessages": 0, "authorization_header": {},
            "retryPolicy": {}, "verification_hash": "", "verified": false}),
        ack_deadline_seconds: sub.ack_deadline,
    }
}

async fn status() -> AmsResult {
    ok(&json!({"status": "ok", "push_functionality": "disabled"}))
}

async fn version() -> AmsResult {
    ok(&json!({"release": "fedsite-sim", "commit": "", "build_time": "", "golang": "",
        "compiler": "", "os": std::env::consts::OS, "architecture": std::env::consts::ARCH}))
}

type Args = (State<Arc<AmsState>>, Path<(String, String)>, HeaderMap, RawQuery);

async fn topic_list(
    State(st): State<Arc<AmsState>>,
    Path(project): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> AmsResult {
    let c = authorize(&st, &headers, &q, &project, &[ADMIN, PUBLISHER])?;
    let store = st.store.lock().unwrap();
    let topics: Vec<Value> = store.projects[&project]
        .topics
        .iter()
        .filter(|(_, t)| c.admin || t.acl.contains(&c.user.name))
        .map(|(name, _)| topic_json(&project, name))
        .collect();
    ok(&json!({"topics": topics, "nextPageToken": "", "totalSize": topics.len()}))
}

async fn topic_get((State(st), Path((project, name)), headers, RawQuery(q)): Args) -> AmsResult {
    let (name, op) = split_op(&name);
    match op {
        None => {
            authorize(&st, &headers, &q, &project, &[ADMIN, PUBLISHER])?;
            let store = st.store.lock().unwrap();
            store.projects[&project].topics.get(name).ok_or_else(|| AmsError::not_found("Topic"))?;
            ok(&topic_json(&project, name))
        }
        Some("acl") => {
            authorize(&st, &headers, &q, &project, &[ADMIN])?;
            let store = st.store.lock().unwrap();
            let t = store.projects[&project].topics.get(name).ok_or_else(|| AmsError::not_found("Topic"))?;
            ok(&json!({"authorized_users": t.acl}))
        }
        Some(_) => Ok(no_route().await),
    }
}

async fn topic_put((State(st), Path((project, name)), headers, RawQuery(q)): Args) -> AmsResult {
    if name.contains(':') {
        return Ok(no_route().await);
    }
    authorize(&st, &headers, &q, &project, &[ADMIN])?;
    let mut store = st.store.lock().unwrap();
    let p = store.projects.get_mut(&project).ok_or_else(|| AmsError::not_found("Project"))?;
    if p.topics.contains_key(&name) {
        return Err(AmsError::conflict("Topic"));
    }
    p.topics.insert(name.clone(), Topic { messages: Vec::new(), acl: Vec::new() });
    ok(&topic_json(&project, &name))
}

async fn topic_delete((State(st), Path((project, name)), headers, RawQuery(q)): Args) -> AmsResult {
    if name.contains(':') {
        return Ok(no_route().await);
    }
    authorize(&st, &headers, &q, &project, &[ADMIN])?;
    let mut store = st.store.lock().unwrap();
    let p = store.projects.get_mut(&project).ok_or_else(|| AmsError::not_found("Project"))?;
    p.topics.remove(&name).ok_or_else(|| AmsError::not_found("Topic"))?;
    ok_empty()
}

async fn topic_post((State(st), Path((project, name)), headers, RawQuery(q)): Args, body: Bytes) -> AmsResult {
    let (name, op) = split_op(&name);
    match op {
        Some("publish") => publish(&st, &headers, &q, &project, name, &body),
        Some("modifyAcl") => {
            authorize(&st, &headers, &q, &project, &[ADMIN])?;
            let users = parse_acl(&st, &body, "Topic ACL")?;
            let mut store = st.store.lock().unwrap();
            let t = store
                .projects
                .get_mut(&project)
                .and_then(|p| p.topics.get_mut(name))
                .ok_or_else(|| AmsError::not_found("Topic"))?;
            t.acl = users;
            ok_empty()
        }
        _ => Ok(no_route().await),
    }
}

/// `{"authorized_users": [...]}`, every user known.
fn parse_acl(st: &AmsState, body: &[u8], what: &str) -> Result<Vec<String>, AmsError> {
    let v: Value = serde_json::from_slice(body).map_err(|_| AmsError::invalid_args(what))?;
    let users: Vec<String> = match v.get("authorized_users") {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => serde_json::from_value(v.clone()).map_err(|_| AmsError::invalid_args(what))?,
    };
    let unknown: Vec<&str> =
        users.iter().filter(|u| !st.users.iter().any(|x| &x.name == *u)).map(|s| s.as_str()).collect();
    if !unknown.is_empty() {
        return Err(AmsError::new(
            StatusCode::NOT_FOUND,
            format!("User(s): {} do not exist", unknown.join(", ")),
            "NOT_FOUND",
        ));
    }
    Ok(users)
}

/// A Go string field: absent/null → "", string → itself, else a type error.
fn go_string(v: Option<&Value>) -> Result<String, ()> {
    match v {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(()),
    }
}

/// A message to publish: attributes and base64 data.
type NewMessage = (BTreeMap<String, String>, String);

/// Decodes the publish body as Go's `json.Unmarshal` into a MsgList would.
fn parse_messages(body: &[u8]) -> Result<Vec<NewMessage>, ()> {
    let v: Value = serde_json::from_slice(body).map_err(|_| ())?;
    let list = match &v {
        Value::Null => return Ok(Vec::new()),
        Value::Object(o) => match o.get("messages") {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Array(a)) => a,
            Some(_) => return Err(()),
        },
        _ => return Err(()),
    };
    list.iter()
        .map(|m| match m {
            Value::Null => Ok((BTreeMap::new(), String::new())),
            Value::Object(o) => {
                let attrs = match o.get("attributes") {
                    None | Some(Value::Null) => BTreeMap::new(),
                    Some(Value::Object(a)) => {
                        a.iter().map(|(k, v)| Ok((k.clone(), go_string(Some(v))?))).collect::<Result<_, ()>>()?
                    }
                    Some(_) => return Err(()),
                };
                Ok((attrs, go_string(o.get("data"))?))
            }
            _ => Err(()),
        })
        .collect()
}

fn publish(
    st: &AmsState,
    headers: &HeaderMap,
    q: &Option<String>,
    project: &str,
    topic: &str,
    body: &[u8],
) -> AmsResult {
    let c = authorize(st, headers, q, project, &[ADMIN, PUBLISHER])?;
    let mut store = st.store.lock().unwrap();
    let store = &mut *store;
    let t = store
        .projects
        .get_mut(project)
        .and_then(|p| p.topics.get_mut(topic))
        .ok_or_else(|| AmsError::not_found("Topic"))?;
    if !c.admin && !t.acl.contains(&c.user.name) {
        return Err(AmsError::forbidden());
    }
    let msgs = parse_messages(body).map_err(|_| AmsError::invalid_args("Message"))?;
    let now = st.app.clock.token_now();
    let mut ids = Vec::new();
    let mut result = Ok(());
    // One by one, as AMS does: a failure leaves the earlier ones published.
    for (attributes, data) in msgs {
        if data.len() > st.max_message_bytes {
            result = Err(AmsError::new(StatusCode::PAYLOAD_TOO_LARGE, "Message size is too large", "INVALID_ARGUMENT"));
            break;
        }
        let offset = t.messages.len() as u64;
        t.messages.push(AmsPublished {
            project: project.to_string(),
            topic: topic.to_string(),
            offset,
            attributes,
            data: decode_b64(&data),
            data_b64: data,
            publish_time: now,
            publisher: c.user.name.clone(),
        });
        ids.push(offset.to_string());
    }
    store.counts.messages_published += ids.len() as u64;
    if !ids.is_empty() {
        st.published.notify_waiters();
    }
    match result {
        Err(e) => {
            store.counts.too_large += 1;
            Err(e)
        }
        Ok(()) => {
            store.counts.publish_requests += 1;
            ok(&json!({"messageIds": ids}))
        }
    }
}

async fn sub_list(
    State(st): State<Arc<AmsState>>,
    Path(project): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> AmsResult {
    let c = authorize(&st, &headers, &q, &project, &[ADMIN, CONSUMER])?;
    let store = st.store.lock().unwrap();
    let subs: Vec<SubJson> = store.projects[&project]
        .subs
        .iter()
        .filter(|(_, s)| c.admin || s.acl.contains(&c.user.name))
        .map(|(name, s)| sub_json(&project, name, s))
        .collect();
    let total = subs.len();
    ok(&json!({"subscriptions": subs, "nextPageToken": "", "totalSize": total}))
}

async fn sub_get((State(st), Path((project, name)), headers, RawQuery(q)): Args) -> AmsResult {
    let (name, op) = split_op(&name);
    let allowed: &[&str] = match op {
        None | Some("offsets") => &[ADMIN, CONSUMER],
        Some("acl") => &[ADMIN],
        Some(_) => return Ok(no_route().await),
    };
    authorize(&st, &headers, &q, &project, allowed)?;
    let store = st.store.lock().unwrap();
    let p = &store.projects[&project];
    let s = p.subs.get(name).ok_or_else(|| AmsError::not_found("Subscription"))?;
    match op {
        None => ok(&sub_json(&project, name, s)),
        Some("acl") => ok(&json!({"authorized_users": s.acl})),
        _ => {
            let max = p.topics.get(&s.topic).map(|t| t.messages.len() as u64).unwrap_or(0);
            #[derive(Serialize)]
            struct Offsets {
                max: u64,
                min: u64,
                current: u64,
            }
            ok(&Offsets { max, min: 0, current: s.offset })
        }
    }
}

async fn sub_put((State(st), Path((project, name)), headers, RawQuery(q)): Args, body: Bytes) -> AmsResult {
    if name.contains(':') {
        return Ok(no_route().await);
    }
    authorize(&st, &headers, &q, &project, &[ADMIN])?;
    let v: Value = serde_json::from_slice(&body).map_err(|_| AmsError::invalid_args("Subscription"))?;
    let full_topic = go_string(v.get("topic")).map_err(|_| AmsError::invalid_args("Subscription"))?;
    let ack = match v.get("ackDeadlineSeconds") {
        None | Some(Value::Null) => 0,
        Some(n) => {
            n.as_u64().filter(|n| *n <= u32::MAX as u64).ok_or_else(|| AmsError::invalid_args("Subscription"))? as u32
        }
    };
    let parts: Vec<&str> = full_topic.split('/').collect();
    if parts.len() != 4 || (parts[0] != "projects" && parts[2] != "topics") {
        return Err(AmsError::invalid_data("Invalid Topic name"));
    }
    let topic = parts[3].to_string();
    let mut store = st.store.lock().unwrap();
    let p = store.projects.get_mut(&project).ok_or_else(|| AmsError::not_found("Project"))?;
    let offset = p.topics.get(&topic).ok_or_else(|| AmsError::not_found("Topic"))?.messages.len() as u64;
    if p.subs.contains_key(&name) {
        return Err(AmsError::conflict("Subscription"));
    }
    let sub = Subscription {
        topic,
        ack_deadline: if ack == 0 { 10 } else { ack },
        offset,
        next_offset: 0,
        pending_since: 0,
        acl: Vec::new(),
    };
    let out = sub_json(&project, &name, &sub);
    p.subs.insert(name, sub);
    ok(&out)
}

async fn sub_delete((State(st), Path((project, name)), headers, RawQuery(q)): Args) -> AmsResult {
    if name.contains(':') {
        return Ok(no_route().await);
    }
    authorize(&st, &headers, &q, &project, &[ADMIN])?;
    let mut store = st.store.lock().unwrap();
    let p = store.projects.get_mut(&project).ok_or_else(|| AmsError::not_found("Project"))?;
    p.subs.remove(&name).ok_or_else(|| AmsError::not_found("Subscription"))?;
    ok_empty()
}

async fn sub_post((State(st), Path((project, name)), headers, RawQuery(q)): Args, body: Bytes) -> AmsResult {
    let (name, op) = split_op(&name);
    match op {
        Some("pull") => pull(&st, &headers, &q, &project, name, &body).await,
        Some("acknowledge") => acknowledge(&st, &headers, &q, &project, name, &body),
        Some("modifyOffset") => {
            authorize(&st, &headers, &q, &project, &[ADMIN, CONSUMER])?;
            let v: Value = serde_json::from_slice(&body).map_err(|_| AmsError::invalid_args("Offset"))?;
            let off = match v.get("offset") {
                None | Some(Value::Null) => 0,
                Some(n) => n.as_i64().ok_or_else(|| AmsError::invalid_args("Offset"))?,
            };
            let mut store = st.store.lock().unwrap();
            let p = store.projects.get_mut(&project).ok_or_else(|| AmsError::not_found("Project"))?;
            let max = {
                let s = p.subs.get(name).ok_or_else(|| AmsError::not_found("Subscription"))?;
                p.topics.get(&s.topic).map(|t| t.messages.len() as i64).unwrap_or(0)
            };
            if off < 0 || off > max {
                return Err(AmsError::invalid_data("Offset out of bounds"));
            }
            let s = p.subs.get_mut(name).ok_or_else(|| AmsError::not_found("Subscription"))?;
            s.offset = off as u64;
            s.next_offset = 0;
            ok_empty()
        }
        Some("modifyAckDeadline") => {
            authorize(&st, &headers, &q, &project, &[ADMIN])?;
            let what = "ackDeadlineSeconds(needs value between 0 and 600)";
            let v: Value = serde_json::from_slice(&body).map_err(|_| AmsError::invalid_args(what))?;
            let ack = match v.get("ackDeadlineSeconds") {
                None | Some(Value::Null) => 0,
                Some(n) => n.as_i64().ok_or_else(|| AmsError::invalid_args(what))?,
            };
            if !(0..=600).contains(&ack) {
                return Err(AmsError::invalid_args(what));
            }
            let mut store = st.store.lock().unwrap();
            let s = store
                .projects
                .get_mut(&project)
                .and_then(|p| p.subs.get_mut(name))
                .ok_or_else(|| AmsError::not_found("Subscription"))?;
            s.ack_deadline = ack as u32;
            ok_empty()
        }
        Some("modifyAcl") => {
            authorize(&st, &headers, &q, &project, &[ADMIN])?;
            let users = parse_acl(&st, &body, "Subscription ACL")?;
            let mut store = st.store.lock().unwrap();
            let s = store
                .projects
                .get_mut(&project)
                .and_then(|p| p.subs.get_mut(name))
                .ok_or_else(|| AmsError::not_found("Subscription"))?;
            s.acl = users;
            ok_empty()
        }
        _ => Ok(no_route().await),
    }
}

#[derive(Serialize)]
struct MessageJson<'a> {
    #[serde(rename = "messageId")]
    message_id: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    attributes: &'a BTreeMap<String, String>,
    data: &'a str,
    #[serde(rename = "publishTime")]
    publish_time: String,
}

#[derive(Serialize)]
struct Received<'a> {
    #[serde(rename = "ackId")]
    ack_id: String,
    message: MessageJson<'a>,
}

async fn pull(
    st: &AmsState,
    headers: &HeaderMap,
    q: &Option<String>,
    project: &str,
    sub: &str,
    body: &[u8],
) -> AmsResult {
    let c = authorize(st, headers, q, project, &[ADMIN, CONSUMER])?;
    let check = || -> Result<(), AmsError> {
        let store = st.store.lock().unwrap();
        let p = &store.projects[project];
        let s = p.subs.get(sub).ok_or_else(|| AmsError::not_found("Subscription"))?;
        if !c.admin && !s.acl.contains(&c.user.name) {
            return Err(AmsError::forbidden());
        }
        if !p.topics.contains_key(&s.topic) {
            return Err(AmsError::new(StatusCode::CONFLICT, "Subscription's topic doesn't exist", "CONFLICT"));
        }
        Ok(())
    };
    check()?;
    let bad = || AmsError::invalid_args("Pull Parameters");
    let v: Value = serde_json::from_slice(body).map_err(|_| bad())?;
    let (max, ret_imm) = match &v {
        Value::Null => (String::new(), String::new()),
        Value::Object(o) => (
            go_string(o.get("maxMessages")).map_err(|_| bad())?,
            go_string(o.get("returnImmediately")).map_err(|_| bad())?,
        ),
        _ => return Err(bad()),
    };
    let max = max.parse::<i64>().ok().filter(|n| *n > 0).unwrap_or(1) as usize;
    let immediately = ret_imm != "false";
    let deadline = tokio::time::Instant::now() + st.pull_wait;
    let ack_prefix = format!("projects/{project}/subscriptions/{sub}:");
    loop {
        let notified = st.published.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            check()?;
            let mut store = st.store.lock().unwrap();
            let store = &mut *store;
            let p = store.projects.get_mut(project).ok_or_else(|| AmsError::not_found("Project"))?;
            let s = p.subs.get_mut(sub).ok_or_else(|| AmsError::not_found("Subscription"))?;
            let msgs: &[AmsPublished] = p.topics.get(&s.topic).map(|t| t.messages.as_slice()).unwrap_or(&[]);
            let start = (s.offset as usize).min(msgs.len());
            let batch = &msgs[start..(start + max).min(msgs.len())];
            if !batch.is_empty() || immediately || tokio::time::Instant::now() >= deadline {
                let received: Vec<Received> = batch
                    .iter()
                    .map(|m| Received {
                        ack_id: format!("{ack_prefix}{}", m.offset),
                        message: MessageJson {
                            message_id: m.offset.to_string(),
                            attributes: &m.attributes,
                            data: &m.data_b64,
                            publish_time: format_publish_time(m.publish_time),
                        },
                    })
                    .collect();
                s.next_offset = s.offset + batch.len() as u64;
                s.pending_since = chrono::Utc::now().timestamp();
                store.counts.pull_requests += 1;
                store.counts.messages_delivered += batch.len() as u64;
                return ok(&json!({"receivedMessages": received}));
            }
        }
        let _ = tokio::time::timeout_at(deadline, notified).await;
    }
}

/// `projects/{project}/subscriptions/{sub}:{offset}` → offset.
fn ack_offset(project: &str, sub: &str, id: &str) -> Option<u64> {
    let rest = id.strip_prefix(&format!("projects/{project}/subscriptions/{sub}:"))?;
    if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    rest.parse().ok()
}

fn acknowledge(
    st: &AmsState,
    headers: &HeaderMap,
    q: &Option<String>,
    project: &str,
    sub: &str,
    body: &[u8],
) -> AmsResult {
    authorize(st, headers, q, project, &[ADMIN, CONSUMER])?;
    let bad = || AmsError::invalid_data("Invalid ack parameter");
    let v: Value = serde_json::from_slice(body).map_err(|_| bad())?;
    let ids: Option<Vec<String>> = match &v {
        Value::Null => None,
        // Go matches JSON keys case-insensitively (`AckIds` in the struct tag).
        Value::Object(o) => match o.iter().find(|(k, _)| k.eq_ignore_ascii_case("ackIds")).map(|(_, v)| v) {
            None | Some(Value::Null) => None,
            Some(v) => Some(serde_json::from_value(v.clone()).map_err(|_| bad())?),
        },
        _ => return Err(bad()),
    };
    let mut store = st.store.lock().unwrap();
    let store = &mut *store;
    let s = store
        .projects
        .get_mut(project)
        .and_then(|p| p.subs.get_mut(sub))
        .ok_or_else(|| AmsError::not_found("Subscription"))?;
    let invalid = || AmsError::invalid_data("Invalid ack id");
    let ids = ids.ok_or_else(invalid)?;
    let offsets =
        ids.iter().map(|id| ack_offset(project, sub, id)).collect::<Option<Vec<u64>>>().ok_or_else(invalid)?;
    let off = offsets.into_iter().max().ok_or_else(invalid)? + 1;
    if s.next_offset == 0 {
        return Err(AmsError::internal("no ack pending"));
    }
    if off <= s.offset || off > s.next_offset {
        return Err(AmsError::internal("wrong ack"));
    }
    // AMS compares second-resolution timestamps of the pull and the ack.
    if chrono::Utc::now().timestamp() - s.pending_since > s.ack_deadline as i64 {
        return Err(AmsError::new(StatusCode::REQUEST_TIMEOUT, "ack timeout", "TIMEOUT"));
    }
    s.offset = off;
    s.next_offset = 0;
    s.pending_since = 0;
    store.counts.acks += 1;
    Ok(json_utf8(StatusCode::OK, b"{}".to_vec()))
}
