//! The recipe catalog (issue 11, item 5): which recipes a call may name, and which version of
//! each a new call runs. A call keeps the version it started on through its re-runs and parks,
//! so a reload lets calls in flight finish on their version while new calls use the new one.
//!
//! Built-ins come from the runtime when it attaches ([`Recipes::builtins`], version 0). Loaded
//! recipes are znodes, so loading, versioning (a compare-and-set on the node's version) and
//! removal are ordinary writes, persisted and replicated like any txn:
//!
//! - `/wazoo/recipes/<name>`: data `sha256=<hex> size=<bytes> chunks=<n>`; its mzxid is the
//!   version;
//! - `/wazoo/recipes/<name>/<sha256>-<i>` (i = 0000 … n-1): the component's bytes in chunks, so
//!   a component larger than a request (a Python one is ~18 MB) loads too; the chunks are
//!   written first and the name's node last, which makes the new version current atomically.
//!
//! When an applied txn creates, changes or deletes a name's node, the core reads the node and
//! its chunks from the tree and hands them to the runtime to compile off the core
//! ([`Recipes::install`]); the version becomes current when the runtime reports it compiled
//! ([`CoreMsg::RecipeInstalled`]) and the node still names it. At attach the core does the same
//! for every loaded recipe in the tree (the runtime's artifact cache makes that fast), so a
//! restarted server comes back with the recipes it had.

use std::collections::{BTreeSet, HashMap};

use wazoo_proto::{Acl, CreateRequest};

use super::*;

/// Where loaded recipes live.
pub const RECIPES_ROOT: &str = "/wazoo/recipes";

/// Where the server records what became of each loaded recipe's latest install, for its loader
/// to read: `/wazoo/recipe-status/<name>` holding `version=<zxid> state=current` or
/// `version=<zxid> state=failed error=<why>`. Written by the leader only (internal txns, as
/// container reaping), readable by all, writable by no client.
pub const RECIPE_STATUS_ROOT: &str = "/wazoo/recipe-status";

/// A component for the runtime to compile as `version` of `name`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Install {
    pub name: String,
    pub version: u64,
    /// The component's bytes, the chunks joined.
    pub wasm: Vec<u8>,
    /// What the bytes must hash to (hex SHA-256), checked off the core.
    pub sha256: String,
}

/// A loaded recipe's node data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecipeSpec {
    pub sha256: String,
    pub size: u64,
    pub chunks: u32,
}

impl RecipeSpec {
    /// Parses `sha256=<64 hex> size=<n> chunks=<n>` (fields in any order).
    pub fn parse(data: &[u8]) -> Option<RecipeSpec> {
        let text = std::str::from_utf8(data).ok()?;
        let (mut sha, mut size, mut chunks) = (None, None, None);
        for field in text.split_whitespace() {
            let (k, v) = field.split_once('=')?;
            match k {
                "sha256" if v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    sha = Some(v.to_ascii_lowercase())
                }
                "size" => size = v.parse().ok(),
                "chunks" => chunks = v.parse().ok(),
                _ => return None,
            }
        }
        Some(RecipeSpec {
            sha256: sha?,
            size: size?,
            chunks: chunks?,
        })
    }

    /// The node data that says this.
    pub fn encode(&self) -> String {
        format!(
            "sha256={} size={} chunks={}",
            self.sha256, self.size, self.chunks
        )
    }

    /// The name of chunk `i`.
    pub fn chunk_name(&self, i: u32) -> String {
        format!("{}-{i:04}", self.sha256)
    }
}

/// The names a call may use and the version each runs.
#[derive(Default)]
pub(super) struct Catalog {
    builtins: BTreeSet<String>,
    /// The version a new call of each name runs.
    current: HashMap<String, u64>,
    /// Names whose node an applied txn touched, to look at after the batch.
    touched: BTreeSet<String>,
    /// The latest version of each name handed to the runtime and not yet reported back.
    compiling: HashMap<String, u64>,
    /// Loaded versions the runtime compiled and holds (built-ins aside): each costs its code's
    /// memory until retired.
    compiled: BTreeSet<(String, u64)>,
}

impl Catalog {
    /// The version a new call of `name` runs, if there is one.
    pub(super) fn current(&self, name: &str) -> Option<u64> {
        self.current.get(name).copied()
    }

    /// The version of `name` the runtime is compiling, if any.
    pub(super) fn compiling(&self, name: &str) -> Option<u64> {
        self.compiling.get(name).copied()
    }

    /// Whether the runtime holds `version` of `name`: a built-in's version 0, or a loaded
    /// version it compiled (and has not retired).
    pub(super) fn is_compiled(&self, name: &str, version: u64) -> bool {
        if version == 0 {
            return self.builtins.contains(name);
        }
        self.compiled.contains(&(name.to_owned(), version))
    }

    /// Whether a run on `version` of `name` must wait: the runtime is compiling that very version.
    pub(super) fn awaits_compile(&self, name: &str, version: u64) -> bool {
        self.compiling(name) == Some(version) && !self.is_compiled(name, version)
    }

