//! Contract tests: the same raw HTTP calls (reqwest, not our openstack crate)
//! against the REAL Keystone and Glance that `scripts/test` starts and against
//! the in-process sim; the JSON shapes (keys and JSON types, recursively) must
//! match, apart from the documented `KNOWN_*` differences below.

use crate::common;

use reqwest::Method;
use serde_json::{Value, json};

use std::collections::{BTreeMap, BTreeSet};

use common::shape::{Known, assert_same_shape, shape_diff};

#[test]
fn shape_diff_reports_missing_extra_and_retyped_keys_and_accepts_nulls() {
    let real = json!({"a": {"b": 1, "c": "x", "n": null}, "l": [{"k": true}]});
    let sim = json!({"a": {"b": "1", "n": "set", "z": 0}, "l": []});
    let d = shape_diff(&real, &sim, &[]);
    for expected in [
        "missing in sim: a.c (string)",
        "type differs at a.b: real {\"number\"}, sim {\"string\"}",
        "missing in sim: l[] (object)",
        "missing in sim: l[].k (bool)",
        "extra in sim: a.z (number)",
    ] {
        assert!(d.iter().any(|x| x == expected), "{expected} not in {d:?}");
    }
    assert_eq!(d.len(), 5, "{d:?}");
    assert!(shape_diff(&real, &sim, &[("a", "test"), ("l", "test")]).is_empty());
}

// ------------------------------------------------------------ both sides

/// One side of the comparison: the real services, or the sim.
struct Side {
    label: &'static str,
    http: reqwest::Client,
    /// Keystone v3 URL, no trailing slash.
    ks: String,
    /// Glance root URL (`/v2/...` under it).
    glance: String,
    password: String,
    /// A user with only the `reader` role on `reader_project`.
    reader: (&'static str, &'static str),
    _sim: Option<sim::SimHandle>,
}

/// What one call answered.
struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Side {
    fn real() -> Side {
        Side {
            label: "real",
            http: reqwest::Client::new(),
            ks: common::real_keystone(),
            glance: common::real_glance(),
            password: common::real_admin_password(),
            reader: (common::REAL_READER_USER, common::REAL_READER_PROJECT),
            _sim: None,
        }
    }

    async fn sim() -> Side {
        let h = common::start_sim().await;
        Side {
            label: "sim",
            http: reqwest::Client::new(),
            ks: h.auth_url().trim_end_matches('/').to_string(),
            glance: format!("{}/image", h.base_url()),
            password: sim::scenario::PASSWORD.to_string(),
            // tiny: `accounting` is reader on every non-admin project.
            reader: (sim::scenario::ACCOUNTING_USER, "proj1"),
            _sim: Some(h),
        }
    }

    async fn call(&self, method: Method, url: &str, token: Option<&str>, body: Option<Value>) -> Reply {
        self.call_typed(method, url, token, body, "application/json").await
    }

    async fn call_typed(
        &self,
        method: Method,
        url: &str,
        token: Option<&str>,
        body: Option<Value>,
        content_type: &str,
    ) -> Reply {
        let mut req = self.http.request(method.clone(), url);
        if let Some(t) = token {
            req = req.header("X-Auth-Token", t);
        }
        if let Some(b) = body {
            req = req.header("Content-Type", content_type).body(b.to_string());
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{} {method} {url}: {e}", self.label));
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let body = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} {method} {url}: HTTP {status}, not JSON ({e}): {text}", self.label))
        };
        Reply { status, headers, body }
    }

    /// Like `call`, but the status must be `want`.
    async fn expect(&self, want: u16, method: Method, url: &str, token: &str, body: Option<Value>) -> Value {
        let r = self.call(method.clone(), url, Some(token), body).await;
        assert_eq!(r.status, want, "{} {method} {url}: {}", self.label, r.body);
        r.body
    }

    fn password_auth(&self, user: &str, scope: Value) -> Value {
        json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": user, "domain": {"id": "default"}, "password": self.password}}},
            "scope": scope}})
    }

    /// Issues a password token; returns (token, body).
    async fn token(&self, user: &str, scope: Value) -> (String, Value) {
        let url = format!("{}/auth/tokens", self.ks);
        let r = self.call(Method::POST, &url, None, Some(self.password_auth(user, scope))).await;
        assert_eq!(r.status, 201, "{} POST {url} for {user}: {}", self.label, r.body);
        let token = r
            .headers
            .get("X-Subject-Token")
            .unwrap_or_else(|| panic!("{}: no X-Subject-Token header", self.label))
            .to_str()
            .unwrap()
            .to_string();
        (token, r.body)
    }

    fn project_scope(name: &str) -> Value {
        json!({"project": {"name": name, "domain": {"id": "default"}}})
    }

    async fn admin_token(&self) -> (String, Value) {
        self.token("admin", Self::project_scope("admin")).await
    }

    /// Id of the project named `name`, looked up with the admin token.
    async fn project_id(&self, token: &str, name: &str) -> String {
        let b = self.expect(200, Method::GET, &format!("{}/projects?name={name}", self.ks), token, None).await;
        b["projects"][0]["id"].as_str().unwrap_or_else(|| panic!("{}: no project {name}: {b}", self.label)).into()
    }
}

