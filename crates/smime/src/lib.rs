//! S/MIME as APEL SSM does it: clear-signing with the host certificate
//! (`openssl smime -sign -text`), optional AES-128 encryption to the server certificate,
//! and the receiver's side (decryption, chain + signature verification, signer DN, body).
//! Knows nothing of AMS, the spool or APEL: the sender (`messaging`), the HEPiX image-list
//! check (`imagesync`) and the host-certificate check (`sitecheck`) build on it.
//!
//! Line endings: `openssl smime -sign` writes the signed part with CRLF; SSM reads its output
//! with Python universal newlines, so what SSM publishes has LF only. [`Signer::sign`] returns
//! that published form; [`Signer::sign_raw`] returns openssl's own bytes. Both verify, since
//! S/MIME text signatures are computed over the CRLF-canonical content.

#![warn(missing_docs)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use openssl::asn1::Asn1Time;
use openssl::error::ErrorStack;
use openssl::nid::Nid;
use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::pkey::{PKey, Private};
use openssl::ssl::SslFiletype;
use openssl::stack::Stack;
use openssl::symm::Cipher;
use openssl::x509::store::{X509Lookup, X509Store, X509StoreBuilder};
use openssl::x509::{X509, X509NameRef, X509PurposeId};

/// Minimum remaining validity of the host certificate at start, in seconds.
pub const MIN_CERT_VALIDITY_SECS: i64 = 86_400;

/// Why a certificate, key or message could not be used; each names the file or the step.
#[derive(Debug, thiserror::Error)]
pub enum SmimeError {
    /// Reading or writing a file failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What the file is ("reading certificate", ...).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An OpenSSL call failed.
    #[error("{what}: {source}")]
    OpenSsl {
        /// The step ("signing", "parsing the key", ...).
        what: String,
        /// OpenSSL's error queue.
        #[source]
        source: ErrorStack,
    },
    /// The private key file is readable by group or others.
    #[error("key file {} is readable by group or others (mode {mode:04o}); refusing to use it (chmod 600)", path.display())]
    KeyReadable {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The key is not the certificate's.
    #[error("certificate {} and key {} do not match", cert.display(), key.display())]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// The private key is passphrase-protected.
    #[error("key file {} is encrypted: the sender needs it unencrypted (openssl pkey -in {} -out {}.plain, chmod 600 it, and use that)", path.display(), path.display(), path.display())]
    KeyEncrypted {
        /// The key file.
        path: PathBuf,
    },
    /// The certificate expires within the minimum validity.
    #[error("certificate {} expires at {not_after}, less than {min_secs} s from now", path.display())]
    CertExpiring {
        /// The certificate file.
        path: PathBuf,
        /// Its notAfter, as OpenSSL prints it.
        not_after: String,
        /// The validity it must have left, in seconds.
        min_secs: i64,
    },
    /// The file holds no PEM certificate.
    #[error("no certificate found in {}", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The message is not S/MIME this crate can read (the text says what is wrong).
    #[error("malformed S/MIME message: {0}")]
    Malformed(String),
}

type Result<T> = std::result::Result<T, SmimeError>;

fn ossl<T>(what: impl Into<String>, r: std::result::Result<T, ErrorStack>) -> Result<T> {
    r.map_err(|source| SmimeError::OpenSsl { what: what.into(), source })
}

/// S/MIME as SSM exchanges it is 7-bit text (base64 PKCS#7 around ASCII APEL records).
/// Anything else is refused before OpenSSL sees it: the `openssl` crate panics when an OpenSSL
/// error message quotes non-UTF-8 input (found by fuzzing, fuzz/regressions/smime).
fn ascii_only(smime: &[u8]) -> Result<()> {
    match smime.iter().position(|b| !b.is_ascii()) {
        None => Ok(()),
        Some(at) => Err(SmimeError::Malformed(format!(
            "byte {at} is not ASCII (0x{:02x}): S/MIME messages are 7-bit text",
            smime[at]
        ))),
    }
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|source| SmimeError::Io { what, path: path.to_owned(), source })
}

