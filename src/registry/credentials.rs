//! Where registry credentials come from, in order of precedence:
//!
//! 1. flags: `--username` with `--password` / `--password-stdin`;
//! 2. environment: `VIOLET_USERNAME` and `VIOLET_PASSWORD` (both must be set);
//! 3. `docker login` / `podman login` state: `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`
//!    (`auths`, `credHelpers`, `credsStore`, `identitytoken`), then podman's `auth.json`
//!    (`REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`);
//! 4. none (anonymous).
//!
//! `--no-auth` skips all of them.

use docker_credential::{CredentialRetrievalError, DockerCredential};

use crate::error::{ExitCode, Fail};
use crate::registry::Credentials;

pub const ENV_USERNAME: &str = "VIOLET_USERNAME";
pub const ENV_PASSWORD: &str = "VIOLET_PASSWORD";

/// Resolved credentials and where they came from (for `-v` output and the "--dest-repo needs
/// credentials" rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Flags,
    Environment,
    DockerConfig,
    PodmanConfig,
    /// `--no-auth`.
    Disabled,
    /// Nothing found anywhere.
    None,
}

#[derive(Debug, Clone)]
pub struct Resolved {
    pub credentials: Credentials,
    pub source: Source,
}

impl Resolved {
    /// Violet's rule: a push destination needs credentials from some source, or an explicit `--no-auth`.
    pub fn require_for_push(&self, host: &str) -> Result<(), Fail> {
        if self.source == Source::None {
            return Err(Fail::new(ExitCode::Usage, format!("no credentials for registry {host}")).with_hint(format!(
                "pass --username and --password (or --password-stdin), set {ENV_USERNAME}/{ENV_PASSWORD}, run 'docker login {host}', or pass --no-auth"
            )));
        }
        Ok(())
    }
}

/// Resolves the credentials for `host` (`host[:port]`).
pub fn resolve(
    host: &str,
    username: Option<&str>,
    password: Option<&str>,
    no_auth: bool,
) -> Result<Resolved, Fail> {
    let env_user = std::env::var(ENV_USERNAME).ok().filter(|s| !s.is_empty());
    let env_pass = std::env::var(ENV_PASSWORD).ok();
    resolve_with(
        host,
        username,
        password,
        no_auth,
        env_user.as_deref(),
        env_pass.as_deref(),
        &lookup_stores,
    )
}

/// Only the docker/podman logins stored for `host` (or anonymous): for a registry the
/// `--username`/`VIOLET_USERNAME` family does not belong to, such as `violet mirror`'s source.
/// Those variables name the destination's user; sending them to another host would hand the
/// destination's password to it.
pub fn resolve_stored(host: &str) -> Result<Resolved, Fail> {
    resolve_with(host, None, None, false, None, None, &lookup_stores)
}

type StoreLookup<'a> = &'a dyn Fn(&str) -> Result<Option<(Credentials, Source)>, Fail>;

fn resolve_with(
    host: &str,
    username: Option<&str>,
    password: Option<&str>,
    no_auth: bool,
    env_user: Option<&str>,
    env_pass: Option<&str>,
    stores: StoreLookup<'_>,
) -> Result<Resolved, Fail> {
    if no_auth {
        if username.is_some() || password.is_some() {
            return Err(Fail::usage(
                "--no-auth cannot be combined with --username/--password",
            ));
        }
        return Ok(Resolved {
            credentials: Credentials::Anonymous,
            source: Source::Disabled,
        });
    }
    match (username, password) {
        (Some(u), Some(p)) => {
            return Ok(Resolved {
                credentials: Credentials::Basic {
                    username: u.to_string(),
                    password: p.to_string(),
                },
                source: Source::Flags,
            });
        }
        (Some(_), None) => {
            return Err(Fail::usage(
                "--username needs --password or --password-stdin",
            ));
        }
        (None, Some(_)) => return Err(Fail::usage("--password needs --username")),
        (None, None) => {}
    }
    if let (Some(u), Some(p)) = (env_user, env_pass) {
        return Ok(Resolved {
            credentials: Credentials::Basic {
                username: u.to_string(),
                password: p.to_string(),
            },
            source: Source::Environment,
        });
    }
    Ok(match stores(host)? {
        Some((credentials, source)) => Resolved {
            credentials,
            source,
        },
        None => Resolved {
            credentials: Credentials::Anonymous,
            source: Source::None,
        },
    })
}