/// Runs the same steps on the real side and the sim side.
macro_rules! both {
    (|$side:ident| $body:expr) => {{
        let real = {
            let $side = Side::real();
            $body
        };
        let sim = {
            let $side = Side::sim().await;
            $body
        };
        (real, sim)
    }};
}

// ---------------------------------------------------------------- Keystone

#[tokio::test(flavor = "multi_thread")]
async fn keystone_version_document_has_the_real_shape() {
    let (real, sim) = both!(|s| s.expect(200, Method::GET, &s.ks, "", None).await);
    assert_same_shape("GET /v3", &real, &sim, &[]);
    assert_eq!(sim["version"]["status"], "stable");
    assert!(sim["version"]["id"].as_str().unwrap().starts_with("v3."), "{sim}");
}

/// The catalog lists different services on each side (real: identity and
/// image; sim: all five) — the shape of the entries and endpoints is what
/// must match, and it does through the merged `catalog[]` paths.
const KNOWN_TOKEN: Known = &[];

#[tokio::test(flavor = "multi_thread")]
async fn project_scoped_password_token_has_the_real_shape() {
    let (real, sim) = both!(|s| {
        let (_, body) = s.admin_token().await;
        let t = &body["token"];
        assert_eq!(t["project"]["name"], "admin", "{}: {body}", s.label);
        assert_eq!(t["project"]["domain"]["id"], "default", "{}: {body}", s.label);
        assert!(t["roles"].as_array().unwrap().iter().any(|r| r["name"] == "admin"), "{}: {body}", s.label);
        assert!(t.get("system").is_none(), "{}: {body}", s.label);
        let identity = t["catalog"].as_array().unwrap().iter().find(|e| e["type"] == "identity");
        assert!(identity.is_some(), "{}: no identity in the catalog: {body}", s.label);
        body
    });
    assert_same_shape("project-scoped token", &real, &sim, KNOWN_TOKEN);
}

#[tokio::test(flavor = "multi_thread")]
async fn system_scoped_password_token_has_the_real_shape() {
    let (real, sim) = both!(|s| {
        let (_, body) = s.token("admin", json!({"system": {"all": true}})).await;
        assert_eq!(body["token"]["system"], json!({"all": true}), "{}: {body}", s.label);
        assert!(body["token"].get("project").is_none(), "{}: {body}", s.label);
        body
    });
    assert_same_shape("system-scoped token", &real, &sim, KNOWN_TOKEN);
}

#[tokio::test(flavor = "multi_thread")]
async fn tagged_project_with_extra_property_reads_back_flat_with_the_real_shape() {
    let ((rc, rg, rl), (sc, sg, sl)) = both!(|s| {
        let (tok, _) = s.admin_token().await;
        let tag = common::unique("tag");
        let name = common::unique("contract-proj");
        let created = s
            .expect(
                201,
                Method::POST,
                &format!("{}/projects", s.ks),
                &tok,
                Some(json!({"project": {"name": name, "domain_id": "default", "enabled": true,
                    "description": "contract test", "tags": ["caso", tag], "egi.VO": "vo.example.org"}})),
            )
            .await;
        let id = created["project"]["id"].as_str().unwrap().to_string();
        let got = s.expect(200, Method::GET, &format!("{}/projects/{id}", s.ks), &tok, None).await;
        assert_eq!(got["project"]["egi.VO"], "vo.example.org", "{}: extras come back flat: {got}", s.label);
        assert_eq!(got["project"]["tags"], json!(["caso", tag]), "{}: {got}", s.label);
        let list = s.expect(200, Method::GET, &format!("{}/projects?tags={tag}", s.ks), &tok, None).await;
        let names: Vec<_> = list["projects"].as_array().unwrap().iter().map(|p| p["name"].clone()).collect();
        assert_eq!(names, vec![json!(name)], "{}: ?tags= filters: {list}", s.label);
        (created, got, list)
    });
    assert_same_shape("POST /v3/projects", &rc, &sc, &[]);
    assert_same_shape("GET /v3/projects/{id}", &rg, &sg, &[]);
    assert_same_shape("GET /v3/projects?tags=", &rl, &sl, &[]);
}