fn load_cert(path: &Path) -> Result<X509> {
    let pem = read("reading certificate", path)?;
    let certs = ossl(format!("parsing certificate {}", path.display()), X509::stack_from_pem(&pem))?;
    certs.into_iter().next().ok_or_else(|| SmimeError::NoCertificate { path: path.to_owned() })
}

/// The host identity that signs outgoing messages (and decrypts incoming ones).
pub struct Signer {
    cert: X509,
    key: PKey<Private>,
    cert_path: PathBuf,
    key_path: PathBuf,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("cert", &self.cert_path).field("key", &self.key_path).finish()
    }
}

impl Signer {
    /// Loads and checks the host certificate and key: the key file must not be group/world
    /// readable, the key must match the certificate, and the certificate must stay valid for at
    /// least [`MIN_CERT_VALIDITY_SECS`].
    pub fn new(cert_path: impl AsRef<Path>, key_path: impl AsRef<Path>) -> Result<Signer> {
        let (cert_path, key_path) = (cert_path.as_ref().to_owned(), key_path.as_ref().to_owned());
        let meta = fs::metadata(&key_path).map_err(|source| SmimeError::Io {
            what: "reading key",
            path: key_path.clone(),
            source,
        })?;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o044 != 0 {
            return Err(SmimeError::KeyReadable { path: key_path, mode });
        }
        let cert = load_cert(&cert_path)?;
        let key_pem = read("reading key", &key_path)?;
        // An empty pass phrase: OpenSSL would otherwise prompt on the terminal for an encrypted key.
        let key = match PKey::private_key_from_pem_passphrase(&key_pem, b"") {
            Ok(k) => k,
            Err(_) if key_pem.windows(9).any(|w| w == b"ENCRYPTED") => {
                return Err(SmimeError::KeyEncrypted { path: key_path });
            }
            Err(e) => {
                return Err(SmimeError::OpenSsl {
                    what: format!("parsing private key {}", key_path.display()),
                    source: e,
                });
            }
        };
        let public = ossl(format!("reading the public key of {}", cert_path.display()), cert.public_key())?;
        if !public.public_eq(&key) {
            return Err(SmimeError::KeyMismatch { cert: cert_path, key: key_path });
        }
        let limit =
            ossl("computing the certificate deadline", Asn1Time::from_unix(unix_now() + MIN_CERT_VALIDITY_SECS))?;
        if cert.not_after() <= limit {
            return Err(SmimeError::CertExpiring {
                path: cert_path,
                not_after: cert.not_after().to_string(),
                min_secs: MIN_CERT_VALIDITY_SECS,
            });
        }
        Ok(Signer { cert, key, cert_path, key_path })
    }

    /// The certificate's subject in OpenSSL's legacy one-line form (`/C=../O=../CN=..`).
    pub fn subject_dn(&self) -> String {
        legacy_dn(self.cert.subject_name())
    }

    /// The certificate's notAfter as OpenSSL prints it.
    pub fn not_after(&self) -> String {
        self.cert.not_after().to_string()
    }

    /// The signer's certificate.
    pub fn certificate(&self) -> &X509 {
        &self.cert
    }

    /// Exactly `openssl smime -sign -inkey key -signer cert -text` (detached, clear-signed,
    /// sha-256, signer certificate included), with line endings as openssl writes them.
    pub fn sign_raw(&self, message: &[u8]) -> Result<Vec<u8>> {
        let flags = Pkcs7Flags::DETACHED | Pkcs7Flags::TEXT;
        let empty = ossl("creating a certificate stack", Stack::<X509>::new())?;
        let p7 = ossl(
            format!("signing with {} and {}", self.cert_path.display(), self.key_path.display()),
            Pkcs7::sign(&self.cert, &self.key, &empty, message, flags),
        )?;
        ossl("writing the signed S/MIME message", p7.to_smime(message, flags))
    }

