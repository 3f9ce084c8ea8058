//! `wazoo recipe load | list | show | remove`: recipes as znodes under `/wazoo/recipes`
//! (`wazoo_core::catalog` says what the server makes of them). A load writes the component in
//! chunks under the name's node, then the node's spec in one multi that also drops the previous
//! version's chunks, guarded by the node's version: the new version is current at once and
//! whole, and two loaders racing cannot both win.

use anyhow::{bail, Context};
use wazoo_client::{Acl, Client, ClientError, CreateMode, ErrorCode, MultiOp, OpResult};
use wazoo_server::core::{RecipeSpec, RECIPES_ROOT, RECIPE_STATUS_ROOT};

/// Bytes per chunk node: well under `jute.maxbuffer`'s default of 1 MiB with the request around.
const CHUNK: usize = 512 << 10;

/// What a load did.
pub struct Loaded {
    pub spec: RecipeSpec,
    /// The name's node's version after the load (`--expect-version` for the next one).
    pub node_version: i32,
}

fn node_of(name: &str) -> anyhow::Result<String> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        bail!("a recipe's name is one path segment, not {name:?}");
    }
    Ok(format!("{RECIPES_ROOT}/{name}"))
}

/// Creates `path` unless it exists.
async fn ensure(client: &Client, path: &str, data: &[u8]) -> Result<(), ClientError> {
    match client
        .create(path, data, &Acl::open_unsafe(), CreateMode::Persistent)
        .await
    {
        Err(e) if e.is(ErrorCode::NodeExists) => Ok(()),
        r => r.map(|_| ()),
    }
}

/// Loads `wasm` as the current version of `name`; `expect`: the name's node's version the
/// load replaces (`None`: whatever it is; a new name has none).
pub async fn load(
    client: &Client,
    name: &str,
    wasm: &[u8],
    expect: Option<i32>,
) -> anyhow::Result<Loaded> {
    let node = node_of(name)?;
    let spec = RecipeSpec {
        sha256: wazoo_recipes::sha256_hex(wasm),
        size: wasm.len() as u64,
        chunks: wasm.chunks(CHUNK).count().max(1) as u32,
    };
    ensure(client, "/wazoo", b"").await?;
    ensure(client, RECIPES_ROOT, b"").await?;
    // A new name's node starts empty: the server installs nothing until its spec is set.
    ensure(client, &node, b"").await?;
    for (i, chunk) in wasm.chunks(CHUNK).enumerate() {
        ensure(
            client,
            &format!("{node}/{}", spec.chunk_name(i as u32)),
            chunk,
        )
        .await?;
    }
    let (_, stat) = client.get_data(&node, false).await?;
    let version = match expect {
        Some(v) if v != stat.version => {
            bail!("{node} is at version {}, not {v}", stat.version)
        }
        _ => stat.version,
    };
    let mine: Vec<String> = (0..spec.chunks).map(|i| spec.chunk_name(i)).collect();
    let mut ops = vec![MultiOp::SetData {
        path: node.clone(),
        data: Some(spec.encode().into_bytes()),
        version,
    }];
    for old in client.get_children(&node, false).await? {
        if !mine.contains(&old) {
            ops.push(MultiOp::Delete {
                path: format!("{node}/{old}"),
                version: -1,
            });
        }
    }
    let results = client.multi(ops).await?;
    match results.iter().find_map(|r| match r {
        OpResult::Error(c) if *c != 0 => Some(*c),
        _ => None,
    }) {
        Some(c) if c == ErrorCode::BadVersion.code() => {
            bail!("{node} changed while loading (another load?): load again")
        }
        Some(c) => bail!("the load's multi failed with code {c}"),
        None => {}
    }
    Ok(Loaded {
        spec,
        node_version: version + 1,
    })
}

