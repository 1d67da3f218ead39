//! Placeholder replaced at merge by the registry helper's implementation.
use crate::registry::{Credentials, RegistryError};
pub fn resolve(host: &str, username: Option<&str>, password: Option<&str>) -> Result<Credentials, RegistryError> {
    let _ = host;
    Ok(match (username, password) {
        (Some(u), Some(p)) => Credentials::Basic { username: u.into(), password: p.into() },
        _ => Credentials::Anonymous,
    })
}