    /// The signed message as SSM publishes it: [`Signer::sign_raw`] with CRLF (and lone CR)
    /// turned into LF, as Python's universal newlines do.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        Ok(universal_newlines(&self.sign_raw(message)?))
    }

    /// Decrypts an `application/(x-)pkcs7-mime` enveloped message addressed to this host
    /// (`openssl smime -decrypt -recip cert -inkey key`), returning the inner text with LF endings.
    pub fn decrypt(&self, smime: &[u8]) -> Result<Vec<u8>> {
        ascii_only(smime)?;
        let (p7, _) = ossl("parsing the encrypted S/MIME message", Pkcs7::from_smime(smime))?;
        let out = ossl(
            format!("decrypting with {}", self.key_path.display()),
            p7.decrypt(&self.key, &self.cert, Pkcs7Flags::empty()),
        )?;
        Ok(universal_newlines(&out))
    }
}

/// A server certificate to encrypt signed messages to (SSM's optional `server_cert`).
pub struct Recipient {
    certs: Stack<X509>,
}

impl Recipient {
    /// The recipient whose certificate is the first PEM certificate of `path`.
    pub fn from_pem_file(path: impl AsRef<Path>) -> Result<Recipient> {
        let cert = load_cert(path.as_ref())?;
        let mut certs = ossl("creating a certificate stack", Stack::new())?;
        ossl("adding the recipient certificate", certs.push(cert))?;
        Ok(Recipient { certs })
    }

    /// `openssl smime -encrypt -aes128 <server cert>` of the signed text (LF endings in the result).
    pub fn encrypt(&self, signed: &[u8]) -> Result<Vec<u8>> {
        let p7 = ossl(
            "encrypting (aes-128-cbc) to the server certificate",
            Pkcs7::encrypt(&self.certs, signed, Cipher::aes_128_cbc(), Pkcs7Flags::empty()),
        )?;
        let out = ossl("writing the encrypted S/MIME message", p7.to_smime(signed, Pkcs7Flags::empty()))?;
        Ok(universal_newlines(&out))
    }
}

/// Whether a received message is encrypted (the test SSM's receiver uses).
pub fn is_encrypted(smime: &[u8]) -> bool {
    let s = String::from_utf8_lossy(smime);
    s.contains("application/pkcs7-mime") || s.contains("application/x-pkcs7-mime")
}

/// A verified message: who signed it and what they signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The signer's subject, OpenSSL legacy form `/C=XX/O=Test/CN=host`.
    pub signer_dn: String,
    /// The signed content without its MIME header (`Content-Type: text/plain` and the blank
    /// line), transfer-decoded (base64 / quoted-printable) and with LF line endings.
    pub body: Vec<u8>,
}

/// Verifies signatures and signer chains against trusted CAs (purpose "any", as
/// `openssl smime -verify -purpose any`; SSM checks the chain with `openssl verify`).
pub struct Verifier {
    store: X509Store,
}

impl Verifier {
    /// Trust anchors from a PEM file (one or more certificates) or an OpenSSL hashed
    /// directory (`-CApath`, e.g. /etc/grid-security/certificates).
    pub fn new(ca: impl AsRef<Path>) -> Result<Verifier> {
        let ca = ca.as_ref();
        let mut b = ossl("creating a certificate store", X509StoreBuilder::new())?;
        if ca.is_dir() {
            let lookup = ossl("adding a directory lookup", b.add_lookup(X509Lookup::hash_dir()))?;
            let dir =
                ca.to_str().ok_or_else(|| SmimeError::Malformed(format!("non-UTF-8 CA path {}", ca.display())))?;
            ossl(format!("using CA directory {}", ca.display()), lookup.add_dir(dir, SslFiletype::PEM))?;
        } else {
            let pem = read("reading CA file", ca)?;
            let certs = ossl(format!("parsing CA file {}", ca.display()), X509::stack_from_pem(&pem))?;
            if certs.is_empty() {
                return Err(SmimeError::NoCertificate { path: ca.to_owned() });
            }
            for c in certs {
                ossl(format!("adding a CA from {}", ca.display()), b.add_cert(c))?;
            }
        }
        ossl("setting the verification purpose", b.set_purpose(X509PurposeId::ANY))?;
        Ok(Verifier { store: b.build() })
    }

