use super::*;
use crate::base::url::TargetUrl;
use crate::workload::{self, Target};

fn options() -> workload::Options {
    let url = TargetUrl::parse("http://api.test").unwrap();
    workload::Options { target: Target::new(&url), default_pool_size: 50 }
}

/// Derives and checks the text is a workload the reader accepts.
fn derived(doc: &str) -> Derived {
    derived_with(doc, &Options::default())
}

fn derived_with(doc: &str, opts: &Options) -> Derived {
    let derived = derive("doc.json", doc.as_bytes(), opts).unwrap_or_else(|e| panic!("refused: {e}"));
    if let Err(e) = workload::load_str("derived.yaml", &derived.text, &options()) {
        panic!("the derived workload does not load:\n{e}\n---\n{}", derived.text);
    }
    derived
}

/// The top-level keys of a request's JSON body.
fn body_keys(w: &workload::Workload, name: &str) -> Vec<String> {
    let request = w.model().all_requests().find(|r| r.name == name).unwrap();
    match &request.body {
        Some(workload::model::Body::Json(workload::model::Json::Object(entries))) => {
            entries.iter().map(|(k, _)| k.clone()).collect()
        }
        other => panic!("{name}: {other:?}"),
    }
}

fn load(derived: &Derived) -> workload::Workload {
    workload::load_str("derived.yaml", &derived.text, &options()).unwrap()
}

#[test]
fn the_sidecars_own_document_converts() {
    let doc = include_str!("../control/openapi.json");
    let d = derived(doc);
    let w = load(&d);
    // The event streams are left out, with a reason each.
    assert!(w.find("events").is_none() && w.find("jobEvents").is_none(), "{}", d.text);
    assert!(d.text.contains("GET /events (events): answers a stream"), "{}", d.text);
    assert!(w.find("status").is_some() && w.find("switchMode").is_some());
    // Its bearer scheme has no login: a placeholder names the variable.
    assert!(d.text.contains("REPLACE_ME_TRAFFICGEN_ENV_BEARER_TOKEN"), "{}", d.text);
    assert!(d.problems.is_empty(), "{:?}", d.problems);
}

const USERS: &str = r##"{
  "openapi": "3.1.0",
  "info": {"title": "Users", "version": "1"},
  "paths": {
    "/users": {
      "post": {"operationId": "create_user",
        "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewUser"}}}},
        "responses": {"201": {"description": "made", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/User"}}}}, "409": {"description": "taken"}}},
      "get": {"operationId": "list_users",
        "parameters": [{"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}},
                       {"name": "q", "in": "query", "schema": {"type": "string"}}],
        "responses": {"200": {"description": "ok"}}}
    },
    "/users/{user_id}": {
      "parameters": [{"name": "user_id", "in": "path", "required": true, "schema": {"type": "integer"}}],
      "get": {"operationId": "get_user", "responses": {"200": {"description": "ok"}, "404": {"description": "no"}}},
      "patch": {"operationId": "update_user",
        "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/UserPatch"}}}},
        "responses": {"200": {"description": "ok"}}},
      "delete": {"operationId": "delete_user", "responses": {"204": {"description": "gone"}}}
    },
    "/old": {"get": {"operationId": "old", "deprecated": true, "responses": {"200": {"description": "ok"}}}}
  },
  "components": {"schemas": {
    "NewUser": {"type": "object", "required": ["username", "email", "age"],
      "properties": {
        "username": {"type": "string", "pattern": "^[a-z0-9_]+$", "minLength": 3, "maxLength": 32},
        "email": {"type": "string", "format": "email"},
        "age": {"type": "integer", "minimum": 13, "maximum": 120},
        "role": {"type": "string", "enum": ["admin", "member"]},
        "born": {"anyOf": [{"type": "string", "format": "date"}, {"type": "null"}]},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 5}, "maxItems": 3},
        "id": {"type": "integer", "readOnly": true}
      }},
    "User": {"allOf": [{"$ref": "#/components/schemas/NewUser"}, {"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}}]},
    "UserPatch": {"type": "object", "properties": {"age": {"type": ["integer", "null"], "minimum": 13, "maximum": 120}}}
  }}
}"##;

#[test]
fn a_users_api_becomes_creates_reads_and_updates_of_the_same_ids() {
    let d = derived(USERS);
    let w = load(&d);
    let names: Vec<&str> = w.requests().map(|id| w.name(id)).collect();
    assert_eq!(names, ["create_user", "list_users", "get_user", "update_user"], "{}", d.text);
    // Reads 4, writes 1.
    assert_eq!(w.mix(), "create_user=1,list_users=4,get_user=4,update_user=1");
    let get = w.find("get_user").unwrap();
    assert_eq!(w.fallback(get).map(|f| w.name(f)), Some("create_user"));
    assert_eq!(w.needs(get).iter().map(|p| w.pool_name(*p)).collect::<Vec<_>>(), ["users_user_id"]);
    let create = w.model().requests.iter().find(|r| r.name == "create_user").unwrap();
    assert_eq!(create.captures[0].source, workload::model::CaptureSource::Json("/id".into()));
    assert!(create.success.contains(201) && !create.success.contains(200));
    // DELETE and deprecated operations are listed as left out.
    assert!(d.text.contains("DELETE /users/{user_id} (delete_user): DELETE is left out"), "{}", d.text);
    assert!(d.text.contains("GET /old (old): deprecated"), "{}", d.text);
    assert_eq!(
        d.flows,
        vec![NamedFlow {
            resource: "users".into(),
            pool: "users_user_id".into(),
            create: "create_user".into(),
            read: Some("get_user".into()),
            update: Some("update_user".into()),
            delete: None,
        }]
    );
    // The body: readOnly id out, pattern and format followed.
    let keys = body_keys(&w, "create_user");
    assert_eq!(keys, ["username", "email", "age", "role", "born", "tags"]);
    assert!(d.text.contains("email: \"user{{ random_int("), "{}", d.text);
    assert!(d.text.contains("username: \"{{ random_int("), "{}", d.text);
    assert!(d.text.contains("role: \"{{ choice('admin', 'member') }}\""), "{}", d.text);
    assert!(d.text.contains("limit: \"{{ random_int(1, 100) }}\""), "{}", d.text);
    assert!(d.text.contains("optional, not sent: q (query)"), "{}", d.text);
}

#[test]
fn flags_bring_deletes_and_deprecated_operations_back_and_change_weights() {
    let opts = Options {
        include_delete: true,
        include_deprecated: true,
        read_weight: 9,
        write_weight: 2,
        ..Options::default()
    };
    let d = derived_with(USERS, &opts);
    let w = load(&d);
    assert_eq!(w.mix(), "create_user=2,list_users=9,get_user=9,update_user=2,delete_user=2,old=9");
    assert_eq!(d.flows[0].delete.as_deref(), Some("delete_user"));
}
