//! Security schemes into headers and query parameters, credentials as
//! placeholders a person fills in, and the operation that issues tokens
//! (an OAuth2 password flow's `tokenUrl`, an operation the user names, or
//! a login the document makes plain) as the workload's setup login.

use super::doc::{self, Value};
use super::operations::{self, Operation, Problem};
use super::sample::Text;
use crate::workload::Method;

/// Whether credentials are read from the environment by the workload's
/// `env()` template function, or written as placeholders a person fills in
/// (what was written before `env()` existed; kept for a file meant to hold
/// its credentials, one line away).
pub const READ_FROM_ENV: bool = true;

/// Environment variables a workload may read start with this (the
/// allow-listed prefix of `env()`).
pub const ENV_PREFIX: &str = "TRAFFICGEN_ENV_";

/// Written where a credential goes while the workload cannot read one from
/// the environment: `REPLACE_ME_TRAFFICGEN_ENV_PASSWORD`. Only letters and
/// `_`, so it is safe in a path, a query, a header, JSON and a form.
pub const PLACEHOLDER: &str = "REPLACE_ME_";

/// A credential from environment variable `var`.
pub fn credential(var: &str) -> Text {
    if READ_FROM_ENV { Text::hole(format!("env({var})")) } else { Text::lit(format!("{PLACEHOLDER}{var}")) }
}

/// The base64 of `user:password` for Basic authentication.
pub fn basic_credentials(user_var: &str, password_var: &str) -> Text {
    if READ_FROM_ENV {
        Text::hole(format!("base64(env({user_var}), ':', env({password_var}))"))
    } else {
        Text::lit(format!("{PLACEHOLDER}BASE64_OF_{user_var}_COLON_{password_var}"))
    }
}

/// `TRAFFICGEN_ENV_` and the scheme's name in upper snake case, then `suffix`.
fn env_name(scheme: &str, suffix: &str) -> String {
    let mut name = String::from(ENV_PREFIX);
    let mut last_underscore = true;
    let mut last_lower = false;
    for c in scheme.chars().take(40) {
        if c.is_ascii_alphanumeric() {
            if c.is_ascii_uppercase() && last_lower {
                name.push('_');
            }
            name.push(c.to_ascii_uppercase());
            last_underscore = false;
            last_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        } else if !last_underscore {
            last_lower = false;
            name.push('_');
            last_underscore = true;
        }
    }
    if !name.ends_with('_') {
        name.push('_');
    }
    name.push_str(suffix);
    name
}

/// The login's username and password variables.
pub const USERNAME_VAR: &str = "TRAFFICGEN_ENV_USERNAME";
pub const PASSWORD_VAR: &str = "TRAFFICGEN_ENV_PASSWORD";

/// What a request carries to authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    Header(String, Text),
    Query(String, Text),
    Cookie(String, Text),
    /// `Authorization: Bearer` with the token the setup login captured.
    LoginToken,
}

/// A security scheme as far as a workload can follow it.
#[derive(Debug, Clone)]
enum Scheme {
    Bearer,
    Basic,
    ApiKey {
        location: String,
        name: String,
    },
    /// OAuth2 or OpenID Connect: a bearer token; with a password flow,
    /// the `tokenUrl` that issues it.
    OAuth2 {
        token_url: Option<String>,
    },
    Unsupported(String),
}

fn scheme(root: &Value, name: &str) -> Option<Scheme> {
    let raw = root.get("components")?.get("securitySchemes")?.get(name)?;
    let (s, _) = doc::follow(root, raw).ok()?;
    Some(match s.str_at("type")? {
        "http" => match s.str_at("scheme").map(str::to_ascii_lowercase).as_deref() {
            Some("bearer") => Scheme::Bearer,
            Some("basic") => Scheme::Basic,
            other => Scheme::Unsupported(format!("HTTP {} authentication", other.unwrap_or("(no scheme)"))),
        },
        "apiKey" => Scheme::ApiKey {
            location: s.str_at("in").unwrap_or("header").to_string(),
            name: s.str_at("name").unwrap_or("X-API-Key").to_string(),
        },
        "oauth2" => Scheme::OAuth2 {
            token_url: s
                .get("flows")
                .and_then(|f| f.get("password"))
                .and_then(|p| p.str_at("tokenUrl"))
                .map(str::to_string),
        },
        "openIdConnect" => Scheme::OAuth2 { token_url: None },
        "mutualTLS" => Scheme::Unsupported("mutual TLS".to_string()),
        other => Scheme::Unsupported(format!("security type `{}`", doc::short(other))),
    })
}

