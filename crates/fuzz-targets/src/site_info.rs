//! What `cloudinfo` reads from outside: GOCDB's `get_service` XML, Glance image properties
//! (`APPLIANCE_ATTRIBUTES` is JSON inside a string), flavor extra specs (GPU / InfiniBand keys
//! with numeric values), the site YAML, the DER names of the endpoint's TLS handshake; and its
//! GLUE JSON writer, whose output must parse back.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use cloudinfo::glue::{Document, Glue};
use cloudinfo::{Fixes, FlavorKeys, ImageKeys, Options, gocdb};
use pyjson::{self, Json};
use serde_json::{Value, json};

/// GOCDB `get_service` answers: every URL of a parsed service finds a service, the first one
/// listing a similar URL, and URL similarity is symmetric.
pub fn gocdb_xml(data: &[u8]) {
    let Ok(xml) = std::str::from_utf8(data) else { return };
    let Ok(services) = gocdb::parse_services(xml) else { return };
    let urls: Vec<&str> = services.iter().flat_map(|s| s.urls.iter().map(String::as_str)).take(16).collect();
    for u in &urls {
        let first =
            services.iter().find(|s| s.urls.iter().any(|x| gocdb::urls_similar(u, x))).expect("a URL matches itself");
        let found = gocdb::find(&services, u).expect("a listed URL is found");
        assert_eq!(found.get("gocdb_id"), Some(&Json::from(first.primary_key.as_str())));
        for v in &urls {
            assert_eq!(gocdb::urls_similar(u, v), gocdb::urls_similar(v, u), "{u:?} ~ {v:?}");
        }
    }
}

fn options(fixes: bool) -> &'static Options {
    static O: OnceLock<[Options; 2]> = OnceLock::new();
    let o = O.get_or_init(|| {
        let yaml = "clouds:\n  fuzz:\n    auth:\n      auth_url: https://keystone.example:5000/v3\n      username: u\n      password: p\n      project_id: p1\n      user_domain_name: Default\n";
        let cloud = openstack::CloudConfig::from_clouds_yaml(yaml, None, "fuzz", "clouds.yaml").expect("a cloud");
        let mut opts = Options::new(cloud, "password");
        opts.creation_time = chrono::DateTime::from_timestamp(1_790_000_000, 0).expect("a time");
        let mut all = opts.clone();
        all.fixes = Fixes { manager_sizes: true, extra_properties: true, share_error_details: true };
        [opts, all]
    });
    &o[fixes as usize]
}

const ENDPOINT: &str = "https://keystone.example:5000/v3";
const GLANCE: &str = "https://glance.example:9292";

/// The CA facts of the endpoint's TLS handshake (`cloudinfo::tls`): the bytes as a DER
/// certificate (its issuer) and as a DER `Name` (the client CAs a server lists); the one-line
/// DN is printable ASCII (`\xHH` for the rest) and names each attribute after a `/`.
fn tls_names(data: &[u8]) {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let check = |dn: &str| {
        assert!(dn.bytes().all(|b| (b' '..=b'~').contains(&b)), "{dn:?}");
        assert!(dn.is_empty() || dn.starts_with('/'), "{dn:?}");
    };
    if let Some(dn) = cloudinfo::tls::oneline_der(data) {
        check(&dn);
    }
    if let Ok((_, cert)) = X509Certificate::from_der(data) {
        check(&cloudinfo::tls::oneline(cert.issuer()));
        if let Some(dn) = cloudinfo::tls::oneline_der(cert.subject().as_raw()) {
            assert_eq!(dn, cloudinfo::tls::oneline(cert.subject()));
        }
    }
}

