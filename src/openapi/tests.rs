use super::*;
use crate::base::url::TargetUrl;
use crate::workload::{self, Target};

fn options() -> workload::Options {
    let url = TargetUrl::parse("http://api.test").unwrap();
    workload::Options::new(Target::new(&url), 50)
}

/// The options a derived workload loads with: its credentials' variables set.
fn options_for(derived: &Derived) -> workload::Options {
    workload::Options { env: stand_in_env(derived), ..options() }
}

/// Derives and checks the text is a workload the reader accepts.
fn derived(doc: &str) -> Derived {
    derived_with(doc, &Options::default())
}

fn derived_with(doc: &str, opts: &Options) -> Derived {
    let derived = derive("doc.json", doc.as_bytes(), opts).unwrap_or_else(|e| panic!("refused: {e}"));
    if let Err(e) = workload::load_str("derived.yaml", &derived.text, &options_for(&derived)) {
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

/// A journey's steps: (name, path template).
fn journey_steps(w: &workload::Workload, journey: &str) -> Vec<(String, String)> {
    let def = w.model().journeys.iter().find(|j| j.name == journey).unwrap_or_else(|| panic!("no journey {journey}"));
    def.steps
        .iter()
        .filter_map(|s| match s {
            workload::model::StepDef::Request { request, .. } => Some((request.name.clone(), request.path.to_string())),
            workload::model::StepDef::Pause(_) => None,
        })
        .collect()
}

fn load(derived: &Derived) -> workload::Workload {
    workload::load_str("derived.yaml", &derived.text, &options_for(derived)).unwrap()
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
    // Its bearer scheme has no login: the token comes from the environment.
    assert!(d.text.contains("Authorization: \"Bearer {{ env(TRAFFICGEN_ENV_BEARER_TOKEN) }}\""), "{}", d.text);
    assert_eq!(d.credentials, ["TRAFFICGEN_ENV_BEARER_TOKEN"]);
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
    "/old": {"get": {"operationId": "old", "deprecated": true, "responses": {"200": {"description": "ok"}}}},
    "/admin/reset": {"post": {"operationId": "reset", "x-internal": true, "responses": {"200": {"description": "ok"}}}}
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
    let names: Vec<&str> = w.requests().filter(|id| w.role(*id) != workload::Role::Step).map(|id| w.name(id)).collect();
    assert_eq!(names, ["create_user", "list_users", "get_user", "update_user"], "{}", d.text);
    // Reads 4, writes and journeys 1.
    assert_eq!(w.mix(), "create_user=1,list_users=4,get_user=4,update_user=1,users_lifecycle=1");
    let get = w.find("get_user").unwrap();
    assert_eq!(w.fallback(get).map(|f| w.name(f)), Some("create_user"));
    assert_eq!(w.needs(get).iter().map(|p| w.pool_name(*p)).collect::<Vec<_>>(), ["users_user_id"]);
    let create = w.model().requests.iter().find(|r| r.name == "create_user").unwrap();
    assert_eq!(create.captures[0].source, workload::model::CaptureSource::Json("/id".into()));
    assert!(create.success.contains(201) && !create.success.contains(200));
    // DELETE and deprecated operations are listed as left out.
    assert!(d.text.contains("DELETE /users/{user_id} (delete_user): DELETE is left out"), "{}", d.text);
    assert!(d.text.contains("GET /old (old): deprecated"), "{}", d.text);
    assert!(d.text.contains("POST /admin/reset (reset): marked x-internal"), "{}", d.text);
    assert_eq!(
        d.flows,
        vec![NamedFlow {
            resource: "users".into(),
            journey: "users_lifecycle".into(),
            create: "create_user".into(),
            read: Some("get_user".into()),
            update: Some("update_user".into()),
            delete: None,
        }]
    );
    // The journey: each instance reads and changes the user it created.
    assert_eq!(
        journey_steps(&w, "users_lifecycle"),
        [
            ("users_lifecycle/create".to_string(), "/users".to_string()),
            ("users_lifecycle/read".to_string(), "/users/{{ var(user_id) }}".to_string()),
            ("users_lifecycle/update".to_string(), "/users/{{ var(user_id) }}".to_string()),
        ]
    );
    assert!(d.text.contains("          - var: user_id\n            json: \"/id\""), "{}", d.text);
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
    // The DELETE is sent only in the journey, on the id its instance created.
    assert_eq!(w.mix(), "create_user=2,list_users=9,get_user=9,update_user=2,old=9,users_lifecycle=2");
    assert_eq!(d.flows[0].delete.as_deref(), Some("delete_user"));
    let steps = journey_steps(&w, "users_lifecycle");
    assert_eq!(steps[3], ("users_lifecycle/delete".to_string(), "/users/{{ var(user_id) }}".to_string()));
}

/// A document of `paths` (JSON text of the paths object) and `components`.
fn doc(paths: &str, components: &str) -> String {
    format!(
        r#"{{"openapi": "3.0.3", "info": {{"title": "T", "version": "1"}}, "paths": {paths}, "components": {components}}}"#
    )
}

#[test]
fn links_name_the_parameter_an_answer_feeds() {
    let d = derived(&doc(
        r##"{
        "/carts": {"post": {"operationId": "newCart", "responses": {"201": {"description": "",
            "content": {"application/json": {"schema": {"type": "object", "properties": {"cart": {"type": "object", "properties": {"key": {"type": "string"}}}}}}},
            "links": {"open": {"operationId": "getCart", "parameters": {"path.cartKey": "$response.body#/cart/key"}}}}}}},
        "/baskets/{cartKey}": {"get": {"operationId": "getCart", "parameters": [{"name": "cartKey", "in": "path", "required": true, "schema": {"type": "string"}}],
            "responses": {"200": {"description": ""}}}}
    }"##,
        "{}",
    ));
    let w = load(&d);
    let get = w.find("getCart").unwrap();
    assert_eq!(w.fallback(get).map(|f| w.name(f)), Some("newCart"));
    let create = w.model().requests.iter().find(|r| r.name == "newCart").unwrap();
    assert_eq!(create.captures[0].source, workload::model::CaptureSource::Json("/cart/key".into()));
    assert!(d.text.contains("(by the document's link)"), "{}", d.text);
}

#[test]
fn a_list_supplies_ids_where_nothing_creates_them() {
    let d = derived(&doc(
        r#"{
        "/things": {"get": {"operationId": "listThings", "responses": {"200": {"description": "", "content": {"application/json": {"schema":
            {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "object", "properties": {"thing_id": {"type": "string"}}}}}}}}}}}},
        "/things/{thing_id}": {"get": {"operationId": "getThing", "parameters": [{"name": "thing_id", "in": "path", "required": true, "schema": {"type": "string"}}],
            "responses": {"200": {"description": ""}}}}
    }"#,
        "{}",
    ));
    let w = load(&d);
    let list = w.model().requests.iter().find(|r| r.name == "listThings").unwrap();
    assert_eq!(list.captures[0].source, workload::model::CaptureSource::Json("/items/0/thing_id".into()));
    assert_eq!(w.fallback(w.find("getThing").unwrap()).map(|f| w.name(f)), Some("listThings"));
    assert!(d.flows.is_empty(), "a list is not a create: {:?}", d.flows);
}