/// The security requirements that apply to `operation`: its own, else the
/// document's. Each is a list of scheme names that must all be met.
fn requirements<'d>(root: &'d Value, operation: &Operation<'d>) -> Vec<Vec<&'d str>> {
    let list = operation.op.get("security").or_else(|| root.get("security")).and_then(Value::as_array);
    list.map(|l| {
        l.iter()
            .take(16)
            .filter_map(Value::as_object)
            .map(|requirement| requirement.iter().map(|(name, _)| name).take(8).collect())
            .collect()
    })
    .unwrap_or_default()
}

/// What `operation` must carry: the first requirement every scheme of which
/// can be met (an empty one means none is needed).
pub fn credentials(root: &Value, operation: &Operation<'_>, login: bool) -> Result<Vec<Credential>, Problem> {
    let requirements = requirements(root, operation);
    if requirements.is_empty() {
        return Ok(Vec::new());
    }
    let mut why_not = String::new();
    'requirements: for requirement in &requirements {
        let mut out = Vec::new();
        for name in requirement {
            let credential = match scheme(root, name) {
                None => {
                    why_not = format!("security scheme `{}` is not described", doc::short(name));
                    continue 'requirements;
                }
                Some(Scheme::Unsupported(what)) => {
                    why_not = format!("{what} (scheme `{}`) cannot be sent", doc::short(name));
                    continue 'requirements;
                }
                Some(Scheme::Bearer | Scheme::OAuth2 { .. }) if login => Credential::LoginToken,
                Some(Scheme::Bearer | Scheme::OAuth2 { .. }) => {
                    let mut value = Text::lit("Bearer ");
                    value.append(credential(&env_name(name, "TOKEN")));
                    Credential::Header("Authorization".to_string(), value)
                }
                Some(Scheme::Basic) => {
                    let mut value = Text::lit("Basic ");
                    value.append(basic_credentials(&env_name(name, "USERNAME"), &env_name(name, "PASSWORD")));
                    Credential::Header("Authorization".to_string(), value)
                }
                Some(Scheme::ApiKey { location, name: key }) => {
                    let value = credential(&env_name(name, "KEY"));
                    match location.as_str() {
                        "query" => Credential::Query(key, value),
                        "cookie" => Credential::Cookie(key, value),
                        _ => Credential::Header(key, value),
                    }
                }
            };
            if !out.contains(&credential) {
                out.push(credential);
            }
        }
        return Ok(out);
    }
    Err(Problem::new(format!("{}/security", operation.pointer()), format!("{why_not}; left out")))
}

/// Whether `operation` would send a bearer token (so a login helps it).
pub fn wants_token(root: &Value, operation: &Operation<'_>) -> bool {
    requirements(root, operation).first().is_some_and(|r| {
        r.iter().any(|name| matches!(scheme(root, name), Some(Scheme::Bearer | Scheme::OAuth2 { .. })))
    })
}

/// Which operation logs in.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LoginChoice {
    /// An OAuth2 password flow's `tokenUrl`, else an operation that takes a
    /// password and answers a token.
    #[default]
    Auto,
    /// None: bearer tokens are placeholders too.
    Off,
    /// An `operationId`, or `METHOD /path`.
    Named(String),
}

/// The setup login.
#[derive(Debug, Clone)]
pub enum Login {
    /// A documented operation (index), and where its answer holds the token.
    Operation { op: usize, token_pointer: String, why: String },
    /// An OAuth2 `tokenUrl` the document has no operation for: a form
    /// `grant_type=password&username=…&password=…`.
    TokenUrl { path: String, scheme: String },
}

