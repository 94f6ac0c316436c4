//! Host certificate checks (the one SSM/`fedsite send` signs with): the key
//! matches the certificate, the key file is readable only by its owner, and
//! the certificate does not expire within 30 days.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use openssl::pkey::PKey;
use openssl::x509::X509;

use crate::check::Check;
use crate::config::CheckConfig;
use crate::error::KeyError;

pub const WARN_DAYS: i64 = 30;

/// notAfter of a certificate as a UTC time.
pub fn not_after(cert: &X509) -> Option<DateTime<Utc>> {
    let epoch = openssl::asn1::Asn1Time::from_unix(0).ok()?;
    let d = epoch.diff(cert.not_after()).ok()?;
    DateTime::from_timestamp(d.days as i64 * 86_400 + d.secs as i64, 0)
}

/// A PEM private key, never prompting: OpenSSL's default for an encrypted key
/// is to ask for the pass phrase on the terminal, which `fedsite check` (or
/// cron) must not do; SSM needs the key unencrypted anyway.
pub fn read_private_key(pem: &[u8], origin: &str) -> Result<PKey<openssl::pkey::Private>, KeyError> {
    PKey::private_key_from_pem_passphrase(pem, b"").map_err(|source| {
        if pem.windows(9).any(|w| w == b"ENCRYPTED") {
            KeyError::Encrypted { origin: origin.to_string() }
        } else {
            KeyError::NotPem { origin: origin.to_string(), source }
        }
    })
}

/// The certificate family.
pub fn run(cfg: &CheckConfig) -> Vec<Check> {
    let (Some(cert_path), Some(key_path)) = (&cfg.cert, &cfg.key) else {
        return vec![Check::skipped(
            "certificate",
            "the host certificate and key used for signing",
            "no certificate given (--cert and --key, or --sender-config)",
        )];
    };
    let mut out = Vec::new();
    let cert = std::fs::read(cert_path).map_err(|e| format!("reading {}: {e}", cert_path.display())).and_then(|pem| {
        X509::from_pem(&pem).map_err(|e| format!("{} is not a PEM certificate: {e}", cert_path.display()))
    });
    let cert = match cert {
        Ok(c) => c,
        Err(e) => {
            out.push(Check::critical(
                "certificate.read",
                format!("{} is a readable PEM certificate", cert_path.display()),
                e,
                "install the host certificate (IGTF-accredited) at that path, e.g. /etc/grid-security/hostcert.pem",
            ));
            return out;
        }
    };
    // Permissions first: a world-readable key is a finding even if it parses.
    out.push(key_mode(key_path));
    let key = std::fs::read(key_path)
        .map_err(|e| format!("reading {}: {e}", key_path.display()))
        .and_then(|pem| read_private_key(&pem, &key_path.display().to_string()).map_err(|e| e.to_string()));
    let tested = format!("{} is the private key of {}", key_path.display(), cert_path.display());
    out.push(match key {
        Err(e) => Check::critical("certificate.key-matches", tested, e, "install the host key that belongs to the certificate"),
        Ok(k) => match cert.public_key() {
            Ok(p) if p.public_eq(&k) => Check::ok("certificate.key-matches", tested, "the key matches the certificate"),
            Ok(_) => Check::critical(
                "certificate.key-matches",
                tested,
                "the key does not match the certificate: messages would not verify",
                "install the key the certificate was issued for (compare `openssl x509 -noout -pubkey` with `openssl pkey -pubout`)",
            ),
            Err(e) => Check::critical("certificate.key-matches", tested, format!("reading the certificate's public key: {e}"), "re-install the certificate"),
        },
    });
    let tested = format!("{} does not expire within {WARN_DAYS} days", cert_path.display());
    let subject = smime::legacy_dn(cert.subject_name());
    out.push(match not_after(&cert) {
        None => Check::critical("certificate.expiry", tested, "cannot read the certificate's notAfter", "re-install the certificate"),
        Some(t) => {
            let left = t - cfg.now;
            let msg = format!("{subject} expires {} ({} days left)", t.format("%Y-%m-%dT%H:%M:%SZ"), left.num_days());
            let fix = "renew the host certificate with your CA (IGTF) and install it with its key; EGI refuses messages signed with an expired certificate";
            if left <= Duration::days(1) {
                Check::critical("certificate.expiry", tested, msg, fix)
            } else if left < Duration::days(WARN_DAYS) {
                Check::warning("certificate.expiry", tested, msg, fix)
            } else {
                Check::ok("certificate.expiry", tested, msg)
            }
        }
    });
    out
}

fn key_mode(path: &Path) -> Check {
    let tested = format!("{} is readable by its owner only (0600 or 0400)", path.display());
    match std::fs::metadata(path) {
        Err(e) => Check::critical(
            "certificate.key-permissions",
            tested,
            format!("{}: {e}", path.display()),
            "install the host key at that path",
        ),
        Ok(m) => {
            let mode = m.permissions().mode() & 0o777;
            if mode & 0o077 == 0 {
                Check::ok("certificate.key-permissions", tested, format!("mode {mode:04o}"))
            } else {
                Check::critical(
                    "certificate.key-permissions",
                    tested,
                    format!("mode {mode:04o}: group or others can access the host key"),
                    format!("chmod 600 {}", path.display()),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_encrypted_key_is_refused_without_a_prompt() {
        let key = PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
        let plain = key.private_key_to_pem_pkcs8().unwrap();
        assert!(read_private_key(&plain, "hostkey.pem").unwrap().public_eq(&key));
        let enc = key.private_key_to_pem_pkcs8_passphrase(openssl::symm::Cipher::aes_128_cbc(), b"secret").unwrap();
        let e = read_private_key(&enc, "hostkey.pem").err().unwrap().to_string();
        assert!(e.starts_with("hostkey.pem is an encrypted private key: the sender needs it unencrypted"), "{e}");
        let e = read_private_key(b"not a key", "k.pem").err().unwrap().to_string();
        assert!(e.starts_with("k.pem is not a PEM private key: "), "{e}");
    }
}
