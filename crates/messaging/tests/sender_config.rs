//! sender.cfg / receiver.cfg as SSM reads them (configparser semantics) and the errors that
//! name file, section and key.

use messaging::config::{PathType, ReceiverCfg, SenderCfg, parse_dns};

const SENDER: &str = "[sender]\nprotocol: AMS\n\n[broker]\nhost: msg.argo.grnet.gr\n\n\
[certificates]\ncertificate: /etc/grid-security/hostcert.pem\nKEY = /etc/grid-security/hostkey.pem\n\
capath: /etc/grid-security/certificates\n\n[messaging]\n# comment\nams_project: accounting\n\
destination: eu-egi-cloud-accounting\ntoken:\npath: /var/spool/apel/outgoing\n\n\
[logging]\nlogfile: /var/log/apel/ssmsend.log\nlevel: INFO\nconsole: true\n";

#[test]
fn sender_cfg_is_read_with_configparser_rules() {
    let c = SenderCfg::parse("/etc/apel/sender.cfg", SENDER).unwrap();
    assert_eq!(c.host, "msg.argo.grnet.gr");
    assert_eq!(
        c.key.unwrap().to_str(),
        Some("/etc/grid-security/hostkey.pem"),
        "option names are case-insensitive, `=` works"
    );
    assert_eq!(c.ams_project, "accounting");
    assert_eq!(c.destination, "eu-egi-cloud-accounting");
    assert_eq!(c.token, None, "an empty token means X.509 token exchange");
    assert_eq!(c.path_type, PathType::Dirq);
    assert!(c.verify_server_cert);
    assert!(c.notes.iter().any(|n| n.contains("[logging]")));
}

#[test]
fn sender_cfg_errors_name_file_section_and_key() {
    let stomp = SENDER.replace("protocol: AMS", "protocol: STOMP");
    let e = SenderCfg::parse("/etc/apel/sender.cfg", &stomp).unwrap_err().to_string();
    assert!(e.starts_with("/etc/apel/sender.cfg: [sender] protocol:") && e.contains("STOMP is not supported"), "{e}");
    let no_dest = SENDER.replace("destination: eu-egi-cloud-accounting\n", "");
    let e = SenderCfg::parse("s.cfg", &no_dest).unwrap_err().to_string();
    assert_eq!(e, "s.cfg: [messaging] destination: missing");
    let bad = SENDER.replace("path: /var", "path_type: queue\npath: /var");
    let e = SenderCfg::parse("s.cfg", &bad).unwrap_err().to_string();
    assert!(e.contains("[messaging] path_type") && e.contains("dirq or directory"), "{e}");
    let no_proto = SENDER.replace("[sender]\nprotocol: AMS\n", "");
    assert!(SenderCfg::parse("s.cfg", &no_proto).unwrap_err().to_string().contains("[sender] protocol: missing"));
}

#[test]
fn receiver_cfg_and_dns_file() {
    let text = "[receiver]\nprotocol: AMS\n[broker]\nhost: localhost:8443\n[certificates]\ncertificate: c.pem\nkey: k.pem\ncapath: /ca\ncheck_crls: false\n[messaging]\nams_project: accounting\ndestination: sub\ntoken: t0k\npath: /var/spool/apel/incoming\n[daemon]\npidfile: /run/x.pid\n";
    let c = ReceiverCfg::parse("r.cfg", text).unwrap();
    assert_eq!((c.host.as_str(), c.destination.as_str(), c.token.as_deref()), ("localhost:8443", "sub", Some("t0k")));
    assert!(!c.check_crls);
    assert_eq!(
        parse_dns("# allowed\n/C=XX/O=Test/CN=a\n\n  /C=XX/O=Test/CN=b  \n"),
        ["/C=XX/O=Test/CN=a", "/C=XX/O=Test/CN=b"]
    );
}