#[test]
fn an_oauth2_password_flow_becomes_the_setup_login_with_placeholders() {
    let d = derived(&doc(
        r#"{"/me": {"get": {"operationId": "me", "security": [{"oauth": []}], "responses": {"200": {"description": ""}}}}}"#,
        r#"{"securitySchemes": {"oauth": {"type": "oauth2", "flows": {"password": {"tokenUrl": "/auth/token", "scopes": {}}}}}}"#,
    ));
    let w = load(&d);
    let login = w.setup()[0];
    assert_eq!(w.name(login), "login");
    let setup = w.model().all_requests().find(|r| r.name == "login").unwrap();
    assert_eq!(setup.path.as_literal(), Some("/auth/token"));
    assert_eq!(setup.content_type.as_deref(), Some("application/x-www-form-urlencoded"));
    assert_eq!(w.needs(w.find("me").unwrap()).iter().map(|p| w.pool_name(*p)).collect::<Vec<_>>(), ["login_token"]);
    assert!(d.text.contains("grant_type=password&username={{ env(TRAFFICGEN_ENV_USERNAME) }}&password={{ env(TRAFFICGEN_ENV_PASSWORD) }}"), "{}", d.text);
    assert!(
        d.text.contains(
            "# Credentials come from the environment (env()): set these before running it or checking it:\n#   TRAFFICGEN_ENV_USERNAME\n#   TRAFFICGEN_ENV_PASSWORD\n"
        ),
        "{}",
        d.text
    );
    // Told not to log in: the token is a placeholder too.
    let d = derived_with(
        &doc(
            r#"{"/me": {"get": {"operationId": "me", "security": [{"oauth": []}], "responses": {"200": {"description": ""}}}}}"#,
            r#"{"securitySchemes": {"oauth": {"type": "oauth2", "flows": {"password": {"tokenUrl": "/auth/token", "scopes": {}}}}}}"#,
        ),
        &Options { login: LoginChoice::Off, ..Options::default() },
    );
    assert!(load(&d).setup().is_empty());
    assert!(d.text.contains("Authorization: \"Bearer {{ env(TRAFFICGEN_ENV_OAUTH_TOKEN) }}\""), "{}", d.text);
}