/// Finds the login among `ops` (only those `usable`).
pub fn find_login<'d>(
    root: &'d Value,
    ops: &[Operation<'d>],
    usable: &[bool],
    choice: &LoginChoice,
    walker: &mut super::schema::Walker<'d>,
) -> Result<Option<Login>, String> {
    match choice {
        LoginChoice::Off => Ok(None),
        LoginChoice::Named(name) => {
            let found = ops.iter().position(|o| {
                o.operation_id == Some(name.as_str())
                    || name.split_once(' ').is_some_and(|(m, p)| Method::parse(m) == Some(o.method) && p == o.path)
            });
            let Some(op) = found else {
                return Err(format!("--login {name}: no operation has that operationId or METHOD /path"));
            };
            let token_pointer = token_pointer(root, &ops[op], walker).unwrap_or_else(|| "/access_token".to_string());
            Ok(Some(Login::Operation { op, token_pointer, why: "named by --login".to_string() }))
        }
        LoginChoice::Auto => {
            if !ops.iter().enumerate().any(|(i, o)| usable[i] && wants_token(root, o)) {
                return Ok(None);
            }
            if let Some((scheme, url)) = password_flow(root) {
                let path = url_path(&url, &server_base(root));
                let documented = ops.iter().position(|o| o.method == Method::Post && o.path == path);
                return Ok(Some(match documented {
                    Some(op) => Login::Operation {
                        op,
                        token_pointer: token_pointer(root, &ops[op], walker)
                            .unwrap_or_else(|| "/access_token".to_string()),
                        why: format!("the tokenUrl of OAuth2 scheme `{}`'s password flow", doc::short(&scheme)),
                    },
                    None if url.contains("://") && !url_is_relative_to_server(&url, root) => return Ok(None),
                    None => Login::TokenUrl { path, scheme },
                }));
            }
            let by_shape =
                ops.iter().enumerate().filter(|(i, o)| usable[*i] && o.method == Method::Post).find_map(|(i, o)| {
                    let takes_password = takes_password(root, o, walker);
                    let pointer = takes_password.then(|| token_pointer(root, o, walker)).flatten()?;
                    Some(Login::Operation {
                        op: i,
                        token_pointer: pointer,
                        why: "it takes a password and answers a token".to_string(),
                    })
                });
            Ok(by_shape)
        }
    }
}

/// The first OAuth2 scheme with a password flow: (scheme name, tokenUrl).
fn password_flow(root: &Value) -> Option<(String, String)> {
    let schemes = root.get("components")?.get("securitySchemes")?.as_object()?;
    schemes.iter().take(64).find_map(|(name, _)| match scheme(root, name)? {
        Scheme::OAuth2 { token_url: Some(url) } => Some((name.to_string(), url)),
        _ => None,
    })
}

/// The path every documented path is under: the first server's (`/api/v1`),
/// with its variables at their defaults; empty for `/` or none.
pub fn server_base(root: &Value) -> String {
    let Some(server) = root.get("servers").and_then(Value::as_array).and_then(|s| s.first()) else {
        return String::new();
    };
    let mut url = server.str_at("url").unwrap_or_default().to_string();
    if let Some(variables) = server.get("variables").and_then(Value::as_object) {
        for (name, variable) in variables.iter().take(16) {
            if let Some(default) = variable.str_at("default") {
                url = url.replace(&format!("{{{name}}}"), default);
            }
        }
    }
    let path = match url.find("://") {
        Some(at) => url[at + 3..].find('/').map_or("", |slash| &url[at + 3 + slash..]),
        None => url.as_str(),
    };
    let path = path.split(['?', '#']).next().unwrap_or_default().trim_end_matches('/');
    if path.starts_with('/') && !path.contains('{') { path.to_string() } else { String::new() }
}

/// The path of a token URL, relative ones resolved against the server's
/// path: `token` → `/token` (FastAPI writes `tokenUrl="token"`).
fn url_path(url: &str, base: &str) -> String {
    let path = match url.find("://") {
        Some(at) => url[at + 3..].find('/').map_or("/", |slash| &url[at + 3 + slash..]).to_string(),
        None if url.starts_with('/') => url.to_string(),
        None => format!("{base}/{url}"),
    };
    let path = path.split(['?', '#']).next().unwrap_or("/").to_string();
    // Documented paths are relative to the server's path.
    match path.strip_prefix(base) {
        Some(rest) if !base.is_empty() && rest.starts_with('/') => rest.to_string(),
        _ => path,
    }
}

