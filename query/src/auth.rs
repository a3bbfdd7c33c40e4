//! API tokens, roles and the middleware that checks them.
//!
//! Tokens come from the config (`[[auth.token]]`), each with a name and roles. A request
//! presents one as `Authorization: Bearer <token>`; Elasticsearch clients may send it as
//! the password of `Basic` auth (any user name) or as an `ApiKey`. Every route belongs to a
//! class that needs one role (see [`route_class`]); `admin` holds every role. `/healthz` is
//! always open, and `/metrics` unless [`Auth::metrics_need_token`].
//!
//! Only SHA-256 digests of the tokens are kept, and a presented token is compared with
//! every configured digest in constant time, so neither timing nor a memory dump of the
//! server reveals a token. With no token configured, auth is off and every request passes
//! (the node then refuses non-loopback addresses at start, see the binary's `node.rs`).

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Send events: native ingest, Elasticsearch `_bulk`, OTLP, Loki push.
    Ingest,
    /// Search, tail, aggregate, services, metrics, Elasticsearch `_search`.
    Read,
    /// Prediction history and its proofs (routes to come); reserved so configs can name it.
    Audit,
    /// Everything, including applying retention.
    Admin,
}

impl Role {
    /// The name used in configs and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Read => "read",
            Role::Audit => "audit",
            Role::Admin => "admin",
        }
    }
}

/// How a configured token is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSecret {
    /// The token itself.
    Plain(String),
    /// The SHA-256 of the token, 64 hex digits (so the config file holds no secret).
    Sha256Hex(String),
}

/// One configured token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// Name shown in logs and errors (never the token).
    pub name: String,
    /// The token or its digest.
    pub secret: TokenSecret,
    /// What it may do.
    pub roles: Vec<Role>,
}

#[derive(Debug, Clone)]
struct Known {
    name: String,
    digest: [u8; 32],
    roles: Vec<Role>,
}

/// The configured tokens; empty means auth is off.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    tokens: Vec<Known>,
    metrics_need_token: bool,
}

/// Which role a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteClass {
    /// No token needed (`/healthz`).
    Open,
    /// `/metrics`: open unless configured otherwise, then `read`.
    Metrics,
    /// Any valid token (the Elasticsearch handshake routes every client calls first).
    AnyToken,
    /// A token with this role.
    Needs(Role),
}

/// SHA-256 of a token.
pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether two digests are equal, in time independent of where they differ.
pub fn digests_equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.ct_eq(b).into()
}

