//! Checks on the static configuration (tauri.conf.json, capabilities/main.json) that a typo
//! would otherwise only reveal at run time: a command the UI cannot call, a wider capability
//! than the UI needs, a weakened CSP.

use serde_json::Value;

const COMMANDS: &[&str] = include!("command_names.rs");

/// The contract's Content Security Policy, word for word.
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
                   script-src 'self'; connect-src ipc: http://ipc.localhost; media-src 'self'";

fn read_json(file: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn capability_grants_exactly_the_commands_and_event_listening() {
    let capability = read_json("capabilities/main.json");
    assert_eq!(capability["windows"], serde_json::json!(["main"]));
    let granted: std::collections::BTreeSet<&str> = capability["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    let mut expected: std::collections::BTreeSet<String> = COMMANDS
        .iter()
        .map(|c| format!("allow-{}", c.replace('_', "-")))
        .collect();
    expected.insert("core:event:allow-listen".into());
    expected.insert("core:event:allow-unlisten".into());
    let expected: std::collections::BTreeSet<&str> = expected.iter().map(String::as_str).collect();
    assert_eq!(granted, expected);
}

#[test]
fn window_csp_and_bundle_follow_the_contract() {
    let conf = read_json("tauri.conf.json");
    assert_eq!(conf["identifier"], "app.lyrebird.desktop");
    assert_eq!(conf["productName"], "Lyrebird");
    assert_eq!(conf["build"]["frontendDist"], "../ui/dist");
    let csp = conf["app"]["security"]["csp"].as_str().unwrap();
    let normalise = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    assert_eq!(normalise(csp), normalise(CSP));
    let window = &conf["app"]["windows"][0];
    assert_eq!(window["label"], "main");
    assert_eq!(window["title"], "Lyrebird");
    assert_eq!(
        (window["width"].as_u64(), window["height"].as_u64()),
        (Some(1100), Some(720))
    );
    let targets = conf["bundle"]["targets"].as_array().unwrap();
    for target in ["deb", "msi", "dmg", "appimage"] {
        assert!(
            targets.iter().any(|t| t == target),
            "bundle target {target}"
        );
    }
    // The bundler adds libwebkit2gtk-4.1-0 and libgtk-3-0 itself; naming them again would
    // list them twice in the package's Depends. The rest are the binary's other NEEDED
    // libraries (ALSA for cpal, D-Bus for single instance) and the tray's indicator library.
    let deb = &conf["bundle"]["linux"]["deb"];
    assert_eq!(
        deb["depends"],
        serde_json::json!(["libayatana-appindicator3-1", "libasound2", "libdbus-1-3"])
    );
    // Links reach the running app only if the desktop file passes them on (`%u`).
    let template = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(deb["desktopTemplate"].as_str().unwrap()),
    )
    .unwrap();
    assert!(template.contains("Exec={{exec}} %u"), "{template}");
    for scheme in ["sip", "sips", "tel", "xmpp"] {
        assert!(
            template.contains(&format!("x-scheme-handler/{scheme};")),
            "{scheme}"
        );
    }
    for icon in conf["bundle"]["icon"].as_array().unwrap() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(icon.as_str().unwrap());
        assert!(path.is_file(), "{}", path.display());
    }
    assert_eq!(
        conf["plugins"]["deep-link"]["desktop"]["schemes"],
        serde_json::json!(["sip", "tel", "xmpp"])
    );
}

#[test]
fn every_registered_command_is_declared_for_permissions() {
    let lib = include_str!("lib.rs");
    let start = lib.find("generate_handler![").unwrap();
    let end = start + lib[start..].find(']').unwrap();
    let registered: std::collections::BTreeSet<&str> = lib[start..end]
        .split("commands::")
        .skip(1)
        .map(|rest| {
            rest.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .next()
                .unwrap()
        })
        .collect();
    let declared: std::collections::BTreeSet<&str> = COMMANDS.iter().copied().collect();
    assert_eq!(registered, declared);
}
