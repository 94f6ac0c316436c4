//! Glance v2 images: list (visibility rules, filters, sorting, markers),
//! show, create, JSON-patch update, delete, data upload/download, the
//! deactivate/reactivate actions and tags.

use std::cmp::Ordering;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use md5::{Digest, Md5};
use serde_json::{Map, Value, json};
use sha2::Sha512;

use super::{Ctx, S, denied, err, extra_of, image_json, json_body, pattern_byte, py_repr};
use crate::error::{ApiError, ApiResult};
use crate::model::{Image, ImageExtra};
use crate::state::AppState;

const DISK_FORMATS: [&str; 11] = ["ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop"];
const CONTAINER_FORMATS: [&str; 8] = ["ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed"];
const VISIBILITIES: [&str; 4] = ["community", "public", "private", "shared"];
const STATUSES: [&str; 9] =
    ["queued", "saving", "active", "killed", "deleted", "uploading", "importing", "pending_delete", "deactivated"];
const SORT_KEYS: [&str; 8] =
    ["name", "status", "container_format", "disk_format", "size", "id", "created_at", "updated_at"];
/// Body keys refused on create before schema validation.
const DISALLOWED: [&str; 5] = ["direct_url", "self", "file", "schema", "stores"];
const READONLY: [&str; 13] = [
    "created_at",
    "updated_at",
    "status",
    "checksum",
    "size",
    "virtual_size",
    "direct_url",
    "self",
    "file",
    "schema",
    "id",
    "os_hash_algo",
    "os_hash_value",
];
const RESERVED: [&str; 3] = ["location", "deleted", "deleted_at"];
/// Attributes of Glance's domain Image that PATCH sets directly.
const SETTABLE: [&str; 10] = [
    "name",
    "visibility",
    "protected",
    "os_hidden",
    "owner",
    "container_format",
    "disk_format",
    "min_ram",
    "min_disk",
    "tags",
];
const LIMIT_DEFAULT: usize = 25;
const LIMIT_MAX: usize = 1000;

fn bad(msg: impl Into<String>) -> ApiError {
    err(StatusCode::BAD_REQUEST, msg)
}
fn forbidden(msg: impl Into<String>) -> ApiError {
    err(StatusCode::FORBIDDEN, msg)
}
fn conflict(msg: impl Into<String>) -> ApiError {
    err(StatusCode::CONFLICT, msg)
}
/// webob's HTTPForbidden(detail): the default explanation, then the detail.
fn forbidden_detail(msg: impl std::fmt::Display) -> ApiError {
    forbidden(format!("Access was denied to this resource.<br /><br />{msg}"))
}
/// webob's HTTPConflict(detail).
fn conflict_detail(msg: impl std::fmt::Display) -> ApiError {
    conflict(format!("There was a conflict when trying to complete your request.<br /><br />{msg}"))
}
fn no_image(id: &str) -> ApiError {
    err(StatusCode::NOT_FOUND, format!("No image found with ID {id}"))
}

// ---------------------------------------------------------------- schema

fn schema_error(msg: String) -> ApiError {
    bad(format!("Provided object does not match schema 'image': {msg}"))
}

fn enum_list(values: &[&str], nullable: bool) -> String {
    let mut v: Vec<String> = values.iter().map(|s| format!("'{s}'")).collect();
    if nullable {
        v.insert(0, "None".into());
    }
    format!("[{}]", v.join(", "))
}

fn check_type(v: &Value, ty: &str, nullable: bool) -> Result<(), String> {
    let ok = match ty {
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "boolean" => v.is_boolean(),
        "array" => v.is_array(),
        _ => true,
    } || (nullable && v.is_null());
    if ok {
        Ok(())
    } else if nullable {
        Err(format!("{} is not of type 'null', '{ty}'", py_repr(v)))
    } else {
        Err(format!("{} is not of type '{ty}'", py_repr(v)))
    }
}

fn check_len(v: &Value, max: usize) -> Result<(), String> {
    match v.as_str() {
        Some(s) if s.chars().count() > max => Err(format!("{} is too long", py_repr(v))),
        _ => Ok(()),
    }
}

fn check_enum(v: &Value, values: &[&str], nullable: bool) -> Result<(), String> {
    let ok = match v {
        Value::Null => nullable,
        Value::String(s) => values.contains(&s.as_str()),
        _ => false,
    };
    if ok { Ok(()) } else { Err(format!("{} is not one of {}", py_repr(v), enum_list(values, nullable))) }
}

fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts.iter().zip([8, 4, 4, 4, 12]).all(|(p, n)| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Validates one attribute against Glance 33's image schema.
fn validate_attr(key: &str, v: &Value) -> Result<(), String> {
    match key {
        "id" => {
            check_type(v, "string", false)?;
            if !is_uuid(v.as_str().unwrap_or_default()) {
                return Err(format!(
                    "{} does not match '^([0-9a-fA-F]){{8}}-([0-9a-fA-F]){{4}}-([0-9a-fA-F]){{4}}-([0-9a-fA-F]){{4}}-([0-9a-fA-F]){{12}}$'",
                    py_repr(v)
                ));
            }
            Ok(())
        }
        "name" | "owner" => check_type(v, "string", true).and_then(|_| check_len(v, 255)),
        "checksum" => check_type(v, "string", true).and_then(|_| check_len(v, 32)),
        "os_hash_algo" => check_type(v, "string", true).and_then(|_| check_len(v, 64)),
        "os_hash_value" => check_type(v, "string", true).and_then(|_| check_len(v, 128)),
        "status" => check_type(v, "string", false).and_then(|_| check_enum(v, &STATUSES, false)),
        "visibility" => check_type(v, "string", false).and_then(|_| check_enum(v, &VISIBILITIES, false)),
        "protected" | "os_hidden" => check_type(v, "boolean", false),
        "size" | "virtual_size" => check_type(v, "integer", true),
        "container_format" => check_type(v, "string", true).and_then(|_| check_enum(v, &CONTAINER_FORMATS, true)),
        "disk_format" => check_type(v, "string", true).and_then(|_| check_enum(v, &DISK_FORMATS, true)),
        "created_at" | "updated_at" | "direct_url" | "self" | "file" | "stores" | "schema" => {
            check_type(v, "string", false)
        }
        "tags" => {
            check_type(v, "array", false)?;
            for t in v.as_array().into_iter().flatten() {
                check_type(t, "string", false)?;
                check_len(t, 255)?;
            }
            Ok(())
        }
        "min_ram" | "min_disk" => {
            check_type(v, "integer", false)?;
            if v.as_u64().is_none() {
                return Err(format!("{} is less than the minimum of 0", py_repr(v)));
            }
            Ok(())
        }
        "locations" => Err("locations are not supported by this simulator".into()),
        _ => check_type(v, "string", false),
    }
}

// ---------------------------------------------------------------- list

/// A comparable value of a sort key; `Null` sorts first, as in SQL.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Sv {
    Null,
    Int(u64),
    Str(String),
    Time(DateTime<Utc>),
}

fn opt_str(s: &Option<String>) -> Sv {
    s.clone().map(Sv::Str).unwrap_or(Sv::Null)
}

fn sort_val(img: &Image, x: &ImageExtra, key: &str) -> Sv {
    match key {
        "name" if x.name_is_null => Sv::Null,
        "name" => Sv::Str(img.name.clone()),
        "status" => Sv::Str(img.status.clone()),
        "container_format" => opt_str(&img.container_format),
        "disk_format" => opt_str(&img.disk_format),
        "size" => img.size.map(Sv::Int).unwrap_or(Sv::Null),
        "id" => Sv::Str(img.id.clone()),
        "created_at" => Sv::Time(img.created_at),
        _ => Sv::Time(img.updated_at),
    }
}

/// A column of the images table as text (None = NULL, or not a column).
fn column_text(img: &Image, x: &ImageExtra, key: &str) -> Option<Option<String>> {
    Some(match key {
        "id" => Some(img.id.clone()),
        "name" => (!x.name_is_null).then(|| img.name.clone()),
        "status" => Some(img.status.clone()),
        "visibility" => Some(img.visibility.clone()),
        "owner" => Some(img.owner.clone()),
        "disk_format" => img.disk_format.clone(),
        "container_format" => img.container_format.clone(),
        "checksum" => img.checksum.clone(),
        "os_hash_algo" => img.os_hash_algo.clone(),
        "os_hash_value" => img.os_hash_value.clone(),
        "size" => img.size.map(|v| v.to_string()),
        "virtual_size" => x.virtual_size.map(|v| v.to_string()),
        "min_ram" => Some(img.min_ram.to_string()),
        "min_disk" => Some(img.min_disk.to_string()),
        _ => return None,
    })
}

fn column_int(img: &Image, x: &ImageExtra, key: &str) -> Option<Option<u64>> {
    Some(match key {
        "size" => img.size,
        "virtual_size" => x.virtual_size,
        "min_ram" => Some(img.min_ram),
        "min_disk" => Some(img.min_disk),
        _ => return None,
    })
}

fn parse_isotime(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Some(t.and_utc());
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0)).map(|t| t.and_utc())
}

/// Glance's `split_filter_op`.
fn split_op(expr: &str) -> (String, String) {
    match expr.split_once(':') {
        Some((l, r)) if parse_isotime(expr).is_none() => (l.to_string(), r.to_string()),
        _ => ("eq".into(), expr.to_string()),
    }
}

/// Glance's `split_filter_value_for_quotes`: comma separated, `"` quotes.
fn split_quoted(v: &str) -> ApiResult<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = v.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted => {
                quoted = false;
                if chars.peek().is_some_and(|n| *n != ',') {
                    return Err(bad(format!(
                        "Invalid filter value {v}. There is no comma after closing quotation mark."
                    )));
                }
            }
            '"' if cur.is_empty() => quoted = true,
            '"' => {
                return Err(bad(format!("Invalid filter value {v}. The quote is not closed.")));
            }
            '\\' if quoted => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    if quoted {
        return Err(bad(format!("Invalid filter value {v}. The quote is not closed.")));
    }
    out.push(cur);
    Ok(out)
}

enum Filter {
    OsHidden(bool),
    Protected(bool),
    Tag(String),
    Min(String, u64),
    Max(String, u64),
    Time(String, String, DateTime<Utc>),
    In(String, Vec<String>),
    Eq(String, String),
    Prop(String, String),
}