#[tokio::test(flavor = "multi_thread")]
async fn get_user_has_the_real_shape() {
    let (real, sim) = both!(|s| {
        let (tok, body) = s.admin_token().await;
        let id = body["token"]["user"]["id"].as_str().unwrap().to_string();
        let user = s.expect(200, Method::GET, &format!("{}/users/{id}", s.ks), &tok, None).await;
        assert_eq!(user["user"]["name"], "admin", "{}: {user}", s.label);
        user
    });
    assert_same_shape("GET /v3/users/{id}", &real, &sim, &[]);
}

#[tokio::test(flavor = "multi_thread")]
async fn project_reader_listing_users_gets_the_real_403_body() {
    let (real, sim) = both!(|s| {
        let (tok, _) = s.token(s.reader.0, Side::project_scope(s.reader.1)).await;
        let body = s.expect(403, Method::GET, &format!("{}/users", s.ks), &tok, None).await;
        assert_eq!(body["error"]["code"], 403, "{}: {body}", s.label);
        assert_eq!(body["error"]["title"], "Forbidden", "{}: {body}", s.label);
        body
    });
    assert_same_shape("403 on GET /v3/users", &real, &sim, &[]);
}

/// The user assignments of a role-assignment list. Group assignments are left out: the sim has
/// no groups, and keystone_federation.rs makes some on the same real Keystone while this runs.
fn user_assignments(mut list: Value) -> Value {
    if let Some(a) = list.get_mut("role_assignments").and_then(Value::as_array_mut) {
        a.retain(|x| x.get("user").is_some());
    }
    list
}

#[tokio::test(flavor = "multi_thread")]
async fn role_assignments_list_has_the_real_shape() {
    let ((ra, rn), (sa, sn)) = both!(|s| {
        let (tok, _) = s.admin_token().await;
        let all = user_assignments(s.expect(200, Method::GET, &format!("{}/role_assignments", s.ks), &tok, None).await);
        let admin_project = s.project_id(&tok, "admin").await;
        let named = user_assignments(
            s.expect(
                200,
                Method::GET,
                &format!("{}/role_assignments?scope.project.id={admin_project}&include_names=true", s.ks),
                &tok,
                None,
            )
            .await,
        );
        let admin = named["role_assignments"].as_array().unwrap().iter().find(|a| a["user"]["name"] == "admin");
        assert_eq!(
            admin.map(|a| a["role"]["name"].clone()),
            Some(json!("admin")),
            "{}: admin holds admin on project admin: {named}",
            s.label
        );
        (all, named)
    });
    assert_same_shape("GET /v3/role_assignments", &ra, &sa, &[]);
    assert_same_shape("GET /v3/role_assignments?include_names", &rn, &sn, &[]);
}

