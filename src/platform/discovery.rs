//! The platform registry, for pushes without `--dest-repo`: the address from ProductBase `base`
//! and the credentials from secret `cpaas-system/registry-admin` in the global cluster, as Alauda's
//! own installer scripts read them (`docs/platform.md`).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;

use crate::platform::kube::{GLOBAL, NAMESPACE, Platform, Resource};
use crate::platform::{PlatformError, Result};
use crate::registry::Credentials;

pub const PRODUCT_BASE: &str = "base";
pub const REGISTRY_SECRET: &str = "registry-admin";

impl Platform {
    /// `(host[:port], credentials)` of the platform registry. A missing secret means an anonymous
    /// registry; a missing ProductBase or address is an error that tells the user to pass `--dest-repo`.
    pub async fn discover_registry(&self) -> Result<(String, Credentials)> {
        let global = self.cluster(GLOBAL).await?;
        let fail = |detail: String| PlatformError::Discovery {
            address: self.address().to_string(),
            detail,
        };
        let pb = Resource::new(
            "product.alauda.io",
            "v1alpha2",
            "ProductBase",
            "productbases",
            false,
        );
        let base = global.get(&pb, None, PRODUCT_BASE).await?.ok_or_else(|| {
            fail(format!(
                "ProductBase {PRODUCT_BASE:?} not found in the global cluster"
            ))
        })?;
        let address = base
            .pointer("/spec/registry/address")
            .and_then(Value::as_str)
            .map(|a| {
                a.trim()
                    .trim_start_matches("https://")
                    .trim_start_matches("http://")
                    .trim_end_matches('/')
            })
            .filter(|a| !a.is_empty())
            .ok_or_else(|| {
                fail(format!(
                    "ProductBase {PRODUCT_BASE:?} has no .spec.registry.address"
                ))
            })?
            .to_string();

        let secret = Resource::new("", "v1", "Secret", "secrets", true);
        let Some(s) = global
            .get(&secret, Some(NAMESPACE), REGISTRY_SECRET)
            .await?
        else {
            return Ok((address, Credentials::Anonymous));
        };
        let field = |k: &str| -> Result<String> {
            let b64 = s
                .pointer(&format!("/data/{k}"))
                .and_then(Value::as_str)
                .ok_or_else(|| fail(format!("secret {NAMESPACE}/{REGISTRY_SECRET} has no {k}")))?;
            let bytes = B64.decode(b64.trim()).map_err(|_| {
                fail(format!(
                    "secret {NAMESPACE}/{REGISTRY_SECRET}: {k} is not base64"
                ))
            })?;
            String::from_utf8(bytes)
                .map(|v| v.trim_end_matches('\n').to_string())
                .map_err(|_| {
                    fail(format!(
                        "secret {NAMESPACE}/{REGISTRY_SECRET}: {k} is not UTF-8"
                    ))
                })
        };
        Ok((
            address,
            Credentials::Basic {
                username: field("username")?,
                password: field("password")?,
            },
        ))
    }
}
