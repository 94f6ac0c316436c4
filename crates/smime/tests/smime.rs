//! S/MIME signing, verification and encryption against the real `openssl` CLI and the
//! real SSM 4.0 capture (crates/messaging/tests/data/ssm-4.0; its README says how it was made).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::BasicConstraints;
use openssl::x509::{X509, X509NameBuilder};
use smime::{Recipient, Signer, SmimeError, Verifier};

const MESSAGE: &str =
    "APEL-cloud-message: v0.4\nVMUUID: 11111111-1111-4111-8111-111111111111\nSiteName: TEST-SITE\n%%\n";

fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../messaging/tests/data/ssm-4.0")
}

/// The vector's key is checked in world-readable: copy it with mode 0600.
fn private_copy(dir: &Path, src: &Path) -> PathBuf {
    let dst = dir.join(src.file_name().unwrap());
    std::fs::copy(src, &dst).unwrap();
    std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o600)).unwrap();
    dst
}

fn vector_signer(dir: &Path) -> Signer {
    let key = private_copy(dir, &vectors().join("test-sender-key.pem"));
    Signer::new(vectors().join("test-sender-cert.pem"), key).unwrap()
}

fn key() -> PKey<Private> {
    PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap()
}

/// A certificate for `cn` valid from now-60 s for `secs`, issued by `issuer` (self-signed if None).
fn cert(cn: &str, key: &PKey<Private>, secs: i64, is_ca: bool, issuer: Option<(&X509, &PKey<Private>)>) -> X509 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("C", "XX").unwrap();
    name.append_entry_by_text("O", "Test").unwrap();
    name.append_entry_by_text("CN", cn).unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&BigNum::from_u32(rand_serial()).unwrap().to_asn1_integer().unwrap()).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(issuer.map(|(c, _)| c.subject_name()).unwrap_or(&name)).unwrap();
    b.set_not_before(&Asn1Time::from_unix(now - 60).unwrap()).unwrap();
    b.set_not_after(&Asn1Time::from_unix(now + secs).unwrap()).unwrap();
    b.set_pubkey(key).unwrap();
    let bc = if is_ca { BasicConstraints::new().critical().ca().build() } else { BasicConstraints::new().build() };
    b.append_extension(bc.unwrap()).unwrap();
    b.sign(issuer.map(|(_, k)| k).unwrap_or(key), MessageDigest::sha256()).unwrap();
    b.build()
}

fn rand_serial() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() | 1
}

fn write_pem(dir: &Path, name: &str, pem: &[u8], mode: u32) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, pem).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p
}

/// A CA and a host cert/key signed by it, written to `dir`; returns (ca path, cert path, key path).
fn make_pki(dir: &Path, cn: &str, validity: i64) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = key();
    let ca = cert("fedsite test CA 2", &ca_key, 86_400 * 30, true, None);
    let host_key = key();
    let host = cert(cn, &host_key, validity, false, Some((&ca, &ca_key)));
    (
        write_pem(dir, &format!("{cn}-ca.pem"), &ca.to_pem().unwrap(), 0o644),
        write_pem(dir, &format!("{cn}-cert.pem"), &host.to_pem().unwrap(), 0o644),
        write_pem(dir, &format!("{cn}-key.pem"), &host_key.private_key_to_pem_pkcs8().unwrap(), 0o600),
    )
}

fn openssl_verify(ca: &Path, smime: &[u8], dir: &Path) -> std::process::Output {
    let f = dir.join("msg.smime");
    std::fs::write(&f, smime).unwrap();
    Command::new("openssl")
        .args(["smime", "-verify", "-purpose", "any", "-CAfile"])
        .arg(ca)
        .arg("-in")
        .arg(&f)
        .output()
        .expect("openssl binary")
}