fn parse_hex_digest(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

impl Auth {
    /// Auth off: every request passes.
    pub fn disabled() -> Self {
        Auth::default()
    }

    /// Checks and loads configured tokens: names unique and non-empty, tokens at least 16
    /// characters, digests 64 hex digits, at least one role each.
    pub fn new(tokens: &[ApiToken]) -> Result<Self, String> {
        let mut known: Vec<Known> = Vec::with_capacity(tokens.len());
        for t in tokens {
            if t.name.trim().is_empty() {
                return Err("a token has an empty name: give each [[auth.token]] a name".into());
            }
            if known.iter().any(|k| k.name == t.name) {
                return Err(format!(
                    "token name '{}' is used twice: names must be unique",
                    t.name
                ));
            }
            if t.roles.is_empty() {
                return Err(format!(
                    "token '{}' has no roles: add roles = [\"read\"] (ingest, read, audit, admin)",
                    t.name
                ));
            }
            let digest = match &t.secret {
                TokenSecret::Plain(s) if s.chars().count() < 16 => {
                    return Err(format!(
                        "token '{}' is shorter than 16 characters: use a long random token, e.g. `openssl rand -hex 24`",
                        t.name
                    ));
                }
                TokenSecret::Plain(s) => digest(s),
                TokenSecret::Sha256Hex(h) => parse_hex_digest(h).ok_or_else(|| {
                    format!(
                        "token_sha256 of token '{}' is not 64 hex digits: use `printf %s TOKEN | sha256sum`",
                        t.name
                    )
                })?,
            };
            if known.iter().any(|k| digests_equal(&k.digest, &digest)) {
                return Err(format!("token '{}' repeats another token's secret", t.name));
            }
            known.push(Known {
                name: t.name.clone(),
                digest,
                roles: t.roles.clone(),
            });
        }
        Ok(Auth {
            tokens: known,
            metrics_need_token: false,
        })
    }

    /// Makes `/metrics` need a `read` token too.
    pub fn with_metrics_token(mut self, need: bool) -> Self {
        self.metrics_need_token = need;
        self
    }

    /// Whether any token is configured (auth on).
    pub fn is_enabled(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// Whether `/metrics` needs a token.
    pub fn metrics_need_token(&self) -> bool {
        self.metrics_need_token && self.is_enabled()
    }

    /// The name and roles of the configured token equal to `presented`. Every configured
    /// digest is compared, in constant time, whatever matches.
    fn identify(&self, presented: &str) -> Option<&Known> {
        let d = digest(presented);
        let mut found = None;
        for k in &self.tokens {
            if digests_equal(&k.digest, &d) {
                found = Some(k);
            }
        }
        found
    }

    /// Decides a request: who is calling, to pass it on, or the 401/403 answer.
    pub fn check(&self, class: RouteClass, headers: &HeaderMap) -> Result<Caller, ApiError> {
        if !self.is_enabled() {
            return Ok(Caller::unauthenticated());
        }
        let needed = match class {
            RouteClass::Open => return Ok(Caller::anonymous()),
            RouteClass::Metrics if !self.metrics_need_token => return Ok(Caller::anonymous()),
            RouteClass::Metrics => Some(Role::Read),
            RouteClass::AnyToken => None,
            RouteClass::Needs(role) => Some(role),
        };
        let presented = credentials(headers)?;
        let Some(known) = self.identify(&presented) else {
            return Err(ApiError::unauthorized(
                "invalid token: it matches no [[auth.token]] of this server; check SHIPLOG_TOKEN",
            ));
        };
        match needed {
            Some(role) if !known.roles.contains(&role) && !known.roles.contains(&Role::Admin) => {
                Err(ApiError::forbidden(format!(
                    "token '{}' lacks role '{}': use a token with that role or add it to the token's roles",
                    known.name,
                    role.as_str()
                )))
            }
            _ => Ok(Caller {
                name: known.name.clone(),
                roles: known.roles.clone(),
            }),
        }
    }
}

/// The caller of a request, from the extension [`require`] sets; a handler reached
/// without it (no auth layer) is treated as [`Caller::anonymous`], so it fails closed.
pub fn caller(ext: Option<axum::Extension<Caller>>) -> Caller {
    ext.map(|e| e.0).unwrap_or_else(Caller::anonymous)
}

/// Who made a request, as auth established it; handlers find it in the request's
/// extensions (audit records name the token, searches hide predictions from tokens
/// without the `audit` role).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's name; `unauthenticated` when auth is off, `anonymous` on open routes.
    pub name: String,
    /// The token's roles.
    pub roles: Vec<Role>,
}

impl Caller {
    /// A request to a server without tokens: it may do anything (auth is off, which
    /// `shiplog up` allows only on loopback unless told otherwise).
    pub fn unauthenticated() -> Self {
        Caller {
            name: "unauthenticated".to_string(),
            roles: vec![Role::Admin],
        }
    }

    /// A request to an open route of a server with tokens.
    pub fn anonymous() -> Self {
        Caller {
            name: "anonymous".to_string(),
            roles: Vec::new(),
        }
    }

    /// Whether the caller holds `role` (admin holds every role).
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role) || self.roles.contains(&Role::Admin)
    }

    /// Narrows a read query to what this caller may see: predictions only with `audit`.
    pub fn scope(&self, query: shiplog_core::query::Query) -> shiplog_core::query::Query {
        use shiplog_core::query::{KeywordField, Query};
        if self.has(Role::Audit) {
            return query;
        }
        let no_predictions = Query::Not(Box::new(Query::Keyword {
            field: KeywordField::Kind,
            value: "prediction".to_string(),
        }));
        match query {
            Query::All => Query::And(vec![no_predictions]),
            Query::And(mut parts) => {
                parts.push(no_predictions);
                Query::And(parts)
            }
            other => Query::And(vec![other, no_predictions]),
        }
    }
}