#[test]
fn api_keys_and_basic_credentials_go_where_the_scheme_says() {
    let d = derived(&doc(
        r#"{"/a": {"get": {"operationId": "a", "security": [{"key": [], "q": []}], "responses": {"200": {"description": ""}}}},
            "/b": {"get": {"operationId": "b", "security": [{"digest": []}, {"basic": []}], "responses": {"200": {"description": ""}}}},
            "/c": {"get": {"operationId": "c", "security": [{"session": []}], "responses": {"200": {"description": ""}}}},
            "/d": {"get": {"operationId": "d", "security": [{"digest": []}], "responses": {"200": {"description": ""}}}}}"#,
        r#"{"securitySchemes": {"key": {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
            "q": {"type": "apiKey", "in": "query", "name": "api_key"},
            "session": {"type": "apiKey", "in": "cookie", "name": "sid"},
            "basic": {"type": "http", "scheme": "basic"}, "digest": {"type": "http", "scheme": "digest"}}}"#,
    ));
    let w = load(&d);
    let a = w.model().requests.iter().find(|r| r.name == "a").unwrap();
    assert_eq!(a.headers[0].0, "X-Api-Key");
    assert_eq!(a.headers[0].1.to_string(), "{{ env(TRAFFICGEN_ENV_KEY_KEY) }}");
    assert_eq!(a.query[0].1.to_string(), "{{ env(TRAFFICGEN_ENV_Q_KEY) }}");
    assert_eq!(a.query[0].0, "api_key");
    let b = w.model().requests.iter().find(|r| r.name == "b").unwrap();
    let basic = b.headers[0].1.to_string();
    assert!(
        basic.starts_with("Basic {{ base64(")
            && basic.contains("env(TRAFFICGEN_ENV_BASIC_USERNAME)")
            && basic.contains("env(TRAFFICGEN_ENV_BASIC_PASSWORD)"),
        "{basic}"
    );
    let c = w.model().requests.iter().find(|r| r.name == "c").unwrap();
    assert_eq!(c.headers[0].1.to_string(), "sid={{ env(TRAFFICGEN_ENV_SESSION_KEY) }}");
    // Digest alone cannot be sent: left out with its place.
    assert!(w.find("d").is_none());
    assert!(
        d.problems.iter().any(|p| p.pointer == "#/paths/~1d/get/security" && p.message.contains("digest")),
        "{:?}",
        d.problems
    );
}

#[test]
fn yaml_documents_server_paths_and_form_bodies() {
    let yaml = "openapi: 3.0.0
info: {title: Y, version: '2'}
servers:
  - url: https://api.example.com/v2
paths:
  /forms/{slug}:
    parameters:
      - {name: slug, in: path, required: true, schema: {type: string, example: 'a b/c'}}
    post:
      requestBody:
        required: true
        content:
          application/x-www-form-urlencoded:
            schema:
              type: object
              required: [name, n]
              properties:
                name: {type: string, example: 'x&y'}
                n: {type: integer, minimum: 1, maximum: 3}
      responses:
        '204': {description: done}
";
    let d = derived(yaml);
    let w = load(&d);
    let r = &w.model().requests[0];
    assert_eq!(r.name, "post_forms_slug");
    assert_eq!(r.path.as_literal(), Some("/v2/forms/a%20b%2Fc"));
    assert_eq!(r.content_type.as_deref(), Some("application/x-www-form-urlencoded"));
    assert!(d.text.contains("body: \"name=x%26y&n={{ random_int(1, 3) }}\""), "{}", d.text);
    assert!(r.success.contains(204) && !r.success.contains(200));
    assert!(d.text.contains("Paths start with the first server's path /v2"), "{}", d.text);
}