fn time_cmp(op: &str, a: DateTime<Utc>, b: DateTime<Utc>) -> bool {
    match op {
        "gt" => a > b,
        "gte" => a >= b,
        "lt" => a < b,
        "lte" => a <= b,
        "neq" => a != b,
        _ => a == b,
    }
}

impl Filter {
    fn matches(&self, img: &Image, x: &ImageExtra) -> bool {
        match self {
            Filter::OsHidden(b) => x.os_hidden == *b,
            Filter::Protected(b) => img.protected == *b,
            Filter::Tag(t) => img.tags.iter().any(|x| x == t),
            Filter::Min(k, v) => column_int(img, x, k).flatten().is_some_and(|c| c >= *v),
            Filter::Max(k, v) => column_int(img, x, k).flatten().is_some_and(|c| c <= *v),
            Filter::Time(k, op, t) => time_cmp(op, if k == "created_at" { img.created_at } else { img.updated_at }, *t),
            Filter::In(k, vs) => column_text(img, x, k).flatten().is_some_and(|c| vs.contains(&c)),
            Filter::Eq(k, v) => column_text(img, x, k).flatten().is_some_and(|c| &c == v),
            Filter::Prop(k, v) => img.properties.get(k).is_some_and(|p| match p {
                Value::String(s) => s == v,
                other => &other.to_string() == v,
            }),
        }
    }
}

struct ListQuery {
    limit: usize,
    marker: Option<String>,
    member_status: String,
    visibility: Option<String>,
    filters: Vec<Filter>,
    sort: Vec<(String, bool)>,
    /// Request params (last value per key, first-seen order) for the links.
    params: Vec<(String, String)>,
}