/// The token a request presents: `Bearer <token>`, `Basic` with the token as password (or
/// as user name with an empty password), or `ApiKey <token>` / `ApiKey base64(id:token)`.
fn credentials(headers: &HeaderMap) -> Result<String, ApiError> {
    let missing = || ApiError::unauthorized("missing token: send Authorization: Bearer <token>");
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(missing());
    };
    let value = value.to_str().map_err(|_| {
        ApiError::unauthorized(
            "the Authorization header is not text: send Authorization: Bearer <token>",
        )
    })?;
    let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    let rest = rest.trim();
    let decode = |s: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
    };
    let token = match scheme.to_ascii_lowercase().as_str() {
        "bearer" => rest.to_string(),
        "basic" => {
            let pair = decode(rest).ok_or_else(|| {
                ApiError::unauthorized("malformed Basic credentials: send base64 of user:token")
            })?;
            match pair.split_once(':') {
                Some((user, "")) => user.to_string(),
                Some((_, pass)) => pass.to_string(),
                None => pair,
            }
        }
        "apikey" => match decode(rest).as_deref().and_then(|p| p.split_once(':')) {
            Some((_, key)) => key.to_string(),
            None => rest.to_string(),
        },
        other => {
            return Err(ApiError::unauthorized(format!(
                "unsupported authorization scheme '{other}': send Authorization: Bearer <token>"
            )));
        }
    };
    if token.is_empty() {
        return Err(missing());
    }
    Ok(token)
}

/// The class of a route, by its route template (or path, for unmatched requests). Anything
/// not listed needs `read`, so a new route is closed until it is classified.
pub fn route_class(method: &Method, route: &str, query: Option<&str>) -> RouteClass {
    match route {
        "/healthz" => RouteClass::Open,
        "/metrics" => RouteClass::Metrics,
        "/" | "/_cluster/health" => RouteClass::AnyToken,
        "/api/v1/ingest" | "/_bulk" | "/{index}/_bulk" | "/v1/logs" | "/loki/api/v1/push"
        | "/_refresh" | "/{index}/_refresh" => RouteClass::Needs(Role::Ingest),
        // Changing what alerts say or who hears them is an operator's call.
        "/api/v1/alerts/reload" | "/api/v1/silences/{id}" => RouteClass::Needs(Role::Admin),
        "/api/v1/silences" if method == Method::POST => RouteClass::Needs(Role::Admin),
        "/api/v1/predictions" if method == Method::POST => RouteClass::Needs(Role::Ingest),
        // The summary (rates, error ratios, p95 per model) is prediction data too.
        "/api/v1/predictions"
        | "/api/v1/predictions/summary"
        | "/api/v1/predictions/exports/{id}" => RouteClass::Needs(Role::Audit),
        "/api/v1/audit/access" => RouteClass::Needs(Role::Admin),
        "/api/v1/retention" => {
            // A dry run only reads; applying retention deletes data.
            let applies = method == Method::POST
                && query.is_some_and(|q| {
                    q.split('&')
                        .any(|kv| kv.eq_ignore_ascii_case("dry_run=false"))
                });
            if applies {
                RouteClass::Needs(Role::Admin)
            } else {
                RouteClass::Needs(Role::Read)
            }
        }
        _ => RouteClass::Needs(Role::Read),
    }
}

