//! The local API Gateway: the template's HTTP API routes served on a loopback port, each request
//! authorized by the JWT authorizer (see [`crate::auth`]), turned into an HTTP API payload 2.0
//! event and handed to the route's function through the same host that runs every function.
//! Also the local token issuer's JWKS endpoint (Cognito's part), on a port of its own.

use crate::auth::{Authorizer, Issuer, Refused};
use crate::host::{Function, Outcome};
use crate::plan::HttpRouteSpec;
use anyhow::Result;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::watch;

/// A route and the function it invokes.
struct Route {
    method: String,
    path: String,
    function: Arc<Function>,
}

impl Route {
    /// The path parameters, if `path` is this route's.
    fn matches(&self, method: &str, path: &str) -> Option<HashMap<String, String>> {
        if self.method != method {
            return None;
        }
        let (pattern, actual): (Vec<&str>, Vec<&str>) = (self.path.split('/').collect(), path.split('/').collect());
        if pattern.len() != actual.len() {
            return None;
        }
        let mut parameters = HashMap::new();
        for (p, a) in pattern.iter().zip(&actual) {
            match p.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                Some(name) if !a.is_empty() => {
                    parameters.insert(name.to_string(), percent_decode(a));
                }
                Some(_) => return None,
                None if p == a => {}
                None => return None,
            }
        }
        Some(parameters)
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

struct Gateway {
    routes: Vec<Route>,
    authorizer: Authorizer,
}

pub struct Endpoints {
    /// The HTTP API's base URL (the stack output `ApiUrl`).
    pub api_url: String,
    /// The token issuer (`iss` of the tokens; its JWKS under `/.well-known/jwks.json`).
    pub issuer_url: String,
}

/// Serves the issuer's JWKS, then the HTTP API with its authorizer, until `shutdown`.
pub async fn start(
    routes: &[HttpRouteSpec],
    functions: &HashMap<String, Arc<Function>>,
    issuer_file: &std::path::Path,
    shutdown: watch::Receiver<bool>,
) -> Result<Endpoints> {
    // The issuer: a fresh key per stack, kept where `taskflow token` finds it.
    let issuer_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let issuer_url = format!("http://{}", issuer_listener.local_addr()?);
    let issuer = Issuer::generate(&issuer_url)?;
    issuer.save(issuer_file)?;
    let jwks = Arc::new(issuer.jwks()?);
    let issuer_app = Router::new().route("/.well-known/jwks.json", get(|State(jwks): State<Arc<Value>>| async move { axum::Json((*jwks).clone()) })).with_state(jwks);
    serve(issuer_listener, issuer_app, shutdown.clone());

    // The API, whose authorizer learns the keys from the issuer, as API Gateway does.
    let authorizer = Authorizer::discover(&issuer_url, &issuer.audience).await?;
    let mut table = Vec::new();
    for route in routes {
        let function = functions
            .get(&route.function)
            .ok_or_else(|| anyhow::anyhow!("route {} {} for unknown function {}", route.method, route.path, route.function))?;
        table.push(Route { method: route.method.clone(), path: route.path.clone(), function: function.clone() });
    }
    let api_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let api_url = format!("http://{}", api_listener.local_addr()?);
    let app = Router::new().fallback(handle).with_state(Arc::new(Gateway { routes: table, authorizer }));
    serve(api_listener, app, shutdown);
    Ok(Endpoints { api_url, issuer_url })
}

fn serve(listener: tokio::net::TcpListener, app: Router, mut shutdown: watch::Receiver<bool>) {
    tokio::spawn(async move {
        let _ = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async move { crate::process::stopped(&mut shutdown).await })
            .await;
    });
}

fn message(status: StatusCode, text: &str) -> Response {
    (status, axum::Json(json!({"message": text}))).into_response()
}