fn lookup_stores(host: &str) -> Result<Option<(Credentials, Source)>, Fail> {
    if let Some(c) = convert(
        host,
        "docker config",
        docker_credential::get_credential(host),
    )? {
        return Ok(Some((c, Source::DockerConfig)));
    }
    Ok(convert(
        host,
        "podman auth file",
        docker_credential::get_podman_credential(host),
    )?
    .map(|c| (c, Source::PodmanConfig)))
}

fn convert(
    host: &str,
    store: &str,
    found: Result<DockerCredential, CredentialRetrievalError>,
) -> Result<Option<Credentials>, Fail> {
    match found {
        Ok(DockerCredential::UsernamePassword(username, password)) => {
            Ok(Some(Credentials::Basic { username, password }))
        }
        // docker stores identity tokens with the placeholder user "<token>".
        Ok(DockerCredential::IdentityToken(token)) => Ok(Some(Credentials::IdentityToken {
            username: "<token>".into(),
            token,
        })),
        Err(
            CredentialRetrievalError::NoCredentialConfigured
            | CredentialRetrievalError::ConfigNotFound
            | CredentialRetrievalError::ConfigReadError,
        ) => Ok(None),
        // A helper's stdout/stderr may echo secrets: name the helper only.
        Err(CredentialRetrievalError::HelperFailure { helper, .. }) => Err(Fail::new(
            ExitCode::Auth,
            format!(
                "credential helper docker-credential-{helper} failed for registry {host} ({store})"
            ),
        )
        .with_hint("run the helper by hand, or pass --username/--password")),
        Err(e) => Err(Fail::new(
            ExitCode::Auth,
            format!("cannot read credentials for registry {host} from the {store}: {e}"),
        )
        .with_hint("fix the file, or pass --username/--password")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &str) -> Result<Option<(Credentials, Source)>, Fail> {
        Ok(None)
    }
    fn docker(_: &str) -> Result<Option<(Credentials, Source)>, Fail> {
        Ok(Some((
            Credentials::Basic {
                username: "d".into(),
                password: "p".into(),
            },
            Source::DockerConfig,
        )))
    }

    fn user(r: &Resolved) -> Option<&str> {
        match &r.credentials {
            Credentials::Basic { username, .. } => Some(username),
            _ => None,
        }
    }

    #[test]
    fn precedence() {
        let r = resolve_with(
            "h",
            Some("f"),
            Some("x"),
            false,
            Some("e"),
            Some("y"),
            &docker,
        )
        .unwrap();
        assert_eq!((r.source, user(&r)), (Source::Flags, Some("f")));
        let r = resolve_with("h", None, None, false, Some("e"), Some("y"), &docker).unwrap();
        assert_eq!((r.source, user(&r)), (Source::Environment, Some("e")));
        let r = resolve_with("h", None, None, false, Some("e"), None, &docker).unwrap();
        assert_eq!((r.source, user(&r)), (Source::DockerConfig, Some("d")));
        let r = resolve_with("h", None, None, false, None, None, &none).unwrap();
        assert_eq!(r.source, Source::None);
        assert!(r.require_for_push("h").is_err());
        let r = resolve_with("h", None, None, true, Some("e"), Some("y"), &docker).unwrap();
        assert_eq!(r.source, Source::Disabled);
        assert!(r.require_for_push("h").is_ok());
    }

    #[test]
    fn flag_combinations() {
        assert!(resolve_with("h", Some("u"), None, false, None, None, &none).is_err());
        assert!(resolve_with("h", None, Some("p"), false, None, None, &none).is_err());
        assert!(resolve_with("h", Some("u"), Some("p"), true, None, None, &none).is_err());
    }

    #[test]
    fn reads_docker_config() {
        let config = r#"{"auths":{"reg.example:5000":{"auth":"dTpw"},"tok.example":{"auth":"PHRva2VuPjo=","identitytoken":"rt"}}}"#;
        let got =
            docker_credential::get_credential_from_reader(config.as_bytes(), "reg.example:5000");
        let c = convert("reg.example:5000", "docker config", got).unwrap();
        assert!(
            matches!(c, Some(Credentials::Basic { ref username, ref password }) if username == "u" && password == "p")
        );
        let got = docker_credential::get_credential_from_reader(config.as_bytes(), "tok.example");
        let c = convert("tok.example", "docker config", got).unwrap();
        assert!(matches!(c, Some(Credentials::IdentityToken { ref token, .. }) if token == "rt"));
        let got = docker_credential::get_credential_from_reader(config.as_bytes(), "other");
        assert!(convert("other", "docker config", got).unwrap().is_none());
    }
}
