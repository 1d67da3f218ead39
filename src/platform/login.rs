//! Username/password login: the platform's documented Dex flow (`docs/platform.md`), local identity
//! provider only, with the password RSA-encrypted under the key Dex serves.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use reqwest::header::{COOKIE, HeaderValue, SET_COOKIE};
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::DecodePublicKey;
use rsa::{Pkcs1v15Encrypt, RsaPublicKey};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::platform::target::TlsOptions;
use crate::platform::{PlatformError, Result, transport_error};

/// The identity provider of password logins: the platform's local user store.
const LOCAL_IDP: &str = "local";
const SCOPE: &str = "openid profile offline_access email groups ext";

/// Builds the HTTP client for the platform's own endpoints (login); redirects are not followed because
/// every step answers with JSON naming the next URL.
pub fn http_client(tls: &TlsOptions) -> Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .user_agent(crate::platform::kube::user_agent())
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(std::time::Duration::from_secs(15))
        .timeout(std::time::Duration::from_secs(60))
        .danger_accept_invalid_certs(tls.insecure);
    for path in &tls.ca_files {
        let pem = std::fs::read(path).map_err(|source| PlatformError::Write {
            path: path.clone(),
            source,
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            PlatformError::Usage(format!(
                "--ca-file {}: not a PEM certificate bundle: {e}",
                path.display()
            ))
        })?;
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    b.build()
        .map_err(|e| PlatformError::Usage(format!("cannot set up HTTPS: {e}")))
}

/// A login session: one cookie jar for the whole flow, as the platform requires
/// (`cpaas_oidc_auth_flow` set in step 2 must come back in step 4).
struct Session<'a> {
    http: &'a reqwest::Client,
    address: &'a str,
    cookies: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct LoginStart {
    auth_url: String,
}

#[derive(Deserialize)]
struct AuthorizeReq {
    req: String,
}

#[derive(Deserialize)]
struct PubKey {
    ts: serde_json::Value,
    #[serde(default)]
    pubkey: Option<String>,
    #[serde(default)]
    pubkey_encode: Option<String>,
}

#[derive(Deserialize)]
struct Redirect {
    redirect_url: String,
}

#[derive(Deserialize)]
struct TokenResponse {
    #[serde(default)]
    id_token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
}

impl Session<'_> {
    fn fail(&self, step: &str, detail: impl Into<String>) -> PlatformError {
        PlatformError::Login {
            address: self.address.to_string(),
            step: step.to_string(),
            detail: detail.into(),
        }
    }

    async fn send<T: DeserializeOwned>(
        &mut self,
        step: &str,
        req: reqwest::RequestBuilder,
    ) -> Result<(reqwest::StatusCode, Option<T>)> {
        let mut req = req;
        if !self.cookies.is_empty() {
            let header = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            if let Ok(v) = HeaderValue::from_str(&header) {
                req = req.header(COOKIE, v);
            }
        }
        let resp = req
            .send()
            .await
            .map_err(|e| transport_error(self.address, &e))?;
        for v in resp.headers().get_all(SET_COOKIE) {
            if let Some((name, value)) = v
                .to_str()
                .ok()
                .and_then(|s| s.split(';').next())
                .and_then(|s| s.split_once('='))
            {
                self.cookies
                    .insert(name.trim().to_string(), value.trim().to_string());
            }
        }
        let status = resp.status();
        if !status.is_success() {
            return Ok((status, None));
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| transport_error(self.address, &e))?;
        let parsed = serde_json::from_slice(&body)
            .map_err(|e| self.fail(step, format!("unexpected answer (HTTP {status}): {e}")))?;
        Ok((status, Some(parsed)))
    }

    async fn get_json<T: DeserializeOwned>(&mut self, step: &str, url: &str) -> Result<T> {
        let req = self.http.get(url);
        match self.send(step, req).await? {
            (_, Some(v)) => Ok(v),
            (status, None) => Err(self.fail(step, format!("HTTP {status}"))),
        }
    }
}