    /// Verifies a clear-signed (or opaque-signed) S/MIME message: signature over the content and
    /// the signer certificate's chain to a trusted CA. Encrypted messages must be decrypted
    /// first ([`is_encrypted`], [`Signer::decrypt`]).
    pub fn verify(&self, smime: &[u8]) -> Result<Verified> {
        ascii_only(smime)?;
        let (p7, content) = ossl("parsing the signed S/MIME message", Pkcs7::from_smime(smime))?;
        let none = ossl("creating a certificate stack", Stack::<X509>::new())?;
        let signers = ossl("finding the signer certificate", p7.signers(&none, Pkcs7Flags::empty()))?;
        let signer = signers.iter().next().ok_or_else(|| SmimeError::Malformed("no signer certificate".into()))?;
        let signer_dn = legacy_dn(signer.subject_name());
        let mut out = Vec::new();
        ossl(
            format!("verifying the signature of {signer_dn}"),
            p7.verify(&none, &self.store, content.as_deref(), Some(&mut out), Pkcs7Flags::empty()),
        )?;
        Ok(Verified { signer_dn, body: strip_mime_header(&universal_newlines(&out))? })
    }
}

/// OpenSSL's `X509_NAME_oneline` form: `/SN=value` per entry, bytes outside printable ASCII as `\xHH`.
pub fn legacy_dn(name: &X509NameRef) -> String {
    let mut s = String::new();
    for e in name.entries() {
        let obj = e.object();
        s.push('/');
        match obj.nid() {
            Nid::UNDEF => s.push_str(&obj.to_string()),
            nid => s.push_str(nid.short_name().unwrap_or("UNKNOWN")),
        }
        s.push('=');
        for &b in e.data().as_slice() {
            if (b' '..=b'~').contains(&b) {
                s.push(b as char);
            } else {
                s.push_str(&format!("\\x{b:02X}"));
            }
        }
    }
    s
}

/// CRLF and lone CR → LF (Python universal newlines, which SSM's openssl pipes use).
pub fn universal_newlines(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\r' {
            out.push(b'\n');
            if b.get(i + 1) == Some(&b'\n') {
                i += 1;
            }
        } else {
            out.push(b[i]);
        }
        i += 1;
    }
    out
}

/// Splits the inner MIME header from the body at the first blank line, decoding a base64 or
/// quoted-printable transfer encoding as SSM's receiver does. Content without a header (no
/// blank line, or a first line that is not a header) is returned unchanged.
fn strip_mime_header(content: &[u8]) -> Result<Vec<u8>> {
    let Some(pos) = content.windows(2).position(|w| w == b"\n\n") else {
        return Ok(content.to_vec());
    };
    let headers = String::from_utf8_lossy(&content[..pos]).to_ascii_lowercase();
    if !headers.lines().all(|l| l.contains(':') || l.starts_with([' ', '\t'])) || !headers.contains("content-") {
        return Ok(content.to_vec());
    }
    let body = &content[pos + 2..];
    if headers.contains("content-transfer-encoding: base64") {
        let clean: Vec<u8> = body.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
        return base64::engine::general_purpose::STANDARD
            .decode(clean)
            .map_err(|e| SmimeError::Malformed(format!("base64 body: {e}")));
    }
    if headers.contains("content-transfer-encoding: quoted-printable") {
        return Ok(quoted_printable_decode(body));
    }
    Ok(body.to_vec())
}

fn quoted_printable_decode(b: &[u8]) -> Vec<u8> {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' {
            if b.get(i + 1) == Some(&b'\n') {
                i += 2; // soft line break
                continue;
            }
            if let (Some(h), Some(l)) = (b.get(i + 1).copied().and_then(hex), b.get(i + 2).copied().and_then(hex)) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}
