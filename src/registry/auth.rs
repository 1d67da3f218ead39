//! Registry authentication: `WWW-Authenticate` challenges, Basic, and Bearer tokens from the realm
//! (docker token spec `GET`, or OAuth2 `POST` for identity/refresh tokens), cached per scope set.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue, WWW_AUTHENTICATE};

use crate::registry::transport::{self, IDLE_TIMEOUT};
use crate::registry::{Credentials, RegistryError, RemoteDetail};

/// What the registry asked for in `WWW-Authenticate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

impl Challenge {
    /// Parses the first challenge we can answer. Parameters may be quoted (with `\` escapes) or bare.
    pub fn parse(value: &str) -> Option<Self> {
        let value = value.trim();
        let (scheme, rest) = value.split_once(char::is_whitespace).unwrap_or((value, ""));
        let params = parse_params(rest);
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => Some(Challenge::Basic),
            "bearer" => {
                let realm = params.get("realm")?.clone();
                Some(Challenge::Bearer {
                    realm,
                    service: params.get("service").cloned(),
                })
            }
            _ => None,
        }
    }

    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(Self::parse)
    }
}

/// `error="insufficient_scope"` in a Bearer challenge: the token is fine but lacks an action.
pub fn insufficient_scope(headers: &HeaderMap) -> bool {
    headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            parse_params(v.split_once(char::is_whitespace).map_or("", |(_, r)| r))
                .get("error")
                .map(String::as_str)
                == Some("insufficient_scope")
        })
}

fn parse_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let key: String = chars
            .by_ref()
            .take_while(|c| *c != '=')
            .collect::<String>()
            .trim()
            .to_ascii_lowercase();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek() {
                if *c == ',' {
                    break;
                }
                value.push(*c);
                chars.next();
            }
            value = value.trim().to_string();
        }
        out.insert(key, value);
    }
    out
}

/// A token scope such as `repository:team/app:pull,push`.
pub fn repo_scope(repo: &str, actions: &str) -> String {
    format!("repository:{repo}:{actions}")
}

struct Cached {
    header: HeaderValue,
    expires: Instant,
}

/// Which flags gave the client its credentials, so an auth error names the ones to fix.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Role {
    /// `--username`/`--password`, `VIOLET_USERNAME`/`VIOLET_PASSWORD` (push, create, package,
    /// mirror's destination).
    #[default]
    Destination,
    /// `violet mirror`'s source: `--from-username`/`--from-password`,
    /// `VIOLET_FROM_USERNAME`/`VIOLET_FROM_PASSWORD`; it only ever pulls.
    MirrorSource,
}

/// Per-client auth state; shared by clones of the client.
pub struct Auth {
    host: String,
    role: Role,
    credentials: Credentials,
    challenge: Mutex<Option<Challenge>>,
    tokens: Mutex<HashMap<String, Cached>>,
}

/// Tokens without `expires_in` live 60 s (docker token spec). We renew a little early so a
/// token does not expire between the check and the registry's verification.
const DEFAULT_TTL: Duration = Duration::from_secs(60);
const EARLY: Duration = Duration::from_secs(5);

#[derive(serde::Deserialize)]
struct TokenResponse {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

impl Auth {
    pub fn new(host: String, credentials: Credentials) -> Self {
        Self::with_role(host, credentials, Role::Destination)
    }

    pub fn with_role(host: String, credentials: Credentials, role: Role) -> Self {
        Self {
            host,
            role,
            credentials,
            challenge: Mutex::new(None),
            tokens: Mutex::new(HashMap::new()),
        }
    }

    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    pub fn challenge(&self) -> Option<Challenge> {
        self.challenge.lock().ok().and_then(|c| c.clone())
    }

    /// Remembers the challenge of a 401 answer. Returns false when there is none we can answer.
    pub fn learn(&self, headers: &HeaderMap) -> bool {
        match Challenge::from_headers(headers) {
            Some(c) => {
                if let Ok(mut slot) = self.challenge.lock() {
                    *slot = Some(c);
                }
                true
            }
            None => false,
        }
    }

    /// Drops the cached token for these scopes (after the registry refused it).
    pub fn invalidate(&self, scopes: &[String]) {
        if let Ok(mut t) = self.tokens.lock() {
            t.remove(&key(scopes));
        }
    }

    /// The `Authorization` header for a request needing `scopes`, fetching a token when needed.
    /// `None` before any challenge was seen, or when anonymous against Basic.
    pub async fn header(
        &self,
        http: &reqwest::Client,
        scopes: &[String],
    ) -> Result<Option<HeaderValue>, RegistryError> {
        match self.challenge() {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(self.basic()),
            Some(Challenge::Bearer { realm, service }) => {
                let k = key(scopes);
                if let Ok(tokens) = self.tokens.lock()
                    && let Some(c) = tokens.get(&k)
                    && Instant::now() < c.expires
                {
                    return Ok(Some(c.header.clone()));
                }
                let (header, ttl) = self
                    .fetch_token(http, &realm, service.as_deref(), scopes)
                    .await?;
                let expires = Instant::now() + ttl.saturating_sub(EARLY);
                if let Ok(mut tokens) = self.tokens.lock() {
                    tokens.insert(
                        k,
                        Cached {
                            header: header.clone(),
                            expires,
                        },
                    );
                }
                Ok(Some(header))
            }
        }
    }