async fn handle(State(gateway): State<Arc<Gateway>>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path();
    let Some((route, parameters)) = gateway.routes.iter().find_map(|r| r.matches(method.as_str(), path).map(|p| (r, p))) else {
        return message(StatusCode::NOT_FOUND, "Not Found");
    };
    // The authorizer runs before any function, and its refusal is all the caller learns.
    let claims = match gateway.authorizer.authorize(headers.get("authorization").and_then(|v| v.to_str().ok())) {
        Ok(claims) => claims,
        Err(Refused::NoToken | Refused::Invalid(_)) => return message(StatusCode::UNAUTHORIZED, "Unauthorized"),
    };
    let route_key = format!("{} {}", route.method, route.path);
    let mut header_map = Map::new();
    for (name, value) in &headers {
        if let Ok(value) = value.to_str() {
            header_map.insert(name.as_str().to_string(), Value::from(value));
        }
    }
    let now = chrono::Utc::now();
    let (text, base64) = match std::str::from_utf8(&body) {
        Ok(text) => (text.to_string(), false),
        Err(_) => {
            use base64::Engine;
            (base64::engine::general_purpose::STANDARD.encode(&body), true)
        }
    };
    let claims_value = serde_json::to_value(&claims).unwrap_or_default();
    // API Gateway hands claims over as strings.
    let claims_map: Map<String, Value> = claims_value
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.clone(), Value::from(v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))))
        .collect();
    let event = json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": uri.query().unwrap_or_default(),
        "headers": header_map,
        "pathParameters": parameters,
        "queryStringParameters": query_parameters(uri.query().unwrap_or_default()),
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "authorizer": {"jwt": {"claims": claims_map, "scopes": null}},
            "domainName": uri.host().unwrap_or("127.0.0.1"),
            "http": {"method": method.as_str(), "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1",
                     "userAgent": headers.get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or_default()},
            "requestId": uuid::Uuid::new_v4().to_string(),
            "routeKey": route_key,
            "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S +0000").to_string(),
            "timeEpoch": now.timestamp_millis(),
        },
        "body": if body.is_empty() { Value::Null } else { Value::from(text) },
        "isBase64Encoded": base64,
    });
    match route.function.invoke(event.to_string().into_bytes()).await {
        Outcome::Response(bytes) => into_response(&bytes),
        Outcome::Error(_) | Outcome::Crashed(_) => message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
    }
}

/// The query string as payload 2.0 hands it over: decoded values by name, a repeated name's
/// values joined with commas (API Gateway HTTP API, "Working with AWS Lambda proxy integrations
/// for HTTP APIs"); `null` when there is none.
fn query_parameters(query: &str) -> Value {
    let mut map: Map<String, Value> = Map::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (name, value) = (percent_decode(&name.replace('+', " ")), percent_decode(&value.replace('+', " ")));
        match map.get_mut(&name) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(&value);
            }
            _ => {
                map.insert(name, Value::from(value));
            }
        }
    }
    if map.is_empty() { Value::Null } else { Value::Object(map) }
}

/// A payload 2.0 response (`statusCode`, `headers`, `body`, `isBase64Encoded`) as HTTP.
fn into_response(bytes: &[u8]) -> Response {
    let Ok(answer) = serde_json::from_slice::<Value>(bytes) else {
        return message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
    };
    let status = answer["statusCode"].as_u64().and_then(|s| StatusCode::from_u16(s as u16).ok()).unwrap_or(StatusCode::OK);
    let body = match (answer["body"].as_str(), answer["isBase64Encoded"].as_bool()) {
        (Some(b), Some(true)) => {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.decode(b).unwrap_or_default()
        }
        (Some(b), _) => b.as_bytes().to_vec(),
        (None, _) => Vec::new(),
    };
    let mut response = (status, body).into_response();
    if let Some(headers) = answer["headers"].as_object() {
        for (name, value) in headers {
            if let (Ok(name), Some(Ok(value))) = (axum::http::HeaderName::try_from(name.as_str()), value.as_str().map(HeaderValue::from_str)) {
                response.headers_mut().insert(name, value);
            }
        }
    }
    response
}