fn last_value<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn parse_list_query(raw: &str) -> ApiResult<ListQuery> {
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(raw.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    let mut params: Vec<(String, String)> = Vec::new();
    for (k, _) in &pairs {
        if !params.iter().any(|(p, _)| p == k) {
            params.push((k.clone(), last_value(&pairs, k).unwrap_or_default().to_string()));
        }
    }
    let member_status = last_value(&pairs, "member_status").unwrap_or("accepted").to_string();
    if !["pending", "accepted", "rejected", "all"].contains(&member_status.as_str()) {
        return Err(bad(format!("Invalid status: {member_status}")));
    }
    let visibility = last_value(&pairs, "visibility").filter(|v| !v.is_empty()).map(String::from);
    if let Some(v) = &visibility
        && !["community", "public", "private", "shared", "all"].contains(&v.as_str())
    {
        return Err(bad(format!("Invalid visibility value: {v}")));
    }
    if last_value(&pairs, "changes-since").is_some_and(|v| !v.is_empty()) {
        return Err(bad("The \"changes-since\" filter is no longer available on v2."));
    }
    let limit = match last_value(&pairs, "limit") {
        None => LIMIT_DEFAULT,
        Some(l) => {
            let n: i64 = l.trim().parse().map_err(|_| bad("limit param must be an integer"))?;
            if n < 0 {
                return Err(bad("limit param must be positive"));
            }
            n as usize
        }
    }
    .min(LIMIT_MAX);
    let sort = parse_sort(&pairs)?;

    let filters = parse_filters(&pairs, &params)?;
    Ok(ListQuery {
        limit,
        marker: last_value(&pairs, "marker").map(String::from),
        member_status,
        visibility,
        filters,
        sort,
        params,
    })
}

/// The sort order, `sort=k:dir,...` or repeated `sort_key`/`sort_dir` (not
/// both), as (key, ascending), with `created_at` and `id` appended as the
/// DB layer does: in the single given direction, or descending when several
/// directions were given.
fn parse_sort(pairs: &[(String, String)]) -> ApiResult<Vec<(String, bool)>> {
    let valid_key = |k: &str| -> ApiResult<String> {
        if SORT_KEYS.contains(&k) {
            Ok(k.to_string())
        } else {
            Err(bad(format!("Invalid sort key: {k}. It must be one of the following: {}.", SORT_KEYS.join(", "))))
        }
    };
    let valid_dir = |d: &str| -> ApiResult<bool> {
        match d {
            "asc" => Ok(true),
            "desc" => Ok(false),
            other => Err(bad(format!("Invalid sort direction: {other}"))),
        }
    };
    let mut sort: Vec<(String, bool)> = Vec::new();
    let has = |k: &str| pairs.iter().any(|(p, _)| p == k);
    // The DB layer appends created_at and id in the single given direction,
    // or descending when several directions were given.
    let mut appended_asc = false;
    if let Some(s) = last_value(pairs, "sort") {
        if has("sort_key") || has("sort_dir") {
            return Err(bad("Old and new sorting syntax cannot be combined"));
        }
        for part in s.trim().split(',') {
            let (k, d) = part.split_once(':').unwrap_or((part, ""));
            let d = if d.trim().is_empty() { "desc" } else { d.trim() };
            sort.push((valid_key(k.trim())?, valid_dir(d)?));
        }
        if sort.len() == 1 {
            appended_asc = sort[0].1;
        }
    } else {
        let keys: Vec<String> = pairs
            .iter()
            .filter(|(k, _)| k == "sort_key")
            .map(|(_, v)| valid_key(v.trim()))
            .collect::<ApiResult<_>>()?;
        let dirs: Vec<bool> = pairs
            .iter()
            .filter(|(k, _)| k == "sort_dir")
            .map(|(_, v)| valid_dir(v.trim()))
            .collect::<ApiResult<_>>()?;
        if dirs.len() > 1 && dirs.len() != keys.len() {
            return Err(bad("Number of sort dirs does not match the number of sort keys"));
        }
        let keys = if keys.is_empty() { vec!["created_at".to_string()] } else { keys };
        if dirs.len() <= 1 {
            appended_asc = dirs.first().copied().unwrap_or(false);
        }
        for (i, k) in keys.into_iter().enumerate() {
            sort.push((k, if dirs.len() > 1 { dirs[i] } else { appended_asc }));
        }
    }
    for key in ["created_at", "id"] {
        if !sort.iter().any(|(k, _)| k == key) {
            sort.push((key.to_string(), appended_asc));
        }
    }
    Ok(sort)
}

/// The filters: `os_hidden` (false unless given), `protected`, each `tag`, then
/// per other parameter (last value) a range, time, column or property filter.
fn parse_filters(pairs: &[(String, String)], params: &[(String, String)]) -> ApiResult<Vec<Filter>> {
    let skip = ["limit", "marker", "member_status", "tag", "sort", "sort_key", "sort_dir", "visibility"];
    let mut filters = Vec::new();
    let os_hidden = last_value(pairs, "os_hidden").unwrap_or("false").to_lowercase();
    if os_hidden != "true" && os_hidden != "false" {
        return Err(bad(format!(
            "Invalid value '{os_hidden}' for 'os_hidden' filter. Valid values are 'true' or 'false'."
        )));
    }
    filters.push(Filter::OsHidden(os_hidden == "true"));
    if let Some(p) = last_value(pairs, "protected") {
        if p != "true" && p != "false" {
            return Err(bad(format!(
                "Invalid value '{p}' for 'protected' filter. Valid values are 'true' or 'false'."
            )));
        }
        filters.push(Filter::Protected(p == "true"));
    }
    for (_, v) in pairs.iter().filter(|(k, _)| k == "tag") {
        filters.push(Filter::Tag(v.trim().to_string()));
    }
    for (k, v) in params {
        if skip.contains(&k.as_str()) || k == "os_hidden" || k == "protected" {
            continue;
        }
        if let Some(col) = k.strip_suffix("_min").or_else(|| k.strip_suffix("_max")) {
            let n: u64 = match v.trim().parse::<i64>() {
                Ok(n) => n.max(0) as u64,
                Err(_) => return Err(bad("Unable to filter on a range with a non-numeric value.")),
            };
            if !["size", "virtual_size", "min_ram", "min_disk"].contains(&col) {
                return Err(bad(format!("Unable to filter on a range of '{col}'.")));
            }
            filters.push(if k.ends_with("_min") { Filter::Min(col.into(), n) } else { Filter::Max(col.into(), n) });
        } else if k == "created_at" || k == "updated_at" {
            let (op, t) = split_op(v);
            let t = parse_isotime(&t)
                .ok_or_else(|| bad(format!("Bad \"{k}\" query filter format. Use ISO 8601 DateTime notation.")))?;
            if !["gt", "gte", "lt", "lte", "neq", "eq"].contains(&op.as_str()) {
                return Err(bad("Unable to filter on a unknown operator."));
            }
            filters.push(Filter::Time(k.clone(), op, t));
        } else if ["name", "id", "status", "container_format", "disk_format"].contains(&k.as_str()) {
            let (op, val) = split_op(v);
            match op.as_str() {
                "in" => filters.push(Filter::In(k.clone(), split_quoted(&val)?)),
                "eq" => filters.push(Filter::Eq(k.clone(), val)),
                other => {
                    return Err(bad(format!("Unable to filter by unknown operator '{other}'.")));
                }
            }
        } else if ["owner", "checksum", "os_hash_algo", "os_hash_value", "size", "virtual_size", "min_ram", "min_disk"]
            .contains(&k.as_str())
        {
            filters.push(Filter::Eq(k.clone(), v.clone()));
        } else {
            filters.push(Filter::Prop(k.clone(), v.clone()));
        }
    }
    Ok(filters)
}

/// Python's `urllib.parse.urlencode` (quote_plus).
fn urlencode(params: &[(String, String)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .finish()
        .replace('*', "%2A")
}

/// Whether a regular user's query selects `img` (Glance's `_select_images_query`).
fn selected(ctx: &Ctx, q: &ListQuery, img: &Image) -> bool {
    if img.status == "killed" || img.status == "deleted" {
        return false;
    }
    let owner = ctx.owner();
    if !ctx.is_admin() {
        let own = owner == Some(img.owner.as_str());
        let open = img.visibility == "public" || img.visibility == "community";
        let shared = img.visibility == "shared"
            && owner.is_some_and(|o| {
                img.members.iter().any(|(m, s)| m == o && (q.member_status == "all" || *s == q.member_status))
            });
        if !(own || open || shared) {
            return false;
        }
    }
    match &q.visibility {
        Some(v) if v == "all" => true,
        Some(v) => &img.visibility == v,
        None => img.visibility != "community" || owner == Some(img.owner.as_str()),
    }
}

fn order(q: &ListQuery, a: (&Image, &ImageExtra), b: (&Image, &ImageExtra)) -> Ordering {
    for (k, asc) in &q.sort {
        let o = sort_val(a.0, a.1, k).cmp(&sort_val(b.0, b.1, k));
        let o = if *asc { o } else { o.reverse() };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let ctx = Ctx::new(&state, &headers).await?;
    let q = parse_list_query(raw.as_deref().unwrap_or(""))?;
    if !ctx.reader() {
        return Err(denied("get_images"));
    }
    let site = state.site.read().unwrap();
    let extras: Vec<ImageExtra> = site.images.iter().map(|i| extra_of(&site, &i.id)).collect();
    let marker = match &q.marker {
        None => None,
        Some(m) => {
            let i = site
                .images
                .iter()
                .position(|i| &i.id == m)
                .ok_or_else(|| bad(format!("No image found with ID {m}")))?;
            if !ctx.can_see(&site.images[i]) {
                return Err(forbidden(format!("Forbidding request, image {m} not visible")));
            }
            Some(i)
        }
    };
    let mut hits: Vec<usize> = (0..site.images.len())
        .filter(|&i| {
            let img = &site.images[i];
            selected(&ctx, &q, img) && q.filters.iter().all(|f| f.matches(img, &extras[i]))
        })
        .collect();
    hits.sort_by(|&a, &b| order(&q, (&site.images[a], &extras[a]), (&site.images[b], &extras[b])));
    if let Some(m) = marker {
        hits.retain(|&i| order(&q, (&site.images[i], &extras[i]), (&site.images[m], &extras[m])) == Ordering::Greater);
    }
    hits.truncate(q.limit);
    let images: Vec<Value> = hits.iter().map(|&i| image_json(&site.images[i], &extras[i])).collect();
    let mut params: Vec<(String, String)> = q.params.iter().filter(|(k, _)| k != "marker").cloned().collect();
    let mut body = Map::new();
    body.insert("images".into(), json!(images));
    let first = if params.is_empty() { "/v2/images".to_string() } else { format!("/v2/images?{}", urlencode(&params)) };
    body.insert("first".into(), json!(first));
    body.insert("schema".into(), json!("/v2/schemas/images"));
    if !hits.is_empty() && hits.len() == q.limit {
        params.push(("marker".into(), site.images[*hits.last().unwrap_or(&0)].id.clone()));
        body.insert("next".into(), json!(format!("/v2/images?{}", urlencode(&params))));
    }
    Ok(axum::Json(Value::Object(body)).into_response())
}

// ---------------------------------------------------------------- show / create

pub async fn show(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let ctx = Ctx::new(&state, &headers).await?;
    let site = state.site.read().unwrap();
    let img = site.image(&id).filter(|i| ctx.can_see(i)).ok_or_else(|| no_image(&id))?;
    if !ctx.reader() {
        return Err(denied("get_image"));
    }
    Ok(axum::Json(image_json(img, &extra_of(&site, &id))).into_response())
}

fn str_of(v: &Value) -> Option<String> {
    v.as_str().map(String::from)
}

/// Sets one base attribute from an already validated JSON value.
fn set_attr(img: &mut Image, x: &mut ImageExtra, key: &str, v: &Value) {
    match key {
        "name" => {
            x.name_is_null = v.is_null();
            img.name = str_of(v).unwrap_or_default();
        }
        "visibility" => img.visibility = str_of(v).unwrap_or_default(),
        "protected" => img.protected = v.as_bool().unwrap_or(false),
        "os_hidden" => x.os_hidden = v.as_bool().unwrap_or(false),
        "owner" => img.owner = str_of(v).unwrap_or_default(),
        "container_format" => img.container_format = str_of(v),
        "disk_format" => img.disk_format = str_of(v),
        "min_ram" => img.min_ram = v.as_u64().unwrap_or(0),
        "min_disk" => img.min_disk = v.as_u64().unwrap_or(0),
        "tags" => {
            let mut t: Vec<String> = v.as_array().into_iter().flatten().filter_map(str_of).collect();
            t.sort();
            t.dedup();
            img.tags = t;
        }
        _ => {}
    }
}

pub async fn create(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> ApiResult<Response> {
    let ctx = Ctx::new(&state, &headers).await?;
    let body = json_body(&body)?;
    let Value::Object(mut body) = body else {
        return Err(bad("Provided object does not match schema 'image': the request body must be a JSON object"));
    };
    if let Some(k) = DISALLOWED.iter().find(|k| body.contains_key(**k)) {
        return Err(forbidden(format!("Attribute '{k}' is read-only.")));
    }
    for (k, v) in &body {
        validate_attr(k, v).map_err(schema_error)?;
    }
    for k in body.keys() {
        if k.chars().count() > 255 {
            return Err(bad("Custom property should not be greater than 255 characters."));
        }
        if RESERVED.contains(&k.as_str()) || k.starts_with("os_glance") {
            return Err(forbidden_detail(format!("Attribute '{k}' is reserved.")));
        }
    }
    let project = ctx.owner().map(String::from);
    let owner = match body.remove("owner") {
        Some(Value::String(o)) => Some(o),
        _ => project.clone(),
    };
    if !ctx.is_admin() {
        if !ctx.member() || project.is_none() {
            return Err(denied("add_image"));
        }
        if owner != project {
            return Err(forbidden_detail(format!(
                "You are not permitted to create images owned by '{}'",
                owner.unwrap_or_default()
            )));
        }
    }
    if let Some(k) = READONLY.iter().find(|k| **k != "id" && body.contains_key(**k)) {
        return Err(forbidden(format!("Attribute '{k}' is read-only.")));
    }
    let vis = body.get("visibility").and_then(|v| v.as_str()).unwrap_or("shared").to_string();
    if vis == "public" && !ctx.is_admin() {
        return Err(denied("publicize_image"));
    }
    let id = match body.remove("id") {
        Some(Value::String(id)) => id,
        _ => uuid::Uuid::new_v4().to_string(),
    };
    let now = state.now();
    let mut site = state.site.write().unwrap();
    if site.image(&id).is_some() {
        return Err(conflict(format!("Image ID {id} already exists!")));
    }
    let mut img = Image {
        id: id.clone(),
        name: String::new(),
        owner: owner.unwrap_or_default(),
        visibility: vis,
        status: "queued".into(),
        disk_format: None,
        container_format: None,
        size: None,
        min_disk: 0,
        min_ram: 0,
        checksum: None,
        os_hash_algo: None,
        os_hash_value: None,
        protected: false,
        created_at: now,
        updated_at: now,
        tags: Vec::new(),
        properties: Default::default(),
        members: Vec::new(),
        data: None,
    };
    let mut x = ImageExtra { name_is_null: true, ..Default::default() };
    for (k, v) in &body {
        if SETTABLE.contains(&k.as_str()) {
            set_attr(&mut img, &mut x, k, v);
        } else {
            img.properties.insert(k.clone(), v.clone());
        }
    }
    let view = image_json(&img, &x);
    site.images.push(img);
    site.image_extras.insert(id.clone(), x);
    let location = format!("{}{}/v2/images/{id}", state.base_url, S.prefix());
    Ok((
        StatusCode::CREATED,
        [
            (header::LOCATION, location),
            (
                header::HeaderName::from_static("openstack-image-import-methods"),
                "glance-direct,web-download,copy-image".into(),
            ),
            (
                header::HeaderName::from_static("openstack-image-store-ids"),
                "fs,os_glance_staging_store,os_glance_tasks_store".into(),
            ),
        ],
        axum::Json(view),
    )
        .into_response())
}

// ---------------------------------------------------------------- update

struct Change {
    op: String,
    path: String,
    value: Option<Value>,
}

fn decode_pointer(p: &str) -> ApiResult<Vec<String>> {
    if !p.starts_with('/') {
        return Err(bad(format!("Pointer `{p}` does not start with \"/\".")));
    }
    let rest = &p[1..];
    if rest.split('/').skip(1).any(|s| s.trim().is_empty()) && rest.contains('/') {
        return Err(bad(format!("Pointer `{p}` contains adjacent \"/\".")));
    }
    if p.len() > 1 && p.ends_with('/') {
        return Err(bad(format!("Pointer `{p}` end with \"/\".")));
    }
    let bytes: Vec<char> = p.chars().collect();
    for (i, c) in bytes.iter().enumerate() {
        if *c == '~' && !matches!(bytes.get(i + 1), Some('0') | Some('1')) {
            return Err(bad(format!("Pointer `{p}` contains \"~\" not part of a recognized escape sequence.")));
        }
    }
    Ok(rest.split('/').map(|s| s.replace("~1", "/").replace("~0", "~").trim().to_string()).collect())
}

fn parse_changes(ctype: &str, body: &[u8]) -> ApiResult<Vec<Change>> {
    let draft = match ctype {
        "application/openstack-images-v2.0-json-patch" => 4,
        "application/openstack-images-v2.1-json-patch" => 10,
        other => {
            return Err(err(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "The request media type {other} is not supported by this server. Image PATCH expects Content-Type one of: application/openstack-images-v2.0-json-patch, application/openstack-images-v2.1-json-patch"
                ),
            ));
        }
    };
    let Value::Array(raw) = json_body(body)? else {
        return Err(bad("Request body must be a JSON array of operation objects."));
    };
    let ops = ["add", "remove", "replace"];
    let mut out = Vec::new();
    for rc in raw {
        let Value::Object(rc) = rc else {
            return Err(bad("Operations must be JSON objects."));
        };
        let (op, path) = if draft == 10 {
            let op = match rc.get("op") {
                None => {
                    return Err(bad(
                        "Unable to find `op` in JSON Schema change. It must be one of the following: add, remove, replace.",
                    ));
                }
                Some(o) => o.as_str().unwrap_or_default().to_string(),
            };
            if !ops.contains(&op.as_str()) {
                return Err(bad(format!(
                    "Invalid operation: `{op}`. It must be one of the following: add, remove, replace."
                )));
            }
            let path = rc.get("path").ok_or_else(|| bad("Unable to find 'path' in JSON Schema change"))?;
            (op, path.as_str().unwrap_or_default().to_string())
        } else {
            let found: Vec<&&str> = ops.iter().filter(|o| rc.contains_key(**o)).collect();
            match found.as_slice() {
                [one] => (one.to_string(), rc[**one].as_str().unwrap_or_default().to_string()),
                [] => {
                    return Err(bad(
                        "Operation objects must contain exactly one member named \"add\", \"remove\", or \"replace\".",
                    ));
                }
                _ => {
                    return Err(bad(
                        "Operation objects must contain only one member named \"add\", \"remove\", or \"replace\".",
                    ));
                }
            }
        };
        let parts = decode_pointer(&path)?;
        if parts.len() != 1 {
            return Err(bad(format!("Invalid JSON pointer for this resource: '/{}'", parts.join("/"))));
        }
        let root = parts[0].clone();
        let value = if op == "remove" {
            None
        } else {
            Some(
                rc.get("value")
                    .cloned()
                    .ok_or_else(|| bad(format!("Operation \"{op}\" requires a member named \"value\".")))?,
            )
        };
        if READONLY.contains(&root.as_str()) {
            return Err(forbidden(format!("Attribute '{root}' is read-only.")));
        }
        if RESERVED.contains(&root.as_str()) || root.starts_with("os_glance") {
            return Err(forbidden_detail(format!("Attribute '{root}' is reserved.")));
        }
        if let Some(v) = &value {
            validate_attr(&root, v).map_err(schema_error)?;
        }
        out.push(Change { op, path: root, value });
    }
    Ok(out)
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.split(';').next().unwrap_or("").trim().to_lowercase())
        .unwrap_or_default()
}

pub async fn update(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let ctx = Ctx::new(&state, &headers).await?;
    let changes = match parse_changes(&content_type(&headers), &body) {
        Ok(c) => c,
        Err(e) if e.status == StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            let mut r = e.into_response();
            r.headers_mut().insert(
                "accept-patch",
                header::HeaderValue::from_static(
                    "application/openstack-images-v2.0-json-patch, application/openstack-images-v2.1-json-patch",
                ),
            );
            return Ok(r);
        }
        Err(e) => return Err(e),
    };
    let now = state.now();
    let mut site = state.site.write().unwrap();
    let idx = site.images.iter().position(|i| i.id == id && ctx.can_see(i)).ok_or_else(|| no_image(&id))?;
    let mut img = site.images[idx].clone();
    let mut x = extra_of(&site, &id);
    for c in &changes {
        if !ctx.owns(&img) {
            return Err(denied("modify_image"));
        }
        let root = c.path.as_str();
        let base = SETTABLE.contains(&root);
        match c.op.as_str() {
            "remove" => {
                if base {
                    return Err(forbidden_detail(format!("Property {root} may not be removed.")));
                }
                if img.properties.remove(root).is_none() {
                    return Err(conflict_detail(format!("Property {root} does not exist.")));
                }
            }
            op => {
                let v = c.value.clone().unwrap_or(Value::Null);
                if root == "owner" && !ctx.is_admin() && op == "replace" {
                    return Err(forbidden_detail("Owner can't be updated by non admin."));
                }
                if root == "visibility" && v == "public" && !ctx.is_admin() {
                    return Err(denied("publicize_image"));
                }
                if (root == "disk_format" || root == "container_format") && img.status != "queued" {
                    return Err(forbidden(format!("Attribute {root} can be only replaced for a queued image.")));
                }
                if base {
                    set_attr(&mut img, &mut x, root, &v);
                } else if op == "replace" && !img.properties.contains_key(root) {
                    return Err(conflict_detail(format!("Property {root} does not exist.")));
                } else if root.is_empty() {
                    return Err(bad("Invalid JSON pointer for this resource: '/'"));
                } else {
                    img.properties.insert(root.to_string(), v);
                }
            }
        }
    }
    if !changes.is_empty() {
        img.updated_at = now;
    }
    let view = image_json(&img, &x);
    site.images[idx] = img;
    site.image_extras.insert(id, x);
    Ok(axum::Json(view).into_response())
}

pub async fn delete(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let ctx = Ctx::new(&state, &headers).await?;
    let mut site = state.site.write().unwrap();
    let idx = site
        .images
        .iter()
        .position(|i| i.id == id && ctx.can_see(i))
        .ok_or_else(|| err(StatusCode::NOT_FOUND, format!("Failed to find image {id} to delete")))?;
    if !ctx.owns(&site.images[idx]) {
        return Err(denied("delete_image"));
    }
    if site.images[idx].protected {
        return Err(forbidden(format!("Image {id} is protected and cannot be deleted.")));
    }
    site.images.remove(idx);
    site.image_extras.remove(&id);
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---------------------------------------------------------------- data

/// Virtual size as Glance's format inspector reports it: the qcow2 header's
/// size, or the data size for other formats.
fn virtual_size(disk_format: Option<&str>, data: &[u8]) -> u64 {
    if disk_format == Some("qcow2") && data.len() >= 32 && data.starts_with(b"QFI\xfb") {
        let mut b = [0u8; 8];
        b.copy_from_slice(&data[24..32]);
        return u64::from_be_bytes(b);
    }
    data.len() as u64
}

pub async fn upload(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let ctx = Ctx::new(&state, &headers).await?;
    let ct = content_type(&headers);
    if ct != "application/octet-stream" {
        return Err(err(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("The request media type {ct} is not supported by this server. Invalid content type {ct}"),
        ));
    }
    let now = state.now();
    let mut site = state.site.write().unwrap();
    let idx = site.images.iter().position(|i| i.id == id && ctx.can_see(i)).ok_or_else(|| no_image(&id))?;
    let img = &site.images[idx];
    if !ctx.owns(img) {
        return Err(denied("upload_image"));
    }
    if img.disk_format.is_none() || img.container_format.is_none() {
        return Err(bad("Properties disk_format, container_format must be set prior to saving data."));
    }
    if img.status != "queued" {
        return Err(conflict(format!("Image status transition from {} to saving is not allowed", img.status)));
    }
    if img.disk_format.as_deref() == Some("qcow2") && !body.starts_with(b"QFI\xfb") {
        return Err(err(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "The request media type application/octet-stream is not supported by this server. Image disk_format qcow2 does not match stream data raw",
        ));
    }
    let vsize = virtual_size(img.disk_format.as_deref(), &body);
    let img = &mut site.images[idx];
    img.size = Some(body.len() as u64);
    img.checksum = Some(hex::encode(Md5::digest(&body)));
    img.os_hash_algo = Some("sha512".into());
    img.os_hash_value = Some(hex::encode(Sha512::digest(&body)));
    img.status = "active".into();
    img.updated_at = now;
    img.data = Some(body);
    site.image_extras.entry(id).or_default().virtual_size = Some(vsize);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Pattern data larger than this is served without `Content-MD5`.
const PATTERN_MD5_MAX: u64 = 64 << 20;

pub async fn download(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let ctx = Ctx::new(&state, &headers).await?;
    let (data, size, checksum) = {
        let site = state.site.read().unwrap();
        let img = site.image(&id).filter(|i| ctx.can_see(i)).ok_or_else(|| no_image(&id))?;
        if !ctx.member() {
            return Err(denied("download_image"));
        }
        if img.status == "deactivated" && !ctx.is_admin() {
            return Err(forbidden("The requested image has been deactivated. Image data download is forbidden."));
        }
        (img.data.clone(), img.size, img.checksum.clone())
    };
    let octet = (header::CONTENT_TYPE, "application/octet-stream".to_string());
    if let Some(d) = data {
        let md5 = checksum.unwrap_or_else(|| hex::encode(Md5::digest(&d)));
        return Ok((StatusCode::OK, [octet, (header::HeaderName::from_static("content-md5"), md5)], d).into_response());
    }
    let Some(size) = size else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let chunk = 64 * 1024u64;
    let stream = futures::stream::iter((0..size.div_ceil(chunk)).map(move |c| {
        let start = c * chunk;
        let end = (start + chunk).min(size);
        Ok::<Bytes, std::io::Error>((start..end).map(pattern_byte).collect::<Vec<u8>>().into())
    }));
    let mut resp = (StatusCode::OK, [octet], axum::body::Body::from_stream(stream)).into_response();
    resp.headers_mut().insert(header::CONTENT_LENGTH, size.into());
    if size <= PATTERN_MD5_MAX {
        let mut h = Md5::new();
        for c in 0..size.div_ceil(chunk) {
            let start = c * chunk;
            h.update((start..(start + chunk).min(size)).map(pattern_byte).collect::<Vec<u8>>());
        }
        if let Ok(v) = hex::encode(h.finalize()).parse() {
            resp.headers_mut().insert("content-md5", v);
        }
    }
    Ok(resp)
}

// ---------------------------------------------------------------- actions, tags

pub async fn action(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
) -> ApiResult<Response> {
    let ctx = Ctx::new(&state, &headers).await?;
    if action != "deactivate" && action != "reactivate" {
        return Err(err(StatusCode::NOT_FOUND, "The resource could not be found."));
    }
    let now = state.now();
    let mut site = state.site.write().unwrap();
    let img = site.images.iter_mut().find(|i| i.id == id && ctx.can_see(i)).ok_or_else(|| no_image(&id))?;
    if !ctx.owns(img) {
        return Err(denied(&action));
    }
    let (from, to) = if action == "deactivate" { ("active", "deactivated") } else { ("deactivated", "active") };
    if img.status == from {
        img.status = to.into();
        img.updated_at = now;
    } else if img.status != to {
        return Err(forbidden(format!("Not allowed to {action} image in status '{}'", img.status)));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn tag_add(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((id, tag)): Path<(String, String)>,
) -> ApiResult<Response> {
    let ctx = Ctx::new(&state, &headers).await?;
    if tag.chars().count() > 255 {
        return Err(bad(format!("Provided object does not match schema 'image': '{tag}' is too long")));
    }
    let now = state.now();
    let mut site = state.site.write().unwrap();
    let img = site.images.iter_mut().find(|i| i.id == id && ctx.can_see(i)).ok_or_else(|| no_image(&id))?;
    if !ctx.owns(img) {
        return Err(denied("modify_image"));
    }
    if !img.tags.contains(&tag) {
        img.tags.push(tag);
        img.updated_at = now;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn tag_delete(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path((id, tag)): Path<(String, String)>,
) -> ApiResult<Response> {
    let ctx = Ctx::new(&state, &headers).await?;
    let now = state.now();
    let mut site = state.site.write().unwrap();
    let img = site.images.iter_mut().find(|i| i.id == id && ctx.can_see(i)).ok_or_else(|| no_image(&id))?;
    if !ctx.owns(img) {
        return Err(denied("modify_image"));
    }
    let before = img.tags.len();
    img.tags.retain(|t| t != &tag);
    if img.tags.len() == before {
        return Err(err(StatusCode::NOT_FOUND, "The resource could not be found."));
    }
    img.updated_at = now;
    Ok(StatusCode::NO_CONTENT.into_response())
}