#[test]
fn signed_message_has_the_structure_of_openssl_smime_sign_text() {
    let dir = tempfile::tempdir().unwrap();
    let signed = String::from_utf8(vector_signer(dir.path()).sign(MESSAGE.as_bytes()).unwrap()).unwrap();
    assert!(!signed.contains('\r'), "published form has LF endings only");
    let lines: Vec<&str> = signed.split('\n').collect();
    assert_eq!(lines[0], "MIME-Version: 1.0");
    let boundary = lines[1]
        .strip_prefix("Content-Type: multipart/signed; protocol=\"application/x-pkcs7-signature\"; micalg=\"sha-256\"; boundary=\"")
        .and_then(|r| r.strip_suffix('"'))
        .expect("multipart/signed header");
    assert!(
        boundary.starts_with("----") && boundary.len() == 36 && boundary[4..].chars().all(|c| c.is_ascii_hexdigit())
    );
    let head = format!(
        "MIME-Version: 1.0\n{}\n\nThis is an S/MIME signed message\n\n--{boundary}\nContent-Type: text/plain\n\n{MESSAGE}\n--{boundary}\n\
         Content-Type: application/x-pkcs7-signature; name=\"smime.p7s\"\nContent-Transfer-Encoding: base64\n\
         Content-Disposition: attachment; filename=\"smime.p7s\"\n\n",
        lines[1]
    );
    assert!(signed.starts_with(&head), "got:\n{signed}");
    let rest = &signed[head.len()..];
    let tail = format!("\n\n--{boundary}--\n\n");
    assert!(rest.ends_with(&tail));
    let b64: Vec<&str> = rest[..rest.len() - tail.len()].split('\n').collect();
    assert!(b64.len() > 10);
    assert!(b64[..b64.len() - 1].iter().all(|l| l.len() == 64), "64-column base64 lines");
    assert!(b64.last().unwrap().len() <= 64);

    // Same shape as the real SSM capture (modulo boundary, message and signature).
    let capture = std::fs::read_to_string(vectors().join("published-data.smime")).unwrap();
    let cap_boundary = capture.split("boundary=\"").nth(1).unwrap()[..36].to_string();
    let capture = capture.replace(&cap_boundary, boundary);
    let cap: Vec<&str> = capture.split('\n').collect();
    assert_eq!(cap[..7], lines[..7], "headers, preamble and text part header as in the capture");
    let sig_head = |l: &[&str]| {
        l.iter().skip_while(|s| !s.ends_with("smime.p7s\"")).take(4).map(|s| s.to_string()).collect::<Vec<_>>()
    };
    assert_eq!(sig_head(&cap), sig_head(&lines));
}

#[test]
fn raw_form_is_byte_for_byte_what_the_cli_writes_apart_from_boundary_and_signature() {
    let dir = tempfile::tempdir().unwrap();
    let signer = vector_signer(dir.path());
    let raw = String::from_utf8(signer.sign_raw(MESSAGE.as_bytes()).unwrap()).unwrap();
    let key = dir.path().join("test-sender-key.pem");
    let mut child = Command::new("openssl")
        .args(["smime", "-sign", "-text", "-inkey"])
        .arg(&key)
        .arg("-signer")
        .arg(vectors().join("test-sender-cert.pem"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(MESSAGE.as_bytes()).unwrap();
    let cli = String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap();
    // Everything up to the base64 signature is identical once the boundaries are aligned.
    let bnd = |s: &str| s.split("boundary=\"").nth(1).unwrap()[..36].to_string();
    let cli = cli.replace(&bnd(&cli), &bnd(&raw));
    let cut = |s: &str| s[..s.find("filename=\"smime.p7s\"").unwrap()].to_string();
    assert_eq!(cut(&raw), cut(&cli));
    assert!(raw.contains("Content-Type: text/plain\r\n\r\nAPEL-cloud-message: v0.4\r\n"));
    assert_eq!(raw.len(), cli.len(), "same signature size (same certificate, key, attributes)");
}

#[test]
fn openssl_cli_verifies_our_signature_and_yields_the_text_part() {
    let dir = tempfile::tempdir().unwrap();
    let signer = vector_signer(dir.path());
    let ca = vectors().join("test-ca.pem");
    for signed in [signer.sign(MESSAGE.as_bytes()).unwrap(), signer.sign_raw(MESSAGE.as_bytes()).unwrap()] {
        let out = openssl_verify(&ca, &signed, dir.path());
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stderr).trim(), "Verification successful");
        // The CLI writes CRLF; SSM reads it through Python universal newlines.
        let text = String::from_utf8(smime::universal_newlines(&out.stdout)).unwrap();
        assert_eq!(text, format!("Content-Type: text/plain\n\n{MESSAGE}"));
    }
}

#[test]
fn real_ssm_capture_verifies_to_the_queued_element_and_signer_dn() {
    let v = Verifier::new(vectors().join("test-ca.pem")).unwrap();
    let got = v.verify(&std::fs::read(vectors().join("published-data.smime")).unwrap()).unwrap();
    assert_eq!(got.signer_dn, "/C=XX/O=Test/CN=sender.example.org");
    assert_eq!(got.body, std::fs::read(vectors().join("queued-element.txt")).unwrap());
}