#[test]
fn bad_parts_get_a_line_each_with_their_place_and_are_left_out() {
    let d = derived(&doc(
        r##"{
        "/ok": {"get": {"operationId": "ok", "responses": {"200": {"description": ""}}}},
        "/users": {"post": {"operationId": "upload", "requestBody": {"required": true, "content": {"multipart/form-data": {"schema": {"type": "object"}}}}, "responses": {"201": {"description": ""}}}},
        "/ext": {"post": {"operationId": "ext", "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "other.yaml#/Thing"}}}}, "responses": {"201": {"description": ""}}}},
        "/loop": {"post": {"operationId": "loop", "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Node"}}}}, "responses": {"201": {"description": ""}}}},
        "/none": {"put": {"operationId": "none", "requestBody": {"required": true, "content": {"application/json": {}}}, "responses": {"200": {"description": ""}}}},
        "/p/{x}": {"get": {"operationId": "undescribed", "responses": {"200": {"description": ""}}}},
        "nope": {"get": {"responses": {"200": {"description": ""}}}}
    }"##,
        r##"{"schemas": {"Node": {"type": "object", "required": ["next"], "properties": {"next": {"$ref": "#/components/schemas/Node"}}}}}"##,
    ));
    let lines: Vec<String> = d.problems.iter().map(ToString::to_string).collect();
    let expect = [
        "#/paths/~1users/post/requestBody: no body trafficgen can write (`multipart/form-data`",
        "#/paths/~1ext/post/requestBody: $ref `other.yaml#/Thing` points outside this document; external references are not fetched; left out",
        "#/paths/~1loop/post/requestBody: `next`: $ref cycle: #/components/schemas/Node → #/components/schemas/Node; left out",
        "#/paths/~1none/put/requestBody: no schema or example to make a body from; left out",
        "#/paths/~1p~1{x}/get/parameters: path parameter `x` is not described; left out",
        "#/paths/nope: a path must start with `/`; left out",
    ];
    for e in expect {
        assert!(lines.iter().any(|l| l.starts_with(e)), "no line starting {e:?} in\n{}", lines.join("\n"));
    }
    assert_eq!(lines.len(), expect.len(), "{lines:#?}");
    let w = load(&d);
    assert_eq!(w.mix(), "ok=4");
    assert!(d.text.contains("# Left out (5):"), "{}", d.text);
    assert!(d.text.contains("#   POST /loop (loop): `next`: $ref cycle"), "{}", d.text);
}

#[test]
fn whole_documents_that_cannot_be_used_are_refused_in_one_line() {
    let refused = |text: &str| derive("doc", text.as_bytes(), &Options::default()).unwrap_err().0;
    let swagger = refused(r#"{"swagger": "2.0", "info": {}, "paths": {}}"#);
    assert!(
        swagger.contains("Swagger 2.0") && swagger.contains("convert it first") && !swagger.contains('\n'),
        "{swagger}"
    );
    assert!(refused("swagger: '2.0'\n").contains("Swagger 2.0"));
    assert!(refused(r#"{"openapi": "4.0.0", "paths": {}}"#).contains("not a version trafficgen reads"));
    assert!(refused(r#"{"info": {}}"#).contains("not an OpenAPI 3 document"));
    assert!(refused(r#"{"openapi": "3.1.0", "paths": {}}"#).contains("no operations"));
    assert!(refused("[1, 2]").contains("is an object"));
    assert!(refused("{\"openapi\": ").contains("not valid JSON"));
    let bytes = [b'{', 0xff, b'}'];
    assert!(derive("doc", &bytes, &Options::default()).unwrap_err().0.contains("not UTF-8"));
    let only_bad = doc(
        r#"{"/x": {"post": {"requestBody": {"required": true, "content": {"image/png": {}}}, "responses": {}}}}"#,
        "{}",
    );
    let all_bad = refused(&only_bad);
    assert!(
        all_bad.contains("no operation could be made into a request (first: #/paths/~1x/post/requestBody"),
        "{all_bad}"
    );
    // A login named that does not exist is the user's mistake.
    let named =
        derive("doc", USERS.as_bytes(), &Options { login: LoginChoice::Named("nope".into()), ..Options::default() });
    assert!(named.unwrap_err().0.contains("--login nope"));
}

#[test]
fn names_are_labels_and_unique() {
    let d = derived(&doc(
        r#"{"/a-b/{id}": {"parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}}],
             "get": {"operationId": "9 lives!", "responses": {"200": {"description": ""}}},
             "post": {"operationId": "9 lives!", "responses": {"200": {"description": ""}}}},
            "/x": {"get": {"operationId": "a_very_long_operation_id_that_goes_on_and_on_and_on_past_the_metric_label_bound", "responses": {"200": {"description": ""}}}}}"#,
        "{}",
    ));
    let w = load(&d);
    let names: Vec<&str> = w.requests().map(|id| w.name(id)).collect();
    assert_eq!(names, ["_9_lives", "_9_lives_2", "a_very_long_operation_id_that_goes_on_and_on_and_on_past"]);
}

mod hostile;
