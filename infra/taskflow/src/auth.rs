//! Owner tokens for the local HTTP API, done the way AWS does them: an issuer (Cognito's part)
//! signs JWTs with a key of its own and publishes the public half as a JWKS; the authorizer (API
//! Gateway's JWT authorizer) fetches that JWKS from the issuer's URL and checks signature,
//! expiry, issuer and audience before any function runs. `taskflow up` generates the key (ES256,
//! P-256) and keeps it in the state directory, so `taskflow token --owner NAME` can sign for it.

use anyhow::{bail, Context, Result};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::Path;

/// The audience of local tokens (a user pool client id, on AWS).
pub const AUDIENCE: &str = "taskflow-local";

/// The issuer's key and where it publishes its JWKS. Saved as `token-issuer.json`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Issuer {
    /// The issuer URL: tokens name it in `iss`; its JWKS is at `{issuer}/.well-known/jwks.json`.
    pub issuer: String,
    pub audience: String,
    pub key_id: String,
    /// PKCS#8 DER of the private key, base64. A local, throwaway key: never an AWS secret.
    private_key: String,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer").field("issuer", &self.issuer).field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

/// What a token says, as far as taskflow reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    #[serde(default)]
    pub token_use: Option<String>,
    /// The caller's groups, as a Cognito user pool puts them in its tokens (`cognito:groups`):
    /// `operators` opens the operators' routes.
    #[serde(rename = "cognito:groups", default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

impl Issuer {
    /// A new key for the issuer at `issuer`.
    pub fn generate(issuer: &str) -> Result<Issuer> {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .map_err(|_| anyhow::anyhow!("generating the token signing key"))?;
        Ok(Issuer {
            issuer: issuer.trim_end_matches('/').to_string(),
            audience: AUDIENCE.to_string(),
            key_id: format!("taskflow-local-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
            private_key: STANDARD.encode(pkcs8.as_ref()),
        })
    }

    pub fn load(path: &Path) -> Result<Issuer> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {} (is `taskflow up` running?)", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        std::fs::write(path, serde_json::to_string_pretty(self)? + "\n").with_context(|| format!("writing {}", path.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        }
        Ok(())
    }

    fn pkcs8(&self) -> Result<Vec<u8>> {
        STANDARD.decode(&self.private_key).context("the issuer key is not base64")
    }

