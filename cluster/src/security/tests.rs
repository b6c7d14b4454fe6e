use super::*;

fn cluster() -> ClusterId {
    ClusterId::new("c1").unwrap()
}

fn tls() -> TlsFiles {
    TlsFiles {
        ca: "/certs/ca.pem".into(),
        cert: "/certs/w.pem".into(),
        key: "/certs/w.key".into(),
    }
}

fn endpoints(list: &[&str]) -> Vec<String> {
    list.iter().map(|e| e.to_string()).collect()
}

#[test]
fn members_default_and_named() {
    let mut m = Members::default();
    assert_eq!(m.of(Role::Worker), vec!["ffq-worker"]);
    m.add_spec("worker=w1.example.com").unwrap();
    m.add_spec(" worker = w2.example.com ").unwrap();
    assert_eq!(m.of(Role::Worker), vec!["w1.example.com", "w2.example.com"]);
    assert_eq!(m.of(Role::Client), vec!["ffq-client"]);
    let e = m.add_spec("client=w1.example.com").unwrap_err().to_string();
    assert!(e.contains("two roles"), "{e}");
    let e = m.add_spec("router=x").unwrap_err().to_string();
    assert!(e.contains("unknown role \"router\""), "{e}");
    let e = m.add_spec("worker").unwrap_err().to_string();
    assert!(e.contains("ROLE=NAME"), "{e}");
}

#[test]
fn credentials_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("login");
    std::fs::write(&path, "alice:s3cret:with:colons\n").unwrap();
    let c = Credentials::from_file(&path).unwrap();
    assert_eq!(c.user, "alice");
    assert_eq!(c.password, "s3cret:with:colons");
    assert!(!format!("{c:?}").contains("s3cret"));
    std::fs::write(&path, "no-colon\n").unwrap();
    let e = Credentials::from_file(&path).unwrap_err().to_string();
    assert!(e.contains("USER:PASSWORD"), "{e}");
    let e = Credentials::from_file(&dir.path().join("missing"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing"), "{e}");
}

#[test]
fn tls_sets_mutual_tls_and_the_acl() {
    let security = Security {
        tls: Some(tls()),
        ..Security::default()
    };
    let mut config = zenoh::Config::default();
    security
        .apply(
            &cluster(),
            &mut config,
            &endpoints(&["tls/127.0.0.1:7447"]),
            Some("tls/127.0.0.1:0"),
        )
        .unwrap();
    let get = |k: &str| config.get_json(k).unwrap();
    assert_eq!(get("transport/link/tls/enable_mtls"), "true");
    assert_eq!(
        get("transport/link/tls/connect_certificate"),
        "\"/certs/w.pem\""
    );
    assert_eq!(
        get("transport/link/tls/listen_private_key"),
        "\"/certs/w.key\""
    );
    assert_eq!(get("access_control/enabled"), "true");
    assert_eq!(get("access_control/default_permission"), "\"deny\"");
    let acl = get("access_control");
    assert!(acl.contains("ffq/c1/ctl/coordinator/submit"), "{acl}");
    assert!(acl.contains("ffq-worker"), "{acl}");
}

#[test]
fn an_acl_of_the_config_file_is_kept() {
    let mut config = zenoh::Config::default();
    config
        .insert_json5(
            "access_control",
            r#"{ enabled: true, default_permission: "allow" }"#,
        )
        .unwrap();
    let security = Security {
        tls: Some(tls()),
        ..Security::default()
    };
    security
        .apply(&cluster(), &mut config, &endpoints(&["tls/h:1"]), None)
        .unwrap();
    assert_eq!(
        config
            .get_json("access_control/default_permission")
            .unwrap(),
        "\"allow\""
    );
}

#[test]
fn unsafe_settings_are_refused() {
    let with_tls = Security {
        tls: Some(tls()),
        ..Security::default()
    };
    let e = with_tls
        .apply(
            &cluster(),
            &mut zenoh::Config::default(),
            &endpoints(&["tcp/127.0.0.1:7447"]),
            None,
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("tcp/127.0.0.1:7447 is not encrypted"), "{e}");

    let login = Security {
        credentials: Some(Credentials::new("w", "pw").unwrap()),
        ..Security::default()
    };
    let e = login
        .apply(
            &cluster(),
            &mut zenoh::Config::default(),
            &[],
            Some("tcp/127.0.0.1:0"),
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("needs a users file"), "{e}");
    // A client (no listener) needs only its login.
    let mut config = zenoh::Config::default();
    login
        .apply(&cluster(), &mut config, &endpoints(&["tcp/h:1"]), None)
        .unwrap();
    assert_eq!(
        config.get_json("transport/auth/usrpwd/user").unwrap(),
        "\"w\""
    );
}

#[test]
fn roles_do_not_overlap_where_they_must_not() {
    let acl = acl::access_control(&cluster(), &Members::default());
    let rules = acl["rules"].as_array().unwrap();
    let keys_of = |id: &str| -> Vec<String> {
        rules
            .iter()
            .find(|r| r["id"] == id)
            .map(|r| {
                r["key_exprs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|k| k.as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    // Only the coordinator answers on its keys; only clients submit.
    assert_eq!(
        keys_of("coordinator-answer"),
        vec!["ffq/c1/ctl/coordinator/*"]
    );
    assert!(!keys_of("worker-answer")
        .iter()
        .any(|k| k.contains("coordinator")));
    assert!(!keys_of("worker-ask").iter().any(|k| k.ends_with("submit")));
    assert!(keys_of("client-ask").contains(&"ffq/c1/ctl/coordinator/submit".to_string()));
    // Only workers declare worker tokens.
    assert_eq!(keys_of("worker-token"), vec!["ffq/c1/worker/*"]);
    assert!(!keys_of("client-answer").iter().any(|k| k.contains("data")));
}