#[tokio::test(flavor = "multi_thread")]
async fn federation_identity_provider_mapping_protocol_have_the_real_shape() {
    let (real, sim) = both!(|s| {
        let (tok, _) = s.admin_token().await;
        let fed = format!("{}/OS-FEDERATION", s.ks);
        let idp = common::unique("egi-checkin");
        let mapping = common::unique("egi-mapping");
        let rules = json!([{"local": [{"user": {"name": "{0}", "type": "ephemeral"},
                                        "group": {"name": "egi-users", "domain": {"id": "default"}}}],
                             "remote": [{"type": "OIDC-sub"}]}]);
        let mut out = BTreeMap::new();
        out.insert(
            "idp create",
            s.expect(
                201,
                Method::PUT,
                &format!("{fed}/identity_providers/{idp}"),
                &tok,
                Some(json!({"identity_provider": {"remote_ids": [format!("https://{idp}.example/oidc/")],
                    "enabled": true, "description": "EGI Check-in"}})),
            )
            .await,
        );
        out.insert("idp get", s.expect(200, Method::GET, &format!("{fed}/identity_providers/{idp}"), &tok, None).await);
        out.insert(
            "mapping create",
            s.expect(
                201,
                Method::PUT,
                &format!("{fed}/mappings/{mapping}"),
                &tok,
                Some(json!({"mapping": {"rules": rules}})),
            )
            .await,
        );
        out.insert("mapping get", s.expect(200, Method::GET, &format!("{fed}/mappings/{mapping}"), &tok, None).await);
        let proto_url = format!("{fed}/identity_providers/{idp}/protocols/openid");
        out.insert(
            "protocol create",
            s.expect(201, Method::PUT, &proto_url, &tok, Some(json!({"protocol": {"mapping_id": mapping}}))).await,
        );
        out.insert("protocol get", s.expect(200, Method::GET, &proto_url, &tok, None).await);
        assert_eq!(out["idp get"]["identity_provider"]["id"], json!(idp), "{}", s.label);
        assert_eq!(out["mapping get"]["mapping"]["rules"], rules, "{}", s.label);
        assert_eq!(out["protocol get"]["protocol"]["mapping_id"], json!(mapping), "{}", s.label);
        out
    });
    for (what, r) in &real {
        assert_same_shape(&format!("OS-FEDERATION {what}"), r, &sim[what], &[]);
    }
}

// ------------------------------------------------------------------ Glance

/// Creates a private qcow2 image with a custom property and two tags (`extra`
/// adds or overrides fields); returns its body.
async fn create_image(s: &Side, tok: &str, name: &str, extra: Value) -> Value {
    let mut body = json!({"name": name, "disk_format": "qcow2", "container_format": "bare",
        "visibility": "private", "ad:appid": "1234", "tags": ["egi", "appdb"]});
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    s.expect(201, Method::POST, &format!("{}/v2/images", s.glance), tok, Some(body)).await
}