/// What the server made of the version of `name` current now, as its status node says
/// (`RECIPE_STATUS_ROOT`): waits until the status names that version (the server writes it once
/// it has compiled the component, or failed to), up to `timeout`. `Ok(version)` once current;
/// an error saying why the compile failed, or that nothing was heard.
pub async fn wait_compiled(
    client: &Client,
    name: &str,
    timeout: std::time::Duration,
) -> anyhow::Result<i64> {
    let node = node_of(name)?;
    let status = format!("{RECIPE_STATUS_ROOT}/{name}");
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let (_, stat) = client.get_data(&node, false).await?;
        let version = stat.mzxid;
        match client.get_data(&status, false).await {
            Ok((data, _)) => {
                let text = String::from_utf8_lossy(&data);
                if parse_status_version(&text) == Some(version) {
                    if let Some(why) = text.split_once(" state=failed error=").map(|(_, e)| e) {
                        bail!("the server could not compile {name} (version {version:#x}): {why}");
                    }
                    return Ok(version);
                }
            }
            Err(e) if e.is(ErrorCode::NoNode) => {}
            Err(e) => return Err(e.into()),
        }
        if std::time::Instant::now() >= deadline {
            bail!(
                "{name} (version {version:#x}) was not compiled within {} s: see the server's log, \
                 or `wazoo recipe show {name}` later",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// The version a status names (`version=0x.. state=..`).
fn parse_status_version(text: &str) -> Option<i64> {
    let v = text.strip_prefix("version=0x")?.split(' ').next()?;
    i64::from_str_radix(v, 16).ok()
}

/// `name`'s status as the server recorded it, if any.
pub async fn status(client: &Client, name: &str) -> anyhow::Result<Option<String>> {
    match client
        .get_data(&format!("{RECIPE_STATUS_ROOT}/{name}"), false)
        .await
    {
        Ok((data, _)) => Ok(Some(String::from_utf8_lossy(&data).into_owned())),
        Err(e) if e.is(ErrorCode::NoNode) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// One loaded recipe as `list` and `show` print it.
pub struct Listed {
    pub name: String,
    pub spec: Option<RecipeSpec>,
    /// The mzxid: the version the server runs for new calls once compiled.
    pub zxid: i64,
    pub node_version: i32,
}

/// The recipe `name`'s node, if loaded.
pub async fn show(client: &Client, name: &str) -> anyhow::Result<Option<Listed>> {
    let node = node_of(name)?;
    match client.get_data(&node, false).await {
        Ok((data, stat)) => Ok(Some(Listed {
            name: name.to_owned(),
            spec: RecipeSpec::parse(&data),
            zxid: stat.mzxid,
            node_version: stat.version,
        })),
        Err(e) if e.is(ErrorCode::NoNode) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Every loaded recipe, by name.
pub async fn list(client: &Client) -> anyhow::Result<Vec<Listed>> {
    let mut names = match client.get_children(RECIPES_ROOT, false).await {
        Ok(n) => n,
        Err(e) if e.is(ErrorCode::NoNode) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    names.sort();
    let mut out = Vec::new();
    for name in names {
        if let Some(l) = show(client, &name).await? {
            out.push(l);
        }
    }
    Ok(out)
}

/// Removes `name` (its chunks and node, in one multi); false if it was not loaded.
pub async fn remove(client: &Client, name: &str) -> anyhow::Result<bool> {
    let node = node_of(name)?;
    let children = match client.get_children(&node, false).await {
        Ok(c) => c,
        Err(e) if e.is(ErrorCode::NoNode) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    let mut ops: Vec<MultiOp> = children
        .into_iter()
        .map(|c| MultiOp::Delete {
            path: format!("{node}/{c}"),
            version: -1,
        })
        .collect();
    ops.push(MultiOp::Delete {
        path: node.clone(),
        version: -1,
    });
    let results = client.multi(ops).await?;
    if let Some(c) = results.iter().find_map(|r| match r {
        OpResult::Error(c) if *c != 0 => Some(*c),
        _ => None,
    }) {
        bail!("removing {node} failed with code {c} (changed meanwhile? remove again)");
    }
    Ok(true)
}

/// A listing line: name, size, hash prefix, the version's zxid.
pub fn line(l: &Listed) -> String {
    match &l.spec {
        Some(s) => format!(
            "{}\t{} bytes\tsha256 {}\tversion {:#x}\t(node version {})",
            l.name,
            s.size,
            &s.sha256[..16],
            l.zxid,
            l.node_version
        ),
        None => format!("{}\t(no spec: not loadable)", l.name),
    }
}

/// Reads a component file, refusing what is plainly not one.
pub fn read_component(path: &str) -> anyhow::Result<Vec<u8>> {
    let wasm = std::fs::read(path).with_context(|| format!("reading {path}"))?;
    if !wasm.starts_with(b"\0asm") {
        bail!("{path} is not a WebAssembly file");
    }
    Ok(wasm)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_status_names_its_version_in_hex() {
        use super::parse_status_version as v;
        assert_eq!(v("version=0x29 state=current"), Some(0x29));
        assert_eq!(v("version=0x1a2 state=failed error=bad magic"), Some(0x1a2));
        assert_eq!(v("state=current"), None);
        assert_eq!(v("version=0xzz state=current"), None);
    }
}
