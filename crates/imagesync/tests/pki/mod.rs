//! Test PKI for HEPiX image lists: a CA (written as an OpenSSL hashed CA
//! directory), endorser certificates, and signing a list as vmcaster does
//! (`openssl smime -sign -text`, via smime::Signer).
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::BasicConstraints;
use openssl::x509::{X509, X509NameBuilder};

pub struct Pki {
    pub dir: PathBuf,
    pub ca_dir: PathBuf,
    ca: X509,
    ca_key: PKey<Private>,
    serial: u32,
}

pub const CA_DN: &str = "/DC=org/DC=test/CN=Test IGTF CA";

fn name(entries: &[(&str, &str)]) -> openssl::x509::X509Name {
    let mut n = X509NameBuilder::new().unwrap();
    for (k, v) in entries {
        n.append_entry_by_text(k, v).unwrap();
    }
    n.build()
}

fn build(
    subject: &openssl::x509::X509Name,
    key: &PKey<Private>,
    serial: u32,
    is_ca: bool,
    issuer: Option<(&X509, &PKey<Private>)>,
) -> X509 {
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&BigNum::from_u32(serial).unwrap().to_asn1_integer().unwrap()).unwrap();
    b.set_subject_name(subject).unwrap();
    b.set_issuer_name(issuer.map_or(subject, |(c, _)| c.subject_name())).unwrap();
    b.set_pubkey(key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap()).unwrap();
    b.set_not_after(&Asn1Time::days_from_now(30).unwrap()).unwrap();
    if is_ca {
        b.append_extension(BasicConstraints::new().critical().ca().build().unwrap()).unwrap();
    }
    b.sign(issuer.map_or(key, |(_, k)| k), MessageDigest::sha256()).unwrap();
    b.build()
}

fn key() -> PKey<Private> {
    PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap()
}

impl Pki {
    pub fn new(dir: &Path) -> Pki {
        let ca_key = key();
        let ca = build(&name(&[("DC", "org"), ("DC", "test"), ("CN", "Test IGTF CA")]), &ca_key, 1, true, None);
        let ca_dir = dir.join("certificates");
        std::fs::create_dir_all(&ca_dir).unwrap();
        // The OpenSSL hashed-directory name of the CA (as c_rehash writes it).
        let hash = ca.subject_name_hash();
        std::fs::write(ca_dir.join(format!("{hash:08x}.0")), ca.to_pem().unwrap()).unwrap();
        Pki { dir: dir.to_path_buf(), ca_dir, ca, ca_key, serial: 2 }
    }

    /// A signer `/DC=org/DC=test/O=Hosts/CN=<cn>` issued by the CA: its DN and a signer.
    pub fn signer(&mut self, cn: &str) -> (String, smime::Signer) {
        let k = key();
        self.serial += 1;
        let cert = build(
            &name(&[("DC", "org"), ("DC", "test"), ("O", "Hosts"), ("CN", cn)]),
            &k,
            self.serial,
            false,
            Some((&self.ca, &self.ca_key)),
        );
        let cp = self.dir.join(format!("{cn}.pem"));
        let kp = self.dir.join(format!("{cn}.key"));
        std::fs::write(&cp, cert.to_pem().unwrap()).unwrap();
        std::fs::write(&kp, k.private_key_to_pem_pkcs8().unwrap()).unwrap();
        std::fs::set_permissions(&kp, std::fs::Permissions::from_mode(0o600)).unwrap();
        (format!("/DC=org/DC=test/O=Hosts/CN={cn}"), smime::Signer::new(&cp, &kp).unwrap())
    }
}

/// A HEPiX image list endorsed by `dn`, expiring at `expires`, with `images`
/// (each a `hv:image` object).
pub fn image_list(dn: &str, expires: &str, vo: Option<&str>, images: Vec<serde_json::Value>) -> serde_json::Value {
    let mut l = serde_json::json!({
        "dc:identifier": "5b5e7b9c-0b6e-4b4e-9d7e-6e1d4b0c9a11",
        "dc:title": "Test VO image list",
        "dc:description": "images for the tests",
        "dc:source": "https://appdb.example",
        "hv:uri": "https://vmcaster.example/store/vo/test/image.list",
        "hv:version": "20230501",
        "dc:date:created": "2023-05-01T00:00:00Z",
        "dc:date:expires": expires,
        "hv:endorser": {"hv:x509": {"dc:creator": "AppDB", "hv:dn": dn, "hv:ca": CA_DN, "hv:email": "appdb@example.org"}},
        "hv:images": images.into_iter().map(|i| serde_json::json!({"hv:image": i})).collect::<Vec<_>>(),
    });
    if let Some(vo) = vo {
        l["ad:vo"] = serde_json::json!(vo);
    }
    serde_json::json!({"hv:imagelist": l})
}

/// One `hv:image` entry.
pub fn image(id: &str, title: &str, uri: &str, sha512: &str, size: u64, format: &str) -> serde_json::Value {
    serde_json::json!({
        "dc:identifier": id, "dc:title": title, "dc:description": format!("{title} image"),
        "ad:mpuri": format!("https://appdb.example/store/vm/image/{id}:1/"), "ad:group": "General group",
        "ad:user:fullname": "Tester", "ad:user:guid": "g", "ad:user:uri": "https://appdb.example/u",
        "hv:uri": uri, "hv:size": size, "hv:format": format, "hv:hypervisor": "QEMU,KVM", "hv:version": "1",
        "sl:checksum:sha512": sha512, "sl:arch": "x86_64", "sl:os": "Linux", "sl:osname": "CentOS",
        "sl:osversion": "9", "sl:comments": ""
    })
}