    /// Whether `name` is a built-in.
    pub(super) fn is_builtin(&self, name: &str) -> bool {
        self.builtins.contains(name)
    }
}

/// Who writes recipe statuses: the superuser, as for container reaping (the nodes are
/// read-only to everyone else).
fn status_writer() -> AuthInfo {
    let mut auth = AuthInfo::default();
    auth.add(wazoo_proto::Id::new("super", ""));
    auth
}

/// The recipe name whose node `path` is, if it is one (`/wazoo/recipes/<name>`).
fn recipe_name(path: &str) -> Option<&str> {
    let name = path.strip_prefix(RECIPES_ROOT)?.strip_prefix('/')?;
    (!name.is_empty() && !name.contains('/')).then_some(name)
}

impl Core {
    /// Takes the runtime's built-ins and every recipe loaded in the tree (at attach).
    pub(super) fn load_catalog(&mut self) {
        let Some(recipes) = self.recipes.as_ref() else {
            return;
        };
        for name in recipes.builtins() {
            self.catalog.current.insert(name.clone(), 0);
            self.catalog.builtins.insert(name);
        }
        if self.replica.is_none() {
            // An ensemble's member does this when it becomes the leader (calls run there).
            self.load_recipe_state();
        }
        if let Some(root) = self.tree.get(RECIPES_ROOT) {
            let names: Vec<String> = root.children().map(str::to_owned).collect();
            self.catalog.touched.extend(names);
            self.install_touched();
        }
    }

    /// The recorded answers and the parked calls of earlier calls, from their znodes: at start
    /// (standalone), or when an ensemble's member becomes the leader.
    pub(super) fn load_recipe_state(&mut self) {
        if self.recipes.is_some() {
            self.load_answers();
            self.load_parked();
        }
    }

    /// Notes an applied event on `path`: a recipe node's change is looked at after the batch.
    pub(super) fn catalog_event(&mut self, path: &str) {
        if let Some(name) = recipe_name(path) {
            self.catalog.touched.insert(name.to_owned());
        }
    }

    /// Hands each touched name's new version to the runtime, or drops a removed one.
    pub(super) fn install_touched(&mut self) {
        if self.catalog.touched.is_empty() || self.recipes.is_none() {
            self.catalog.touched.clear();
            return;
        }
        for name in std::mem::take(&mut self.catalog.touched) {
            let path = format!("{RECIPES_ROOT}/{name}");
            let Some(node) = self.tree.get(&path) else {
                // Removed: new calls get the built-in of that name, if any, else NORECIPE;
                // calls in flight keep their version.
                if self.catalog.builtins.contains(&name) {
                    self.catalog.current.insert(name.clone(), 0);
                } else {
                    self.catalog.current.remove(&name);
                }
                self.drop_status(&name);
                self.retire_unused_versions();
                continue;
            };
            let version = node.meta().mzxid as u64;
            if self.catalog.current(&name) == Some(version) {
                continue;
            }
            let data = node.data().unwrap_or_default();
            if data.is_empty() {
                continue; // a loader's node before its spec is set
            }
            let Some(spec) = RecipeSpec::parse(data) else {
                warn!(recipe = %name, "a recipe node whose data is not `sha256=.. size=.. chunks=..`: ignored");
                continue;
            };
            let mut wasm = Vec::with_capacity(spec.size.min(256 << 20) as usize);
            let mut missing = None;
            for i in 0..spec.chunks {
                let chunk = format!("{path}/{}", spec.chunk_name(i));
                match self.tree.get(&chunk) {
                    Some(c) => wasm.extend_from_slice(c.data().unwrap_or_default()),
                    None => {
                        missing = Some(chunk);
                        break;
                    }
                }
            }
            if let Some(chunk) = missing {
                warn!(recipe = %name, %chunk, "a recipe's chunk is missing: version not installed");
                continue;
            }
            if wasm.len() as u64 != spec.size {
                warn!(recipe = %name, got = wasm.len(), want = spec.size, "a recipe's chunks do not add up to its size: version not installed");
                continue;
            }
            info!(recipe = %name, version = format_args!("{version:#x}"), bytes = wasm.len(), "installing a recipe version");
            self.catalog.compiling.insert(name.clone(), version);
            if let Some(r) = self.recipes.as_ref() {
                r.install(Install {
                    name,
                    version,
                    wasm,
                    sha256: spec.sha256,
                });
            }
        }
    }