#[tokio::test(flavor = "multi_thread")]
async fn glance_image_create_upload_get_patch_have_the_real_shape() {
    let (real, sim) = both!(|s| {
        let (tok, _) = s.admin_token().await;
        // raw: real Glance inspects uploads and refuses bytes that are not the
        // declared disk_format (415 for "qcow2" with raw bytes).
        let created = create_image(&s, &tok, &common::unique("EGI CentOS 9"), json!({"disk_format": "raw"})).await;
        assert_eq!(created["status"], "queued", "{}: {created}", s.label);
        let id = created["id"].as_str().unwrap().to_string();
        let bytes: Vec<u8> = (0..65536u32).map(|i| (i % 251) as u8).collect();
        let put = s
            .http
            .put(format!("{}/v2/images/{id}/file", s.glance))
            .header("X-Auth-Token", &tok)
            .header("Content-Type", "application/octet-stream")
            .body(bytes.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(put.status().as_u16(), 204, "{}: upload: {}", s.label, put.text().await.unwrap());
        let got = s.expect(200, Method::GET, &format!("{}/v2/images/{id}", s.glance), &tok, None).await;
        assert_eq!(got["status"], "active", "{}: {got}", s.label);
        assert_eq!(got["size"], 65536, "{}: {got}", s.label);
        assert_eq!(got["os_hash_algo"], "sha512", "{}: {got}", s.label);
        assert_eq!(got["ad:appid"], "1234", "{}: {got}", s.label);
        let patched = s
            .call_typed(
                Method::PATCH,
                &format!("{}/v2/images/{id}", s.glance),
                Some(&tok),
                Some(json!([{"op": "add", "path": "/vmcatcher_event_ad_mpuri", "value": "https://appdb.example/1"},
                           {"op": "replace", "path": "/ad:appid", "value": "5678"}])),
                "application/openstack-images-v2.1-json-patch",
            )
            .await;
        assert_eq!(patched.status, 200, "{}: PATCH: {}", s.label, patched.body);
        assert_eq!(patched.body["vmcatcher_event_ad_mpuri"], "https://appdb.example/1", "{}", s.label);
        assert_eq!(patched.body["ad:appid"], "5678", "{}", s.label);
        let download =
            s.http.get(format!("{}/v2/images/{id}/file", s.glance)).header("X-Auth-Token", &tok).send().await.unwrap();
        assert_eq!(download.status().as_u16(), 200, "{}", s.label);
        assert_eq!(download.bytes().await.unwrap().to_vec(), bytes, "{}: downloaded bytes", s.label);
        (created, got, patched.body)
    });
    assert_same_shape("POST /v2/images", &real.0, &sim.0, &[]);
    assert_same_shape("GET /v2/images/{id} (active)", &real.1, &sim.1, &[]);
    assert_same_shape("PATCH /v2/images/{id}", &real.2, &sim.2, &[]);
    assert_eq!(sim.1["checksum"], real.1["checksum"], "md5 of the same bytes");
    assert_eq!(sim.1["os_hash_value"], real.1["os_hash_value"], "sha512 of the same bytes");
}

#[tokio::test(flavor = "multi_thread")]
async fn glance_list_with_property_filter_pages_with_next() {
    let (real, sim) = both!(|s| {
        let (tok, _) = s.admin_token().await;
        let mark = common::unique("m");
        let mut ids = BTreeSet::new();
        for i in 0..3 {
            let img = create_image(&s, &tok, &format!("page-{i}"), json!({"fedsite_mark": mark})).await;
            ids.insert(img["id"].as_str().unwrap().to_string());
        }
        let first = s
            .expect(200, Method::GET, &format!("{}/v2/images?fedsite_mark={mark}&limit=2", s.glance), &tok, None)
            .await;
        assert_eq!(first["images"].as_array().unwrap().len(), 2, "{}: {first}", s.label);
        let next = first["next"].as_str().unwrap_or_else(|| panic!("{}: no `next`: {first}", s.label));
        assert!(next.starts_with("/v2/images?"), "{}: next is a path: {next}", s.label);
        let second = s.expect(200, Method::GET, &format!("{}{next}", s.glance), &tok, None).await;
        assert_eq!(second["images"].as_array().unwrap().len(), 1, "{}: {second}", s.label);
        assert!(second.get("next").is_none(), "{}: last page has no next: {second}", s.label);
        let seen: BTreeSet<String> = first["images"]
            .as_array()
            .unwrap()
            .iter()
            .chain(second["images"].as_array().unwrap())
            .map(|i| i["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(seen, ids, "{}: the two pages hold exactly the 3 marked images", s.label);
        (first, second)
    });
    assert_same_shape("GET /v2/images?prop=&limit= page 1", &real.0, &sim.0, &[]);
    assert_same_shape("GET /v2/images next page", &real.1, &sim.1, &[]);
}

#[tokio::test(flavor = "multi_thread")]
async fn glance_members_add_and_list_have_the_real_shape() {
    let (real, sim) = both!(|s| {
        let (tok, _) = s.admin_token().await;
        let member = s.project_id(&tok, s.reader.1).await;
        let img = create_image(&s, &tok, &common::unique("shared"), json!({"visibility": "shared"})).await;
        let id = img["id"].as_str().unwrap();
        let url = format!("{}/v2/images/{id}/members", s.glance);
        let added = s.expect(200, Method::POST, &url, &tok, Some(json!({"member": member}))).await;
        assert_eq!(added["status"], "pending", "{}: {added}", s.label);
        assert_eq!(added["member_id"], json!(member), "{}: {added}", s.label);
        let list = s.expect(200, Method::GET, &url, &tok, None).await;
        assert_eq!(list["members"].as_array().unwrap().len(), 1, "{}: {list}", s.label);
        (added, list)
    });
    assert_same_shape("POST /v2/images/{id}/members", &real.0, &sim.0, &[]);
    assert_same_shape("GET /v2/images/{id}/members", &real.1, &sim.1, &[]);
}

#[tokio::test(flavor = "multi_thread")]
async fn glance_image_schema_has_the_real_shape() {
    let (real, sim) = both!(|s| {
        let (tok, _) = s.admin_token().await;
        let schema = s.expect(200, Method::GET, &format!("{}/v2/schemas/image", s.glance), &tok, None).await;
        assert_eq!(schema["name"], "image", "{}", s.label);
        assert_eq!(schema["additionalProperties"]["type"], "string", "{}", s.label);
        schema
    });
    assert_same_shape("GET /v2/schemas/image", &real, &sim, &[]);
}