#[test]
fn our_signature_verifies_with_our_verifier_from_a_ca_file_and_a_hashed_ca_dir() {
    let dir = tempfile::tempdir().unwrap();
    let signer = vector_signer(dir.path());
    assert_eq!(signer.subject_dn(), "/C=XX/O=Test/CN=sender.example.org");
    let signed = signer.sign(MESSAGE.as_bytes()).unwrap();
    let by_file = Verifier::new(vectors().join("test-ca.pem")).unwrap().verify(&signed).unwrap();
    assert_eq!(by_file.body, MESSAGE.as_bytes());
    assert_eq!(by_file.signer_dn, "/C=XX/O=Test/CN=sender.example.org");

    let capath = dir.path().join("capath");
    std::fs::create_dir(&capath).unwrap();
    let ca_pem = std::fs::read(vectors().join("test-ca.pem")).unwrap();
    let hash = X509::from_pem(&ca_pem).unwrap().subject_name_hash();
    std::fs::write(capath.join(format!("{hash:08x}.0")), &ca_pem).unwrap();
    let by_dir = Verifier::new(&capath).unwrap().verify(&signed).unwrap();
    assert_eq!(by_dir, by_file);
    // The raw CRLF form verifies to the same LF body.
    assert_eq!(Verifier::new(&capath).unwrap().verify(&signer.sign_raw(MESSAGE.as_bytes()).unwrap()).unwrap(), by_file);
}

#[test]
fn tampered_message_fails_verification() {
    let dir = tempfile::tempdir().unwrap();
    let signed = String::from_utf8(vector_signer(dir.path()).sign(MESSAGE.as_bytes()).unwrap()).unwrap();
    let tampered = signed.replace("SiteName: TEST-SITE", "SiteName: EVIL-SITE");
    assert_ne!(tampered, signed);
    let err = Verifier::new(vectors().join("test-ca.pem")).unwrap().verify(tampered.as_bytes()).unwrap_err();
    assert!(matches!(err, SmimeError::OpenSsl { .. }), "{err}");
    assert!(err.to_string().starts_with("verifying the signature of /C=XX/O=Test/CN=sender.example.org:"), "{err}");
    assert!(!openssl_verify(&vectors().join("test-ca.pem"), tampered.as_bytes(), dir.path()).status.success());
}

#[test]
fn signer_from_an_untrusted_ca_fails_verification() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cert, key) = make_pki(dir.path(), "other.example.org", 86_400 * 10);
    let signed = Signer::new(cert, key).unwrap().sign(MESSAGE.as_bytes()).unwrap();
    let err = Verifier::new(vectors().join("test-ca.pem")).unwrap().verify(&signed).unwrap_err();
    assert!(err.to_string().contains("certificate verify error"), "{err}");
}

#[test]
fn mismatched_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _, other_key) = make_pki(dir.path(), "other.example.org", 86_400 * 10);
    let err = Signer::new(vectors().join("test-sender-cert.pem"), &other_key).unwrap_err();
    assert!(matches!(err, SmimeError::KeyMismatch { .. }));
    assert!(err.to_string().contains("test-sender-cert.pem") && err.to_string().contains("do not match"), "{err}");
}

#[test]
fn certificate_expiring_within_a_day_or_expired_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (cn, secs) in [("soon.example.org", 3_600), ("gone.example.org", -30)] {
        let (_, cert, key) = make_pki(dir.path(), cn, secs);
        let err = Signer::new(&cert, key).unwrap_err();
        assert!(matches!(err, SmimeError::CertExpiring { min_secs: 86_400, .. }), "{err}");
        assert!(err.to_string().contains(cert.to_str().unwrap()), "{err}");
    }
    let (_, cert, key) = make_pki(dir.path(), "fine.example.org", 86_400 * 2);
    assert!(Signer::new(cert, key).is_ok());
}

#[test]
fn group_or_world_readable_key_is_refused_naming_file_and_mode() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cert, key) = make_pki(dir.path(), "host.example.org", 86_400 * 10);
    for mode in [0o644, 0o640, 0o604] {
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
        let err = Signer::new(&cert, &key).unwrap_err();
        assert!(matches!(err, SmimeError::KeyReadable { mode: m, .. } if m == mode));
        let msg = err.to_string();
        assert!(msg.contains(key.to_str().unwrap()) && msg.contains(&format!("{mode:04o}")), "{msg}");
    }
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o400)).unwrap();
    assert!(Signer::new(&cert, &key).is_ok());
}