    /// The runtime compiled `version` of `name` (or could not: `error`).
    pub(super) fn on_recipe_installed(
        &mut self,
        name: String,
        version: u64,
        error: Option<String>,
    ) {
        if self.catalog.compiling.get(&name) == Some(&version) {
            self.catalog.compiling.remove(&name);
        }
        if let Some(e) = error {
            warn!(recipe = %name, version = format_args!("{version:#x}"), "a recipe version failed to install: {e}");
            if self.catalog.compiling(&name).is_none() && self.names_version(&name, version) {
                // Not one a later load superseded: its loader is waiting to hear.
                self.record_status(
                    &name,
                    format!("version={version:#x} state=failed error={e}"),
                );
            }
            self.begin_awaiting_compile(&name);
            return;
        }
        // Current only if the node still names it (a later load or a removal wins).
        let node_version = self
            .tree
            .get(&format!("{RECIPES_ROOT}/{name}"))
            .map(|n| n.meta().mzxid as u64);
        self.catalog.compiled.insert((name.clone(), version));
        self.metrics.inc(Counter::RecipeVersionsInstalled);
        if node_version == Some(version) {
            info!(recipe = %name, version = format_args!("{version:#x}"), "recipe version current");
            self.catalog.current.insert(name.clone(), version);
            self.record_status(&name, format!("version={version:#x} state=current"));
        }
        self.begin_awaiting_compile(&name);
        self.retire_unused_versions();
    }

    /// Whether `/wazoo/recipes/<name>` names `version` (its mzxid).
    fn names_version(&self, name: &str, version: u64) -> bool {
        self.tree
            .get(&format!("{RECIPES_ROOT}/{name}"))
            .is_some_and(|n| n.meta().mzxid as u64 == version)
    }

    /// Writes `text` as `name`'s status ([`RECIPE_STATUS_ROOT`]) unless it says so already: an
    /// internal txn of the leader (the other members apply it).
    fn record_status(&mut self, name: &str, text: String) {
        if !self.leads() {
            return;
        }
        let path = format!("{RECIPE_STATUS_ROOT}/{name}");
        let now = self
            .tree
            .get(&path)
            .map(|n| n.data().unwrap_or_default().to_vec());
        if now.as_deref() == Some(text.as_bytes()) {
            return;
        }
        let create = |path: &str, data: Vec<u8>| {
            MultiOp::Create(CreateRequest {
                op: op::CREATE,
                path: path.to_owned(),
                data: Some(data),
                acl: Acl::read_unsafe(),
                flags: 0,
                ttl: -1,
            })
        };
        let mut ops = Vec::new();
        for dir in ["/wazoo", RECIPE_STATUS_ROOT] {
            if self.tree.get(dir).is_none() {
                ops.push(create(dir, Vec::new()));
            }
        }
        ops.push(match now {
            Some(_) => MultiOp::SetData {
                path,
                data: Some(text.into_bytes()),
                version: -1,
            },
            None => create(&path, text.into_bytes()),
        });
        self.prep_internal(0, &status_writer(), &Request::Multi(ops), None);
    }

    /// Deletes `name`'s status (its recipe was removed).
    fn drop_status(&mut self, name: &str) {
        let path = format!("{RECIPE_STATUS_ROOT}/{name}");
        if !self.leads() || self.tree.get(&path).is_none() {
            return;
        }
        let req = Request::Delete { path, version: -1 };
        self.prep_internal(0, &status_writer(), &req, None);
    }

    /// Retires every compiled loaded version that is not current and that no call uses (run,
    /// waiting or parked): with reloads, memory holds at most the current versions and those
    /// calls in flight still run on. Called when a version is installed and at each tick.
    pub(super) fn retire_unused_versions(&mut self) {
        let catalog = &self.catalog;
        let unused: Vec<(String, u64)> = catalog
            .compiled
            .iter()
            .filter(|(name, v)| catalog.current.get(name) != Some(v))
            .cloned()
            .collect();
        if unused.is_empty() {
            return;
        }
        let in_use = self.runs.versions_in_use();
        for key in unused {
            if in_use.contains(&key) {
                continue;
            }
            debug!(recipe = %key.0, version = format_args!("{:#x}", key.1), "retiring a recipe version");
            self.catalog.compiled.remove(&key);
            self.metrics.inc(Counter::RecipeVersionsRetired);
            if let Some(r) = self.recipes.as_ref() {
                r.retire(&key.0, key.1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_parses_from_what_it_encodes_and_refuses_anything_else() {
        let spec = RecipeSpec {
            sha256: "ab".repeat(32),
            size: 170_000,
            chunks: 1,
        };
        assert_eq!(
            RecipeSpec::parse(spec.encode().as_bytes()),
            Some(spec.clone())
        );
        assert_eq!(spec.chunk_name(7), format!("{}-0007", "ab".repeat(32)));
        for bad in [
            "sha256=ab size=1 chunks=1",
            "size=1 chunks=1",
            "sha256=<x> size=1 chunks=1 extra=2",
            "",
        ] {
            assert_eq!(RecipeSpec::parse(bad.as_bytes()), None, "{bad}");
        }
        assert_eq!(recipe_name("/wazoo/recipes/lock"), Some("lock"));
        assert_eq!(recipe_name("/wazoo/recipes/lock/ab-0000"), None);
        assert_eq!(recipe_name("/wazoo/recipes"), None);
        assert_eq!(recipe_name("/wazoo/recipesx/a"), None);
    }
}