/// Glance images and Nova flavors as discovery reads them, then the GLUE document they make:
/// the bytes as an image (JSON), else as the value of every property read (`APPLIANCE_ATTRIBUTES`,
/// OS fields, GPU keys); as a flavor, else as every extra spec. The rendered document must be
/// JSON that `serde_json` reads back to the same strings and numbers; `pyjson` round-trips;
/// the bytes as a site YAML parse or fail cleanly, and as the DER names of a TLS handshake.
pub fn glue_json(data: &[u8]) {
    tls_names(data);
    let text = String::from_utf8_lossy(data);
    let text = text.as_ref();
    if let Ok(v) = pyjson::parse(text) {
        let out = pyjson::dumps(&v);
        assert!(out.is_ascii(), "dumps is ensure_ascii: {out}");
        assert_eq!(pyjson::parse(&out).expect("dumps output parses"), v, "pyjson round trip: {out}");
        serde_json::from_str::<Value>(&out).expect("dumps output is JSON");
    }
    if let Ok(site) = cloudinfo::SiteConfig::parse(text, "site.yaml") {
        for vo in site.vos() {
            // Each VO's auth merged over the base credentials, or refused naming the key.
            if let Err(e) = cloudinfo::discover::vo_config(&options(false).cloud, vo) {
                assert!(e.to_string().starts_with(&format!("vos[{}].auth: ", vo.name)), "{e}");
            }
        }
    }
    // The same file as the image sync reads it: every VO maps to a non-empty project.
    let site = crate::scratch().join("site.yaml");
    std::fs::write(&site, data).expect("writing the scratch site.yaml");
    if let Ok((images, vos)) = imagesync::config::read_site(&site) {
        assert!(vos.values().all(|p| !p.is_empty()));
        let _ = imagesync::SyncConfig::build(Some((images, vos)), None);
    }

    let image: openstack::glance::Image = serde_json::from_slice(data).unwrap_or_else(|_| {
        let keys = ImageKeys::default();
        let mut m = serde_json::Map::new();
        for k in [
            "APPLIANCE_ATTRIBUTES",
            "vmcatcher_event_ad_mpuri",
            "vmcatcher_event_dc_description",
            "os_distro",
            "os_version",
            "architecture",
        ] {
            m.insert(k.into(), Value::String(text.into()));
        }
        for k in [keys.gpu_driver, keys.gpu_cuda, keys.gpu_cudnn] {
            m.insert(k, Value::String(text.into()));
        }
        m.insert("id".into(), json!("img-1"));
        m.insert("name".into(), Value::String(text.into()));
        m.insert("file".into(), Value::String(text.into()));
        serde_json::from_value(Value::Object(m)).expect("an image")
    });
    let flavor: openstack::nova::Flavor = serde_json::from_slice(data).unwrap_or_else(|_| {
        serde_json::from_value(json!({"id": "f1", "name": text, "ram": 2048, "vcpus": 2, "disk": 20}))
            .expect("a flavor")
    });
    let specs = flavor.extra_specs.clone().unwrap_or_else(|| {
        let k = FlavorKeys::default();
        [k.infiniband, k.gpu_number, k.gpu_vendor, k.gpu_model, k.gpu_memory, k.gpu_virt_type]
            .into_iter()
            .map(|k| (k, text.to_string()))
            .collect::<BTreeMap<_, _>>()
    });
    for fixes in [false, true] {
        let opts = options(fixes);
        let mut doc = Document::default();
        let img = cloudinfo::discover::image_object(opts, ENDPOINT, &image, "share-1", GLANCE);
        if let Some(img) = &img {
            doc.add(Glue::Image(img.clone()));
        }
        let (itype, acc) = cloudinfo::discover::instance_type_object(opts, ENDPOINT, &flavor, &specs, "share-1");
        assert_eq!(itype.cpu, i64::from(flavor.vcpus));
        doc.add(Glue::InstanceType(itype.clone()));
        if let Some(a) = &acc {
            doc.add(Glue::Accelerator(a.clone()));
        }
        let rendered = doc.render();
        let back: Value = serde_json::from_str(&rendered)
            .unwrap_or_else(|e| panic!("the GLUE document is not JSON ({e}): {rendered}"));
        if let Some(img) = &img {
            let o = &back["CloudComputingImage"][0];
            assert_eq!(o["ID"], json!(image.id));
            assert_eq!(o.get("Name").and_then(Value::as_str), image.name.as_deref());
            assert_eq!(o["OSName"].as_str(), Some(img.os_name.as_str()));
            assert_eq!(o.get("Description").and_then(Value::as_str), img.description.as_deref());
            assert_eq!(o.get("MarketplaceURL").and_then(Value::as_str), img.marketplace_url.as_deref());
            // OtherInfo holds APPLIANCE_ATTRIBUTES as they were (serde_json's order aside).
            if let Some(Value::String(attrs)) = image.properties.get("APPLIANCE_ATTRIBUTES")
                && let Ok(Value::Object(want)) = serde_json::from_str::<Value>(attrs)
            {
                let got = o.get("OtherInfo").and_then(Value::as_object).cloned().unwrap_or_default();
                for (k, v) in &want {
                    if !["base_mpuri", "gpu_driver", "gpu_cuda", "gpu_cudnn"].contains(&k.as_str()) {
                        assert!(same_json(got.get(k), Some(v)), "OtherInfo {k}: {:?} != {v:?}", got.get(k));
                    }
                }
            }
        }
        let t = &back["CloudComputingInstanceType"][0];
        assert_eq!(t["ID"], json!(flavor.id));
        assert_eq!(t["Name"], json!(flavor.name));
        assert_eq!(t["CPU"].as_i64(), Some(itype.cpu));
        assert_eq!(t["RAM"].as_i64(), Some(itype.ram));
        assert_eq!(t["Disk"].as_i64(), Some(itype.disk));
        // Sizes are published as they are, capped at i64::MAX (never wrapped).
        let cap = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        assert_eq!(itype.ram, cap(flavor.ram), "RAM {} published as {}", flavor.ram, itype.ram);
        assert_eq!(itype.disk, cap(flavor.disk), "Disk {} published as {}", flavor.disk, itype.disk);
        let number = specs
            .get(&opts.flavor_keys.gpu_number)
            .filter(|v| !v.is_empty())
            .and_then(|n| n.trim().parse::<i64>().ok());
        assert_eq!(acc.as_ref().map(|a| a.number), number);
        if let Some(a) = &acc {
            let o = &back["CloudComputingVirtualAccelerator"][0];
            assert_eq!(o["Number"].as_i64(), Some(a.number));
            assert_eq!(o.get("Vendor").and_then(Value::as_str), a.vendor.as_deref());
            assert_eq!(o.get("Memory").and_then(Value::as_i64), a.memory);
        }
    }
}

/// Equal JSON values, numbers compared as numbers (pyjson writes `1.0` where serde_json reads 1.0).
fn same_json(a: Option<&Value>, b: Option<&Value>) -> bool {
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => x.as_f64() == y.as_f64() || x == y,
        (Some(Value::Array(x)), Some(Value::Array(y))) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_json(Some(p), Some(q)))
        }
        (Some(Value::Object(x)), Some(Value::Object(y))) => {
            x.len() == y.len() && x.iter().all(|(k, v)| same_json(Some(v), y.get(k)))
        }
        (x, y) => x == y,
    }
}