    /// The public key as a JWKS, as `{issuer}/.well-known/jwks.json` serves it.
    pub fn jwks(&self) -> Result<Value> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &self.pkcs8()?)
            .map_err(|_| anyhow::anyhow!("the issuer key is not a P-256 key"))?;
        // An uncompressed point: 0x04, then x and y, 32 bytes each.
        let point = pair.public_key().as_ref();
        if point.len() != 65 || point[0] != 4 {
            bail!("unexpected public key encoding");
        }
        Ok(json!({"keys": [{
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": self.key_id,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        }]}))
    }

    /// A token for `owner`, valid from now for `ttl_seconds` (negative: already expired).
    pub fn token(&self, owner: &str, ttl_seconds: i64) -> Result<String> {
        self.token_in_groups(owner, &[], ttl_seconds)
    }

    /// A token for `subject` in `groups` (`cognito:groups`; `["operators"]` for an operator).
    pub fn token_in_groups(&self, subject: &str, groups: &[&str], ttl_seconds: i64) -> Result<String> {
        let owner = subject;
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: owner.to_string(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: now.min(now + ttl_seconds),
            exp: now + ttl_seconds,
            token_use: Some("access".into()),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.key_id.clone());
        Ok(jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ec_der(&self.pkcs8()?))?)
    }
}

/// Why a request was refused (always 401 to the caller, as API Gateway answers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    NoToken,
    Invalid(String),
}

/// API Gateway's JWT authorizer: issuer and audience configured, keys from the issuer's JWKS.
pub struct Authorizer {
    issuer: String,
    audience: String,
    keys: JwkSet,
}

impl Authorizer {
    /// Fetches the issuer's JWKS over HTTP, as API Gateway does.
    pub async fn discover(issuer: &str, audience: &str) -> Result<Authorizer> {
        let url = format!("{}/.well-known/jwks.json", issuer.trim_end_matches('/'));
        let body = http_get(&url).await.with_context(|| format!("fetching {url}"))?;
        let keys: JwkSet = serde_json::from_str(&body).with_context(|| format!("{url} is not a JWKS"))?;
        Ok(Authorizer { issuer: issuer.trim_end_matches('/').to_string(), audience: audience.to_string(), keys })
    }

    /// The claims of the bearer token in `authorization` (an `Authorization` header value).
    pub fn authorize(&self, authorization: Option<&str>) -> Result<Claims, Refused> {
        let token = authorization
            .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(Refused::NoToken)?;
        let header = jsonwebtoken::decode_header(token).map_err(|e| Refused::Invalid(format!("malformed token: {e}")))?;
        let key = match &header.kid {
            Some(kid) => self.keys.find(kid),
            None => self.keys.keys.first(),
        }
        .ok_or_else(|| Refused::Invalid("signed with a key the issuer does not publish".into()))?;
        let key = DecodingKey::from_jwk(key).map_err(|e| Refused::Invalid(format!("issuer key unusable: {e}")))?;
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map(|data| data.claims)
            .map_err(|e| Refused::Invalid(e.to_string()))
    }
}

/// A GET of the local issuer (plain HTTP on loopback), through the same small client the stack
/// uses for the emulator's own API.
async fn http_get(url: &str) -> Result<String> {
    let rest = url.strip_prefix("http://127.0.0.1:").context("the local issuer is plain http on 127.0.0.1")?;
    let (port, path) = rest.split_once('/').map(|(p, path)| (p, format!("/{path}"))).unwrap_or((rest, "/".into()));
    let port: u16 = port.parse().context("the issuer URL has no port")?;
    let (status, body) = crate::emulator::http(port, "GET", &path, "").await?;
    if status != 200 {
        bail!("HTTP {status}");
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authorizer_for(issuer: &Issuer) -> Authorizer {
        let keys: JwkSet = serde_json::from_value(issuer.jwks().unwrap()).unwrap();
        Authorizer { issuer: issuer.issuer.clone(), audience: AUDIENCE.into(), keys }
    }

    #[test]
    fn a_token_is_accepted_only_when_signed_current_and_addressed_here() {
        let issuer = Issuer::generate("http://127.0.0.1:1").unwrap();
        let authorizer = authorizer_for(&issuer);
        let good = issuer.token("alice", 300).unwrap();
        assert_eq!(authorizer.authorize(Some(&format!("Bearer {good}"))).unwrap().sub, "alice");

        assert_eq!(authorizer.authorize(None), Err(Refused::NoToken));
        assert_eq!(authorizer.authorize(Some("Basic abc")), Err(Refused::NoToken));
        let expired = issuer.token("alice", -60).unwrap();
        assert!(matches!(authorizer.authorize(Some(&format!("Bearer {expired}"))), Err(Refused::Invalid(_))));
        // Same key id, another key: the signature does not verify.
        let mut forger = Issuer::generate("http://127.0.0.1:1").unwrap();
        forger.key_id = issuer.key_id.clone();
        let forged = forger.token("alice", 300).unwrap();
        assert!(matches!(authorizer.authorize(Some(&format!("Bearer {forged}"))), Err(Refused::Invalid(_))));
        // Another issuer's (valid) token.
        let elsewhere = Issuer::generate("http://127.0.0.1:2").unwrap();
        let theirs = elsewhere.token("alice", 300).unwrap();
        assert!(authorizer_for(&elsewhere).authorize(Some(&format!("Bearer {theirs}"))).is_ok());
        assert!(authorizer.authorize(Some(&format!("Bearer {theirs}"))).is_err());
        // A tampered payload.
        let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
        parts[1] = URL_SAFE_NO_PAD.encode(br#"{"sub":"bob","iss":"http://127.0.0.1:1","aud":"taskflow-local","iat":0,"exp":9999999999}"#);
        assert!(authorizer.authorize(Some(&format!("Bearer {}", parts.join(".")))).is_err());
    }
}