    fn basic(&self) -> Option<HeaderValue> {
        let (user, secret) = match &self.credentials {
            Credentials::Anonymous => return None,
            Credentials::Basic { username, password } => (username, password),
            Credentials::IdentityToken { username, token } => (username, token),
        };
        let raw = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}"));
        let mut v = HeaderValue::from_str(&format!("Basic {raw}")).ok()?;
        v.set_sensitive(true);
        Some(v)
    }

    async fn fetch_token(
        &self,
        http: &reqwest::Client,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
    ) -> Result<(HeaderValue, Duration), RegistryError> {
        let realm_url = url::Url::parse(realm).map_err(|e| RegistryError::Protocol {
            registry: self.host.clone(),
            operation: "authentication",
            what: "challenge".into(),
            message: format!("token realm {realm:?} is not a URL: {e}"),
        })?;
        let realm_host = match (realm_url.host_str(), realm_url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            (None, _) => self.host.clone(),
        };
        let request = match &self.credentials {
            // An identity token is an OAuth2 refresh token: only the POST form accepts it.
            Credentials::IdentityToken { token, .. } => {
                let mut form: Vec<(&str, &str)> = vec![
                    ("grant_type", "refresh_token"),
                    ("refresh_token", token),
                    ("client_id", "violet"),
                ];
                if let Some(s) = service {
                    form.push(("service", s));
                }
                let joined = scopes.join(" ");
                if !scopes.is_empty() {
                    form.push(("scope", &joined));
                }
                let body = url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(form)
                    .finish();
                http.post(realm_url.clone())
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        "application/x-www-form-urlencoded",
                    )
                    .body(body)
            }
            _ => {
                let mut u = realm_url.clone();
                {
                    let mut q = u.query_pairs_mut();
                    if let Some(s) = service {
                        q.append_pair("service", s);
                    }
                    for s in scopes {
                        q.append_pair("scope", s);
                    }
                }
                let mut rb = http.get(u);
                if let Some(h) = self.basic() {
                    rb = rb.header(reqwest::header::AUTHORIZATION, h);
                }
                rb
            }
        };
        tracing::debug!(realm = %realm_url.as_str(), scopes = ?scopes, "fetching registry token");
        let resp = request
            .timeout(IDLE_TIMEOUT)
            .send()
            .await
            .map_err(|e| transport::classify(&realm_host, &e, realm_url.scheme() == "http"))?;
        let status = resp.status();
        tracing::debug!(realm = %realm_url.as_str(), status = status.as_u16(), "token answer");
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(self.rejected(status.as_u16(), None));
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| transport::classify(&realm_host, &e, false))?;
        if !status.is_success() {
            return Err(RegistryError::Remote {
                registry: realm_host,
                operation: "token request for",
                what: self.host.clone(),
                status: status.as_u16(),
                detail: RemoteDetail::parse(&body),
            });
        }
        let parsed: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| RegistryError::Protocol {
                registry: realm_host.clone(),
                operation: "token request for",
                what: self.host.clone(),
                message: format!("not a token answer: {e}"),
            })?;
        let token = parsed
            .token
            .or(parsed.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| RegistryError::Protocol {
                registry: realm_host.clone(),
                operation: "token request for",
                what: self.host.clone(),
                message: "the answer holds no token".into(),
            })?;
        let mut header = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            RegistryError::Protocol {
                registry: realm_host,
                operation: "token request for",
                what: self.host.clone(),
                message: "the token is not a valid header value".into(),
            }
        })?;
        header.set_sensitive(true);
        let ttl = parsed.expires_in.map_or(DEFAULT_TTL, Duration::from_secs);
        Ok((header, ttl))
    }

    /// The error for a final 401/403. Names the user, never the secret.
    pub fn rejected(&self, status: u16, repository: Option<(&str, &str)>) -> RegistryError {
        if self.role == Role::MirrorSource {
            return self.source_rejected(status, repository);
        }
        let (message, hint) = match (&self.credentials, repository) {
            (Credentials::Anonymous, _) => (
                format!("registry {} requires authentication", self.host),
                Some("pass --username/--password or --no-auth".to_string()),
            ),
            (
                Credentials::Basic { username, .. } | Credentials::IdentityToken { username, .. },
                Some((repo, actions)),
            ) => (
                format!(
                    "registry {} denied {actions} access to repository {repo} for user {username}",
                    self.host
                ),
                Some(
                    "check that the user may push to this repository (and that the project exists)"
                        .to_string(),
                ),
            ),
            (
                Credentials::Basic { username, .. } | Credentials::IdentityToken { username, .. },
                None,
            ) => (
                format!(
                    "registry {} rejected the credentials for user {username}",
                    self.host
                ),
                Some(format!(
                    "check the user and password (--username with --password or --password-stdin, VIOLET_USERNAME/VIOLET_PASSWORD, or 'docker login {}')",
                    self.host
                )),
            ),
        };
        RegistryError::Auth {
            registry: self.host.clone(),
            repository: repository.map(|(r, _)| r.to_string()),
            status,
            message,
            hint,
        }
    }
}

