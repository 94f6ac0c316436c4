//! `config import --caso` of a caso.conf with each `[keystone_auth]` auth type
//! gives a fedsite.toml whose `[cloud]` resolves to exactly the credentials,
//! scope and session options running from the caso.conf resolves to; the
//! secret it copies makes the file refused unless it is private.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use accounting::casoconf::CasoConf;
use siteconf::Config;

fn write(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p
}

/// Each auth type as the central deployment or a site writes it, with the secret it holds.
const AUTHS: &[(&str, &str, &str)] = &[
    (
        "v3password",
        "auth_type = v3password\nauth_url = https://k.example/v3\nusername = caso\npassword = pw-1\nuser_domain_name = Default\n\
         project_domain_id = default\ncafile = /etc/ssl/ca.pem\n",
        "pw-1",
    ),
    (
        "password",
        "auth_type = password\nauth_url = https://k.example/v3\nuser_id = u1\npassword = pw-2\nproject_name = acc\n\
         project_domain_name = Default\ninsecure = true\n",
        "pw-2",
    ),
    (
        "v3applicationcredential",
        "auth_type = v3applicationcredential\nauth_url = https://k.example/v3\napplication_credential_id = ac1\n\
         application_credential_secret = ac-secret\n",
        "ac-secret",
    ),
    (
        "v3applicationcredential by name",
        "auth_type = v3applicationcredential\nauth_url = https://k.example/v3\napplication_credential_name = acc\n\
         username = caso\nuser_domain_id = default\napplication_credential_secret = ac-secret-2\n",
        "ac-secret-2",
    ),
    (
        "v3oidcclientcredentials",
        "auth_type = v3oidcclientcredentials\nauth_url = https://k.example/v3\nidentity_provider = egi.eu\nprotocol = openid\n\
         client_id = cid\nclient_secret = c-secret\nscope = openid profile eduperson_entitlement email\n\
         discovery_endpoint = https://aai.example/.well-known/openid-configuration\naccess_token_type = access_token\n\
         project_id = 0b9f3b2a1c8d4e6f9a0b1c2d3e4f5a6b\n",
        "c-secret",
    ),
    (
        "v3oidcclientcredentials, token endpoint, default scope",
        "auth_type = v3oidcclientcredentials\nauth_url = https://k.example/v3\nidentity_provider = egi.eu\nprotocol = oidc\n\
         client_id = cid\nclient_secret = c-secret-2\naccess_token_endpoint = https://aai.example/token\n",
        "c-secret-2",
    ),
    (
        "v3oidcaccesstoken",
        "auth_type = v3oidcaccesstoken\nauth_url = https://k.example/v3\nidentity_provider = egi.eu\nprotocol = openid\n\
         access_token = eyJ-access\nproject_id = p1\n",
        "eyJ-access",
    ),
    (
        "v3token",
        "auth_type = v3token\nauth_url = https://k.example/v3\ntoken = gAAAA-token\nsystem_scope = all\n",
        "gAAAA-token",
    ),
    ("token", "auth_type = token\nauth_url = https://k.example/v3\ntoken = gAAAA-2\ndomain_id = d1\n", "gAAAA-2"),
];

#[test]
fn each_auth_type_imports_to_the_same_credentials() {
    let dir = tempfile::tempdir().unwrap();
    for (what, keys, secret) in AUTHS {
        let d = dir.path().join(what.replace([' ', ','], "_"));
        std::fs::create_dir(&d).unwrap();
        let caso = write(
            &d,
            "caso.conf",
            &format!("[DEFAULT]\nsite_name = S\nregion_name = R1\n\n[keystone_auth]\n{keys}"),
            0o600,
        );
        let original = CasoConf::load(&caso).unwrap_or_else(|e| panic!("{what}: {e}"));
        let imported = siteconf::import(Some(&caso), None, None).unwrap();
        let text = siteconf::render(&imported, &[&caso]).unwrap();
        // Only the keystoneauth keys fedsite does not read are listed as not carried.
        assert!(
            !text.contains("[keystone_auth] auth_type:") && !text.contains("fedsite has no such setting"),
            "{what}:\n{text}"
        );
        assert!(text.contains(secret), "{what}: the secret is carried\n{text}");

        // Readable by others, the file holding the secret is refused, naming the key.
        let open = write(&d, "open.toml", &text, 0o644);
        let e = Config::load(&open).unwrap_err().to_string();
        assert!(e.contains("[cloud.auth] ") && e.contains("chmod 600"), "{what}: {e}");

        let toml = write(&d, "fedsite.toml", &text, 0o600);
        let config = Config::load(&toml).unwrap();
        let mut mine = config.cloud_config(&Default::default(), &d).unwrap_or_else(|e| panic!("{what}: {e}\n{text}"));
        mine.source = original.cloud.source.clone();
        assert_eq!(mine, original.cloud, "{what}:\n{text}");
        // And the secrets are compared for real (Secret's Debug hides them).
        assert_eq!(mine.credentials.secret().expose(), *secret, "{what}");
    }
}

#[test]
fn tokens_copied_into_fedsite_toml_are_said_to_expire() {
    let dir = tempfile::tempdir().unwrap();
    for (what, keys, _) in AUTHS.iter().filter(|(w, _, _)| w.contains("token") && !w.contains("endpoint")) {
        let caso =
            write(dir.path(), "caso.conf", &format!("[DEFAULT]\nsite_name = S\n\n[keystone_auth]\n{keys}"), 0o600);
        let imported = siteconf::import(Some(&caso), None, None).unwrap();
        assert!(imported.not_carried.iter().any(|n| n.contains("expires")), "{what}: {:?}", imported.not_carried);
    }
}

#[test]
fn plugin_options_behind_auth_section_are_read_and_not_listed_as_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let caso = write(
        dir.path(),
        "caso.conf",
        "[DEFAULT]\nsite_name = S\n\n[keystone_auth]\nauth_section = egi\ncafile = /etc/ssl/ca.pem\ntimeout = 30\n\n\
         [egi]\nauth_type = v3oidcaccesstoken\nauth_url = https://k.example/v3\nidentity_provider = egi.eu\nprotocol = openid\n\
         access_token = eyJ\nproject_id = p1\n",
        0o600,
    );
    let imported = siteconf::import(Some(&caso), None, None).unwrap();
    let dropped: Vec<&String> = imported.not_carried.iter().filter(|n| !n.contains("expires")).collect();
    assert_eq!(dropped.len(), 1, "{dropped:?}");
    assert!(dropped[0].contains("[keystone_auth] timeout"), "{dropped:?}");
    let auth = imported.config.cloud.auth.as_ref().unwrap();
    assert_eq!((auth.identity_provider.as_deref(), auth.project_id.as_deref()), (Some("egi.eu"), Some("p1")));
    assert_eq!(imported.config.cloud.cacert.as_deref(), Some(Path::new("/etc/ssl/ca.pem")));
}