/// Middleware: answers 401/403 before the handler runs when the token does not allow the
/// route.
pub async fn require(State(auth): State<Arc<Auth>>, mut req: Request, next: Next) -> Response {
    if !auth.is_enabled() {
        req.extensions_mut().insert(Caller::unauthenticated());
        return next.run(req).await;
    }
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| req.uri().path().to_string());
    let class = route_class(req.method(), &route, req.uri().query());
    match auth.check(class, req.headers()) {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(e) => {
            let challenge = e.status == axum::http::StatusCode::UNAUTHORIZED;
            let mut resp = e.into_response();
            if challenge {
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"shiplog\""),
                );
            }
            resp
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_compare_equal_only_when_equal() {
        let a = digest("a-long-enough-token-1");
        let b = digest("a-long-enough-token-2");
        assert!(digests_equal(&a, &a));
        assert!(!digests_equal(&a, &b));
        // A difference in the last byte only, and in the first byte only.
        let mut c = a;
        c[31] ^= 1;
        assert!(!digests_equal(&a, &c));
        let mut d = a;
        d[0] ^= 0x80;
        assert!(!digests_equal(&a, &d));
    }

    #[test]
    fn hex_digests_are_accepted_and_checked() {
        let token = "0123456789abcdef-token";
        let hex: String = digest(token).iter().map(|b| format!("{b:02x}")).collect();
        let auth = Auth::new(&[ApiToken {
            name: "ci".into(),
            secret: TokenSecret::Sha256Hex(hex.to_uppercase()),
            roles: vec![Role::Ingest],
        }])
        .unwrap();
        assert_eq!(auth.identify(token).map(|k| k.name.as_str()), Some("ci"));
        assert!(auth.identify("0123456789abcdef-tokeN").is_none());
        for bad in ["", "zz", &"g".repeat(64)] {
            let e = Auth::new(&[ApiToken {
                name: "x".into(),
                secret: TokenSecret::Sha256Hex(bad.to_string()),
                roles: vec![Role::Read],
            }])
            .unwrap_err();
            assert!(e.contains("64 hex digits"), "{e}");
        }
    }

    #[test]
    fn bad_token_configs_are_refused_with_the_reason() {
        let t = |name: &str, secret: &str, roles: Vec<Role>| ApiToken {
            name: name.into(),
            secret: TokenSecret::Plain(secret.into()),
            roles,
        };
        let long = "x".repeat(20);
        assert!(
            Auth::new(&[t("a", "short", vec![Role::Read])])
                .unwrap_err()
                .contains("16")
        );
        assert!(
            Auth::new(&[t("a", &long, vec![])])
                .unwrap_err()
                .contains("no roles")
        );
        assert!(
            Auth::new(&[t("", &long, vec![Role::Read])])
                .unwrap_err()
                .contains("empty name")
        );
        let dup = Auth::new(&[
            t("a", &long, vec![Role::Read]),
            t("a", &"y".repeat(20), vec![Role::Read]),
        ]);
        assert!(dup.unwrap_err().contains("twice"));
    }

    #[test]
    fn routes_are_classified() {
        let get = Method::GET;
        let post = Method::POST;
        assert_eq!(route_class(&get, "/healthz", None), RouteClass::Open);
        assert_eq!(
            route_class(&post, "/_bulk", None),
            RouteClass::Needs(Role::Ingest)
        );
        assert_eq!(
            route_class(&post, "/api/v1/aggregate", None),
            RouteClass::Needs(Role::Read)
        );
        assert_eq!(
            route_class(&get, "/nope", None),
            RouteClass::Needs(Role::Read)
        );
        assert_eq!(
            route_class(&post, "/api/v1/retention", Some("dry_run=false")),
            RouteClass::Needs(Role::Admin)
        );
        assert_eq!(
            route_class(&post, "/api/v1/retention", Some("dry_run=true")),
            RouteClass::Needs(Role::Read)
        );
        for (m, route, role) in [
            (&get, "/api/v1/alerts", Role::Read),
            (&get, "/api/v1/alerts/history", Role::Read),
            (&get, "/api/v1/alerts/rules", Role::Read),
            (&get, "/api/v1/silences", Role::Read),
            (&post, "/api/v1/alerts/reload", Role::Admin),
            (&post, "/api/v1/silences", Role::Admin),
            (&Method::DELETE, "/api/v1/silences/{id}", Role::Admin),
        ] {
            assert_eq!(
                route_class(m, route, None),
                RouteClass::Needs(role),
                "{m} {route}"
            );
        }
    }

    #[test]
    fn credentials_are_read_from_every_scheme() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
            m
        };
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        assert_eq!(credentials(&h("Bearer abc")).unwrap(), "abc");
        assert_eq!(
            credentials(&h(&format!("Basic {}", b64("elastic:abc")))).unwrap(),
            "abc"
        );
        assert_eq!(
            credentials(&h(&format!("Basic {}", b64("abc:")))).unwrap(),
            "abc"
        );
        assert_eq!(
            credentials(&h(&format!("ApiKey {}", b64("id:abc")))).unwrap(),
            "abc"
        );
        assert_eq!(credentials(&h("ApiKey abc")).unwrap(), "abc");
        assert!(
            credentials(&HeaderMap::new())
                .unwrap_err()
                .message
                .starts_with("missing token")
        );
        assert!(credentials(&h("Digest x")).is_err());
        assert!(credentials(&h("Bearer ")).is_err());
    }
}