impl Auth {
    /// [`Auth::rejected`] for mirror's source: its own flags, and pull is all it asks for.
    fn source_rejected(&self, status: u16, repository: Option<(&str, &str)>) -> RegistryError {
        let host = &self.host;
        let (message, hint) = match (&self.credentials, repository) {
            (Credentials::Anonymous, _) => (
                format!("source registry {host} requires authentication"),
                format!(
                    "pass --from-username with --from-password or --from-password-stdin (or VIOLET_FROM_USERNAME/VIOLET_FROM_PASSWORD), or 'docker login {host}'"
                ),
            ),
            (
                Credentials::Basic { username, .. } | Credentials::IdentityToken { username, .. },
                Some((repo, actions)),
            ) => (
                format!(
                    "source registry {host} denied {actions} access to repository {repo} for user {username}"
                ),
                "check that the --from-username user may pull this repository (and that the project exists)"
                    .to_string(),
            ),
            (
                Credentials::Basic { username, .. } | Credentials::IdentityToken { username, .. },
                None,
            ) => (
                format!("source registry {host} rejected the credentials for user {username}"),
                format!(
                    "check the source user and password (--from-username with --from-password or --from-password-stdin, VIOLET_FROM_USERNAME/VIOLET_FROM_PASSWORD, or 'docker login {host}')"
                ),
            ),
        };
        RegistryError::Auth {
            registry: self.host.clone(),
            repository: repository.map(|(r, _)| r.to_string()),
            status,
            message,
            hint: Some(hint),
        }
    }
}

fn key(scopes: &[String]) -> String {
    let mut s: Vec<&str> = scopes.iter().map(String::as_str).collect();
    s.sort_unstable();
    s.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_challenges() {
        assert_eq!(
            Challenge::parse(r#"Basic realm="test-realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(
            Challenge::parse(
                r#"Bearer realm="http://127.0.0.1:5/token",service="test-registry",scope="repository:a/b:pull""#
            ),
            Some(Challenge::Bearer {
                realm: "http://127.0.0.1:5/token".into(),
                service: Some("test-registry".into())
            })
        );
        // Bare values, odd spacing, escapes, as some registries send them.
        assert_eq!(
            Challenge::parse(r#"bearer  realm=https://auth.example/token , service="a \"b\"""#),
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("a \"b\"".into())
            })
        );
        assert_eq!(Challenge::parse("Bearer service=x"), None);
        assert_eq!(Challenge::parse("Negotiate"), None);
    }

    #[test]
    fn detects_insufficient_scope() {
        let mut h = HeaderMap::new();
        h.insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Bearer realm="r",service="s",scope="repository:a:push",error="insufficient_scope""#),
        );
        assert!(insufficient_scope(&h));
        h.insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Bearer realm="r""#),
        );
        assert!(!insufficient_scope(&h));
    }

    #[test]
    fn scope_key_ignores_order() {
        assert_eq!(
            key(&["b".into(), "a".into()]),
            key(&["a".into(), "b".into()])
        );
    }

    #[test]
    fn rejection_never_shows_the_secret() {
        let auth = Auth::new(
            "r:5000".into(),
            Credentials::Basic {
                username: "u".into(),
                password: "hunter2".into(),
            },
        );
        let e = auth.rejected(401, None);
        assert_eq!(
            e.to_string(),
            "registry r:5000 rejected the credentials for user u"
        );
        assert!(!format!("{e:?}").contains("hunter2"));
    }

    #[test]
    fn mirror_source_errors_name_the_source_flags() {
        use crate::error::UserError;
        for credentials in [
            Credentials::Anonymous,
            Credentials::Basic {
                username: "u".into(),
                password: "hunter2".into(),
            },
        ] {
            let auth = Auth::with_role("src:5000".into(), credentials, Role::MirrorSource);
            for repo in [None, Some(("acp/app", "pull"))] {
                let e = auth.rejected(401, repo);
                let text = format!("{e} {}", e.hint().unwrap_or_default());
                assert!(text.contains("source registry src:5000"), "{text}");
                assert!(
                    !text.contains("--username")
                        && !text.contains("--password ")
                        && !text.contains("VIOLET_USERNAME")
                        && !text.contains("VIOLET_PASSWORD")
                        && !text.contains("--no-auth")
                        && !text.contains("push"),
                    "{text}"
                );
                assert!(!text.contains("hunter2"));
            }
        }
    }
}