fn url_is_relative_to_server(url: &str, root: &Value) -> bool {
    let server = root.get("servers").and_then(Value::as_array).and_then(|s| s.first()).and_then(|s| s.str_at("url"));
    let host = |u: &str| u.split("://").nth(1).map(|rest| rest.split('/').next().unwrap_or_default().to_string());
    server.is_some_and(|s| host(s).is_some() && host(s) == host(url))
}

/// Property names that hold a login name or a password.
pub fn is_username(name: &str) -> bool {
    let plain: String = name.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_ascii_lowercase();
    matches!(plain.as_str(), "username" | "user" | "login" | "email" | "mail" | "emailaddress")
}

pub fn is_password(name: &str) -> bool {
    let plain: String = name.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_ascii_lowercase();
    matches!(plain.as_str(), "password" | "pass" | "passwd" | "passphrase")
}

/// The request body has a password property.
fn takes_password<'d>(root: &'d Value, operation: &Operation<'d>, walker: &mut super::schema::Walker<'d>) -> bool {
    let Ok(Some((_, _, media))) = operations::request_body(root, operation) else { return false };
    let Some(schema) = media.get("schema") else { return false };
    walker.reset();
    walker.flatten(schema, 0).is_ok_and(|flat| flat.properties.iter().any(|(n, _)| is_password(n)))
}

/// Where the success answer holds a token: `/access_token`, `/token`…
fn token_pointer<'d>(
    root: &'d Value,
    operation: &Operation<'d>,
    walker: &mut super::schema::Walker<'d>,
) -> Option<String> {
    let schema = operations::success_schema(root, operation)?;
    walker.reset();
    let flat = walker.flatten(schema, 0).ok()?;
    const NAMES: [&str; 7] = ["access_token", "accessToken", "token", "id_token", "jwt", "auth_token", "authToken"];
    if let Some(name) = NAMES.iter().find(|n| flat.properties.iter().any(|(p, _)| p == *n)) {
        return Some(format!("/{name}"));
    }
    let (_, data) = flat.properties.iter().find(|(n, _)| *n == "data")?;
    let inner = walker.flatten(data, 1).ok()?;
    NAMES.iter().find(|n| inner.properties.iter().any(|(p, _)| p == *n)).map(|name| format!("/data/{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names_are_upper_snake_under_the_prefix() {
        assert_eq!(env_name("bearerAuth", "TOKEN"), "TRAFFICGEN_ENV_BEARER_AUTH_TOKEN");
        assert_eq!(env_name("api-key", "KEY"), "TRAFFICGEN_ENV_API_KEY_KEY");
        assert_eq!(env_name("OAuth2PasswordBearer", "TOKEN"), "TRAFFICGEN_ENV_OAUTH2_PASSWORD_BEARER_TOKEN");
        assert_eq!(env_name("?", "X"), "TRAFFICGEN_ENV_X");
    }

    #[test]
    fn credentials_name_their_variable() {
        assert_eq!(credential(PASSWORD_VAR).template(), "{{ env(TRAFFICGEN_ENV_PASSWORD) }}");
        let basic = basic_credentials("TRAFFICGEN_ENV_U", "TRAFFICGEN_ENV_P").template();
        assert_eq!(basic, "{{ base64(env(TRAFFICGEN_ENV_U), ':', env(TRAFFICGEN_ENV_P)) }}");
    }

    #[test]
    fn token_urls_resolve_against_the_server() {
        assert_eq!(url_path("token", ""), "/token");
        assert_eq!(url_path("/auth/token", ""), "/auth/token");
        assert_eq!(url_path("https://api.example.com/v1/token", "/v1"), "/token");
        assert_eq!(url_path("token", "/v1"), "/token");
        let doc = super::super::doc::read(r#"{"servers": [{"url": "https://{host}/api/{v}/", "variables": {"v": {"default": "v2"}, "host": {"default": "x"}}}]}"#).unwrap();
        assert_eq!(server_base(&doc), "/api/v2");
        let doc = super::super::doc::read(r#"{"servers": [{"url": "/"}]}"#).unwrap();
        assert_eq!(server_base(&doc), "");
    }
}