/// Logs in with a local user's password and returns the bearer token for the Kubernetes proxy
/// (the OIDC id token, or the access token when the platform returns no id token).
pub async fn login(
    http: &reqwest::Client,
    address: &str,
    client_id: &str,
    username: &str,
    password: &str,
) -> Result<String> {
    let mut s = Session {
        http,
        address,
        cookies: BTreeMap::new(),
    };
    let base = url::Url::parse(address).map_err(|e| s.fail("start", e.to_string()))?;
    let join = |path: &str| {
        base.join(path)
            .map_err(|e| PlatformError::Usage(format!("{address}: {e}")))
    };

    let mut start = join("/console-platform/api/v1/token/login")?;
    start
        .query_pairs_mut()
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", &format!("{address}/dex/callback"))
        .append_pair("response_type", "code")
        .append_pair("scope", SCOPE);
    let LoginStart { auth_url } = s.get_json("login start", start.as_str()).await?;

    // Dex's authorize URL is served under the platform address; only its query matters.
    let auth_query = auth_url.split_once('?').map(|(_, q)| q).unwrap_or("");
    let mut authorize = join("/dex/api/v1/authorize")?;
    authorize.set_query(Some(auth_query));
    let AuthorizeReq { req } = s.get_json("authorize", authorize.as_str()).await?;

    let key: PubKey = s
        .get_json("public key", join("/dex/pubkey")?.as_str())
        .await?;
    let public = parse_public_key(&key).map_err(|d| s.fail("public key", d))?;
    let plain = serde_json::to_vec(&serde_json::json!({ "ts": key.ts, "password": password }))
        .map_err(|e| s.fail("password encryption", e.to_string()))?;
    let cipher = public
        .encrypt(&mut rsa::rand_core::OsRng, Pkcs1v15Encrypt, &plain)
        .map_err(|e| s.fail("password encryption", e.to_string()))?;

    let mut submit = join(&format!("/dex/api/v1/authorize/{LOCAL_IDP}"))?;
    submit.query_pairs_mut().append_pair("req", &req);
    let body = serde_json::json!({ "account": username, "password": B64.encode(cipher) });
    let request = s.http.post(submit.as_str()).json(&body);
    let redirect: Redirect = match s.send("password", request).await? {
        (_, Some(r)) => r,
        (status, None) if status.is_client_error() => {
            return Err(PlatformError::BadCredentials {
                address: address.to_string(),
                user: username.to_string(),
            });
        }
        (status, None) => return Err(s.fail("password", format!("HTTP {status}"))),
    };

    let redirect_url = url::Url::parse(&redirect.redirect_url)
        .or_else(|_| base.join(&redirect.redirect_url))
        .map_err(|e| s.fail("callback", format!("bad redirect URL: {e}")))?;
    let mut callback = join("/console-platform/api/v1/token/callback")?;
    for (k, v) in redirect_url.query_pairs() {
        if k == "code" || k == "state" {
            callback.query_pairs_mut().append_pair(&k, &v);
        }
    }
    let token: TokenResponse = s.get_json("token", callback.as_str()).await?;
    token
        .id_token
        .filter(|t| !t.is_empty())
        .or(token.access_token.filter(|t| !t.is_empty()))
        .ok_or_else(|| s.fail("token", "the answer carries no token"))
}

/// The key comes as PEM (SPKI or PKCS#1) in `pubkey`, or base64-encoded PEM in `pubkey_encode`.
fn parse_public_key(key: &PubKey) -> std::result::Result<RsaPublicKey, String> {
    let mut candidates: Vec<String> = Vec::new();
    if let Some(p) = &key.pubkey {
        candidates.push(p.clone());
    }
    if let Some(e) = &key.pubkey_encode
        && let Ok(bytes) = B64.decode(e.trim())
        && let Ok(text) = String::from_utf8(bytes)
    {
        candidates.push(text);
    }
    for pem in &candidates {
        let pem = pem.trim();
        if let Ok(k) = RsaPublicKey::from_public_key_pem(pem) {
            return Ok(k);
        }
        if let Ok(k) = RsaPublicKey::from_pkcs1_pem(pem) {
            return Ok(k);
        }
    }
    Err("the platform served no usable RSA public key".into())
}
