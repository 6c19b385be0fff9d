//! `GET /openapi.json` describes every route the control API registers.

use std::collections::BTreeSet;

use crate::helpers::*;

/// The document in the source tree, which the binary serves.
fn document() -> serde_json::Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/control/openapi.json"))
        .expect("src/control/openapi.json");
    serde_json::from_str(&text).expect("openapi.json is JSON")
}

/// (path, method) of every route in src/control/mod.rs (and the panel's
/// in src/control/panel.rs): `get_only`,
/// `post_only`, and `web::resource` with its `.route(web::METHOD()…)` lines.
fn registered_routes() -> BTreeSet<(String, String)> {
    let source = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/control/mod.rs"))
        .expect("src/control/mod.rs");
    let mut body =
        source.split("pub fn configure").nth(1).expect("fn configure").split("\nfn ").next().unwrap().to_string();
    // The panel's files are registered by `panel::routes`, configured there.
    if body.contains("panel::routes") {
        let panel = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/control/panel.rs"))
            .expect("src/control/panel.rs");
        body.push_str(panel.split("pub fn routes").nth(1).expect("fn routes").split("\nfn ").next().unwrap());
    }
    let mut routes = BTreeSet::new();
    let mut current: Option<String> = None;
    let quoted = |line: &str| line.split('"').nth(1).map(str::to_string);
    for line in body.lines().map(str::trim) {
        if line.contains("get_only(\"") {
            routes.insert((quoted(line).unwrap(), "get".to_string()));
        } else if line.contains("post_only(\"") {
            routes.insert((quoted(line).unwrap(), "post".to_string()));
        } else if line.contains("web::resource(\"") {
            current = quoted(line);
        } else if let (Some(path), Some(rest)) = (&current, line.strip_prefix(".route(web::")) {
            let method = rest.split('(').next().unwrap().to_string();
            // HEAD answers as GET does, without a body: not described apart.
            if method != "head" {
                routes.insert((path.clone(), method));
            }
        }
    }
    routes
}

#[test]
fn every_registered_route_is_in_openapi_json_and_nothing_else() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let routes = registered_routes();
    assert!(routes.len() >= 20, "found only {routes:?}");
    let described: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| item.as_object().unwrap().keys().map(move |m| (path.clone(), m.clone())))
        .filter(|(_, method)| ["get", "put", "post", "delete", "patch", "head"].contains(&method.as_str()))
        .collect();
    assert_eq!(routes, described, "src/control/mod.rs routes vs openapi.json");
}

#[test]
fn the_sidecar_serves_the_document() {
    let target = start_demo_target(&[]);
    let sidecar = start_sidecar(&target, &[("INITIAL_MODE", "pause")]);
    let res = sidecar.get("/openapi.json");
    assert_eq!(res.status, 200);
    assert!(res.headers.get("content-type").is_some_and(|c| c.contains("application/json")));
    assert_eq!(res.json(), document());
}
