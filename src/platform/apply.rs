//! Writing a [`CatalogPlan`]: create or update each object in its cluster, report what happened,
//! or (dry run) what would happen with a diff, or write the objects to files instead.
//!
//! "Unchanged" compares only what violet owns: its labels and annotations (a subset of the live
//! ones), its ownerReferences, and the spec (every field violet sets equals the live one, so
//! server-side defaults do not count as a change).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::platform::crs::{APP_API_VERSION, CatalogPlan, Kind, PlannedObject};
use crate::platform::kube::{Cluster, Platform};
use crate::platform::{PlatformError, Result};

#[derive(Debug, Clone, Copy)]
pub struct ApplyOptions {
    /// `--force`: update even when nothing changed.
    pub force: bool,
    /// `--dry-run`: read only; report the plan with diffs.
    pub dry_run: bool,
    /// How many times a write that lost a race (409) is retried on a fresh read.
    pub conflict_retries: u32,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        Self {
            force: false,
            dry_run: false,
            conflict_retries: 5,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WriteAction {
    Created,
    Updated,
    Unchanged,
    WouldCreate,
    WouldUpdate,
}

impl WriteAction {
    pub fn as_str(self) -> &'static str {
        match self {
            WriteAction::Created => "created",
            WriteAction::Updated => "updated",
            WriteAction::Unchanged => "unchanged",
            WriteAction::WouldCreate => "would be created",
            WriteAction::WouldUpdate => "would be updated",
        }
    }
}

/// What happened to one object in one cluster.
#[derive(Debug, Clone, Serialize)]
pub struct WriteReport {
    pub cluster: String,
    pub kind: Kind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    pub action: WriteAction,
    /// Dry run only: unified diff of the owned fields, live (`-`) to desired (`+`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

impl WriteReport {
    /// `cluster global: ArtifactVersion cpaas-system/x.v1 created`
    pub fn line(&self) -> String {
        let ns = self
            .namespace
            .as_deref()
            .map(|n| format!("{n}/"))
            .unwrap_or_default();
        format!(
            "cluster {}: {} {ns}{} {}",
            self.cluster,
            self.kind.as_str(),
            self.name,
            self.action.as_str()
        )
    }
}

/// Applies the plan object by object, in order (an Artifact before its versions, so the versions'
/// ownerReferences carry the Artifact's uid in that cluster). Stops at the first error.
pub async fn publish(
    platform: &Platform,
    plan: &CatalogPlan,
    opts: &ApplyOptions,
) -> Result<Vec<WriteReport>> {
    let mut reports = Vec::new();
    // (cluster, artifact name) → uid, from this run's writes or reads.
    let mut uids: BTreeMap<(String, String), Option<String>> = BTreeMap::new();
    for planned in &plan.objects {
        let cluster = platform.cluster(&planned.cluster).await?;
        let mut desired = planned.object.clone();
        if let Some(owner) = &planned.owner {
            let key = (planned.cluster.clone(), owner.clone());
            let uid = match uids.get(&key) {
                Some(u) => u.clone(),
                None => cluster
                    .get(
                        &Kind::Artifact.resource(),
                        Kind::Artifact.namespace(),
                        owner,
                    )
                    .await?
                    .and_then(|a| uid_of(&a)),
            };
            // A dry run may plan a version whose Artifact does not exist yet.
            let uid = uid.unwrap_or_else(|| "<uid of the new Artifact>".to_string());
            desired["metadata"]["ownerReferences"] = json!([owner_reference(owner, &uid)]);
        }
        let (action, result, diff) = apply_one(&cluster, planned, &desired, opts).await?;
        if planned.kind == Kind::Artifact {
            uids.insert(
                (planned.cluster.clone(), planned.name().to_string()),
                result.as_ref().and_then(uid_of),
            );
        }
        reports.push(WriteReport {
            cluster: planned.cluster.clone(),
            kind: planned.kind,
            namespace: planned.kind.namespace().map(str::to_string),
            name: planned.name().to_string(),
            action,
            diff,
        });
    }
    Ok(reports)
}

fn owner_reference(artifact: &str, uid: &str) -> Value {
    json!({
        "apiVersion": APP_API_VERSION,
        "kind": "Artifact",
        "name": artifact,
        "uid": uid,
        "blockOwnerDeletion": true,
    })
}

fn uid_of(v: &Value) -> Option<String> {
    v.pointer("/metadata/uid")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// Create-or-update one object; returns the action, the object as the server has it (a dry run:
/// the live object, `None` when it would be created), and the dry-run diff.
async fn apply_one(
    cluster: &Cluster,
    planned: &PlannedObject,
    desired: &Value,
    opts: &ApplyOptions,
) -> Result<(WriteAction, Option<Value>, Option<String>)> {
    let resource = planned.kind.resource();
    let ns = planned.kind.namespace();
    let name = planned.name();
    for _ in 0..=opts.conflict_retries {
        match cluster.get(&resource, ns, name).await? {
            None => {
                if opts.dry_run {
                    return Ok((WriteAction::WouldCreate, None, Some(diff(None, desired))));
                }
                match cluster.create(&resource, ns, desired).await {
                    Ok(created) => return Ok((WriteAction::Created, Some(created), None)),
                    // Someone created it since our read: go round and update it.
                    Err(PlatformError::Api { code: 409, .. }) => continue,
                    Err(e) => return Err(e),
                }
            }
            Some(live) => {
                if !opts.force && owns_equal(desired, &live) {
                    return Ok((WriteAction::Unchanged, Some(live), None));
                }
                let merged = merge(&live, desired);
                if opts.dry_run {
                    return Ok((
                        WriteAction::WouldUpdate,
                        Some(live.clone()),
                        Some(diff(Some(&live), &merged)),
                    ));
                }
                match cluster.replace(&resource, ns, &merged).await {
                    Ok(updated) => return Ok((WriteAction::Updated, Some(updated), None)),
                    // Stale resourceVersion: re-read and decide again.
                    Err(PlatformError::Api { code: 409, .. }) => continue,
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Err(PlatformError::Api {
        cluster: cluster.name.clone(),
        action: format!("update {} {name}", planned.kind.as_str()),
        code: 409,
        message: format!(
            "still conflicting after {} attempts; another writer keeps changing it",
            opts.conflict_retries + 1
        ),
    })
}

/// Every value of `want` is in `have` (objects: recursively by key; anything else: equal).
fn contains(have: &Value, want: &Value) -> bool {
    match (have, want) {
        (Value::Object(h), Value::Object(w)) => w
            .iter()
            .all(|(k, wv)| h.get(k).is_some_and(|hv| contains(hv, wv))),
        (h, w) => h == w,
    }
}

fn owns_equal(desired: &Value, live: &Value) -> bool {
    let meta_ok = ["labels", "annotations"]
        .iter()
        .all(|k| match desired["metadata"].get(*k) {
            Some(w) => live["metadata"].get(*k).is_some_and(|h| contains(h, w)),
            None => true,
        });
    let owners_ok = match desired["metadata"]
        .get("ownerReferences")
        .and_then(Value::as_array)
    {
        Some(want) => {
            let have = live["metadata"]["ownerReferences"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            want.iter().all(|w| {
                have.iter()
                    .any(|h| h.get("uid") == w.get("uid") && h.get("name") == w.get("name"))
            })
        }
        None => true,
    };
    let body_ok = desired
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| !matches!(k.as_str(), "metadata" | "apiVersion" | "kind" | "status"))
        .all(|(k, w)| live.get(k).is_some_and(|h| contains(h, w)));
    meta_ok && owners_ok && body_ok
}

/// The live object with violet's fields put in: labels and annotations merged (ours win), our
/// ownerReference replacing any to the same Artifact, and the spec (and other top-level fields) ours.
fn merge(live: &Value, desired: &Value) -> Value {
    let mut out = live.clone();
    for key in ["labels", "annotations"] {
        if let Some(Value::Object(want)) = desired["metadata"].get(key) {
            let mut m = live["metadata"]
                .get(key)
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            m.extend(want.clone());
            out["metadata"][key] = Value::Object(m);
        }
    }
    if let Some(want) = desired["metadata"]
        .get("ownerReferences")
        .and_then(Value::as_array)
    {
        let mut refs: Vec<Value> = live["metadata"]["ownerReferences"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|h| {
                !want
                    .iter()
                    .any(|w| w.get("kind") == h.get("kind") && w.get("name") == h.get("name"))
            })
            .cloned()
            .collect();
        refs.extend(want.iter().cloned());
        out["metadata"]["ownerReferences"] = Value::Array(refs);
    }
    if let Some(o) = desired.as_object() {
        for (k, v) in o {
            if !matches!(k.as_str(), "metadata" | "status") {
                out[k] = v.clone();
            }
        }
    }
    out
}

/// The part of an object a diff should show: identity, owned metadata, and the body without status.
fn view(v: &Value) -> Value {
    let mut meta = Map::new();
    for k in [
        "name",
        "namespace",
        "labels",
        "annotations",
        "ownerReferences",
    ] {
        if let Some(x) = v["metadata"].get(k) {
            meta.insert(k.into(), x.clone());
        }
    }
    let mut out = Map::new();
    for (k, x) in v.as_object().into_iter().flatten() {
        if k != "status" && k != "metadata" {
            out.insert(k.clone(), x.clone());
        }
    }
    out.insert("metadata".into(), Value::Object(meta));
    Value::Object(out)
}

fn to_yaml(v: &Value) -> String {
    serde_saphyr::to_string(v).unwrap_or_else(|e| format!("<cannot render: {e}>\n"))
}

fn diff(live: Option<&Value>, desired: &Value) -> String {
    let old = live.map(|l| to_yaml(&view(l))).unwrap_or_default();
    let new = to_yaml(&view(desired));
    similar::TextDiff::from_lines(&old, &new)
        .unified_diff()
        .context_radius(3)
        .header("live", "desired")
        .to_string()
}

/// `--crs-out DIR`: writes each planned object to `DIR/<cluster>/<kind>-<name>.yaml` instead of
/// applying it. Versions carry no ownerReference: its uid exists only once the Artifact is created
/// in a cluster (see docs/platform.md).
pub fn crs_out(dir: &Path, plan: &CatalogPlan) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for planned in &plan.objects {
        let sub = dir.join(&planned.cluster);
        std::fs::create_dir_all(&sub).map_err(|source| PlatformError::Write {
            path: sub.clone(),
            source,
        })?;
        let path = sub.join(format!(
            "{}-{}.yaml",
            planned.kind.as_str().to_ascii_lowercase(),
            planned.name()
        ));
        let yaml = serde_saphyr::to_string(&planned.object).map_err(|e| PlatformError::Write {
            path: path.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        std::fs::write(&path, yaml).map_err(|source| PlatformError::Write {
            path: path.clone(),
            source,
        })?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live() -> Value {
        json!({
            "apiVersion": "app.alauda.io/v1alpha1", "kind": "Artifact",
            "metadata": { "name": "a", "uid": "u1", "resourceVersion": "3",
                          "labels": { "cpaas.io/managed-by": "violet", "other": "x" } },
            "spec": { "present": true, "registry": "r", "repository": "p", "type": "bundle", "defaulted": 1 },
            "status": { "synced": true },
        })
    }

    fn desired() -> Value {
        json!({
            "apiVersion": "app.alauda.io/v1alpha1", "kind": "Artifact",
            "metadata": { "name": "a", "labels": { "cpaas.io/managed-by": "violet" } },
            "spec": { "present": true, "registry": "r", "repository": "p", "type": "bundle" },
        })
    }

    #[test]
    fn server_defaults_and_foreign_labels_are_not_changes() {
        assert!(owns_equal(&desired(), &live()));
        let mut d = desired();
        d["spec"]["registry"] = "r2".into();
        assert!(!owns_equal(&d, &live()));
    }

    #[test]
    fn merge_keeps_foreign_labels_and_resource_version() {
        let mut d = desired();
        d["spec"]["registry"] = "r2".into();
        let m = merge(&live(), &d);
        assert_eq!(m["metadata"]["labels"]["other"], "x");
        assert_eq!(m["metadata"]["resourceVersion"], "3");
        assert_eq!(m["spec"]["registry"], "r2");
        assert!(m["spec"].get("defaulted").is_none());
        let text = diff(Some(&live()), &m);
        assert!(
            text.contains("-  registry: r\n") && text.contains("+  registry: r2\n"),
            "{text}"
        );
    }

    #[test]
    fn owner_reference_replaced_not_duplicated() {
        let mut l = live();
        l["metadata"]["ownerReferences"] = json!([owner_reference("a", "old")]);
        let mut d = desired();
        d["metadata"]["ownerReferences"] = json!([owner_reference("a", "new")]);
        assert!(!owns_equal(&d, &l));
        let m = merge(&l, &d);
        assert_eq!(
            m["metadata"]["ownerReferences"].as_array().map(Vec::len),
            Some(1)
        );
        assert_eq!(m["metadata"]["ownerReferences"][0]["uid"], "new");
    }
}