#[test]
fn an_encrypted_key_is_refused_saying_how_to_decrypt_it_never_prompting() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cert, key) = make_pki(dir.path(), "host.example.org", 86_400 * 10);
    let plain = PKey::private_key_from_pem(&std::fs::read(&key).unwrap()).unwrap();
    let encrypted = plain.private_key_to_pem_pkcs8_passphrase(openssl::symm::Cipher::aes_256_cbc(), b"secret").unwrap();
    std::fs::write(&key, encrypted).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let err = Signer::new(&cert, &key).unwrap_err();
    assert!(matches!(err, SmimeError::KeyEncrypted { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(key.to_str().unwrap()) && msg.contains("openssl pkey -in"), "{msg}");
}

#[test]
fn missing_and_garbage_files_are_errors_naming_what_was_done() {
    let dir = tempfile::tempdir().unwrap();
    let key = private_copy(dir.path(), &vectors().join("test-sender-key.pem"));
    let err = Signer::new(dir.path().join("nope.pem"), &key).unwrap_err();
    assert!(err.to_string().starts_with("reading certificate ") && err.to_string().contains("nope.pem"), "{err}");
    let junk = write_pem(dir.path(), "junk.pem", b"not a key", 0o600);
    let err = Signer::new(vectors().join("test-sender-cert.pem"), &junk).unwrap_err();
    assert!(err.to_string().starts_with("parsing private key ") && err.to_string().contains("junk.pem"), "{err}");
    assert!(Verifier::new(vectors().join("published-data.smime")).is_err());
}

#[test]
fn encryption_round_trip_and_cli_interop() {
    let dir = tempfile::tempdir().unwrap();
    let sender = vector_signer(dir.path());
    let (_, server_cert, server_key) = make_pki(dir.path(), "server.example.org", 86_400 * 10);
    let signed = sender.sign(MESSAGE.as_bytes()).unwrap();
    let enc = Recipient::from_pem_file(&server_cert).unwrap().encrypt(&signed).unwrap();
    let text = String::from_utf8(enc.clone()).unwrap();
    assert!(text.starts_with("MIME-Version: 1.0\nContent-Disposition: attachment; filename=\"smime.p7m\"\n"), "{text}");
    assert!(text.contains("Content-Type: application/x-pkcs7-mime; smime-type=enveloped-data; name=\"smime.p7m\""));
    assert!(!text.contains("APEL-cloud-message"));
    assert!(smime::is_encrypted(&enc) && !smime::is_encrypted(&signed));

    let server = Signer::new(&server_cert, &server_key).unwrap();
    let dec = server.decrypt(&enc).unwrap();
    assert_eq!(dec, signed);
    let v = Verifier::new(vectors().join("test-ca.pem")).unwrap().verify(&dec).unwrap();
    assert_eq!(v.body, MESSAGE.as_bytes());

    // The CLI decrypts what we encrypted (AES-128-CBC) ...
    let f = dir.path().join("enc.smime");
    std::fs::write(&f, &enc).unwrap();
    let out = Command::new("openssl")
        .args(["smime", "-decrypt", "-in"])
        .arg(&f)
        .arg("-recip")
        .arg(&server_cert)
        .arg("-inkey")
        .arg(&server_key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(smime::universal_newlines(&out.stdout), signed);
    let info = Command::new("sh")
        .arg("-c")
        .arg(format!("openssl smime -pk7out -in {} | openssl asn1parse | grep -c aes-128-cbc", f.display()))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&info.stdout).trim(), "1");
    // ... and we decrypt what the CLI encrypts.
    let signed_f = dir.path().join("signed.smime");
    std::fs::write(&signed_f, &signed).unwrap();
    let out = Command::new("openssl")
        .args(["smime", "-encrypt", "-aes128", "-in"])
        .arg(&signed_f)
        .arg(&server_cert)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(server.decrypt(&out.stdout).unwrap(), signed);

    // The wrong key cannot decrypt.
    let err = sender.decrypt(&enc).unwrap_err();
    assert!(err.to_string().starts_with("decrypting with "), "{err}");
}

/// Found by fuzzing (fuzz/regressions/smime): non-UTF-8 bytes in a MIME header made the
/// `openssl` crate panic while reading OpenSSL's error message. Non-ASCII input is refused
/// first, naming the byte; the decryptor does the same.
#[test]
fn non_ascii_smime_input_is_refused_without_reaching_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let input = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions/smime/non-utf8-openssl-error"),
    )
    .unwrap();
    let verifier = Verifier::new(vectors().join("test-ca.pem")).unwrap();
    let e = verifier.verify(&input).expect_err("refused").to_string();
    assert!(e.contains("byte 1 is not ASCII (0xb7)"), "{e}");
    let signer = vector_signer(dir.path());
    let e = signer.decrypt(&input).expect_err("refused").to_string();
    assert!(e.contains("not ASCII"), "{e}");
    // The real capture is ASCII and still verifies.
    let capture = std::fs::read(vectors().join("published-data.smime")).unwrap();
    assert!(capture.is_ascii());
    assert!(verifier.verify(&capture).is_ok());
}
