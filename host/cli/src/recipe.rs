//! `wazoo recipe call`: calls a server-side recipe over the client protocol (opcode 1000,
//! docs/recipes.md); `load`, `list`, `show`, `remove` manage recipes as znodes
//! ([`crate::recipe_store`]). Arguments are given as JSON and sent as MessagePack (or as hex bytes);
//! the output is printed as JSON when it is MessagePack, else as hex.

use std::io::Cursor;

use anyhow::{bail, Context};
use clap::Subcommand;
use wazoo_client::{Client, ClientError, ConnectOptions};

use crate::recipe_store;

#[derive(clap::Args)]
pub struct RecipeArgs {
    /// Server address, `host:port` or a comma-separated list tried in order.
    #[arg(short = 's', long = "server", default_value = "127.0.0.1:2181")]
    server: String,
    #[command(subcommand)]
    cmd: RecipeCmd,
}

#[derive(Subcommand)]
enum RecipeCmd {
    /// Call a recipe's op; prints its output (exit status 1 if it aborted or failed).
    Call(CallArgs),
    /// Load a component (a .wasm file) as the current version of a recipe: znodes under
    /// /wazoo/recipes; new calls run it once the server has compiled it, calls in flight finish
    /// on theirs.
    Load {
        name: String,
        file: String,
        /// Fail unless the recipe's node is at this version (what the last load printed).
        #[arg(long)]
        expect_version: Option<i32>,
        /// Return once the znodes are written, without waiting to hear whether the server
        /// compiled the component (by default the load waits, up to 10 minutes, and fails
        /// with the compile's error).
        #[arg(long)]
        no_wait: bool,
    },
    /// List the loaded recipes (the built-ins are not znodes).
    List,
    /// Show one loaded recipe.
    Show { name: String },
    /// Remove a loaded recipe (calls in flight finish; a built-in of that name serves again).
    Remove { name: String },
}

#[derive(clap::Args)]
struct CallArgs {
    /// The recipe's name.
    name: String,
    /// The op.
    op: String,
    /// Arguments as JSON, sent as MessagePack.
    #[arg(conflicts_with = "hex")]
    args: Option<String>,
    /// Arguments as hex bytes, sent as they are.
    #[arg(long)]
    hex: Option<String>,
    /// The call's name across retries.
    #[arg(long, default_value = "")]
    request_id: String,
}

pub async fn run(a: RecipeArgs) -> anyhow::Result<i32> {
    let c = match a.cmd {
        RecipeCmd::Call(c) => c,
        cmd => return manage(&a.server, cmd).await,
    };
    let args = match (&c.args, &c.hex) {
        (_, Some(h)) => from_hex(h).context("--hex")?,
        (Some(j), None) => {
            let v: serde_json::Value = serde_json::from_str(j).context("the arguments")?;
            rmp_serde::to_vec(&v)?
        }
        // No arguments: an empty map, what a recipe with no required field decodes.
        (None, None) => vec![0x80],
    };
    let client = Client::connect(&a.server, ConnectOptions::default())
        .await
        .with_context(|| format!("cannot connect to {}", a.server))?;
    let result = client
        .recipe_call(&c.name, &c.op, &args, &c.request_id)
        .await;
    let _ = client.close().await;
    match result {
        Ok(Ok(output)) => {
            println!("{}", show(&output));
            Ok(0)
        }
        Ok(Err(error)) => {
            eprintln!("aborted: {}", show(&error));
            Ok(1)
        }
        Err(ClientError::Server(code)) => {
            eprintln!("wazoo: {} {}.{}: {code}", a.server, c.name, c.op);
            Ok(1)
        }
        Err(e) => Err(e.into()),
    }
}

/// `load`, `list`, `show`, `remove`.
async fn manage(server: &str, cmd: RecipeCmd) -> anyhow::Result<i32> {
    let client = Client::connect(server, ConnectOptions::default())
        .await
        .with_context(|| format!("cannot connect to {server}"))?;
    let result = async {
        Ok::<i32, anyhow::Error>(match cmd {
            RecipeCmd::Call(_) => unreachable!("handled by the caller"),
            RecipeCmd::Load {
                name,
                file,
                expect_version,
                no_wait,
            } => {
                let wasm = recipe_store::read_component(&file)?;
                let l = recipe_store::load(&client, &name, &wasm, expect_version).await?;
                println!(
                    "loaded {name}: {} bytes in {} chunk(s), sha256 {}, node version {}",
                    l.spec.size, l.spec.chunks, l.spec.sha256, l.node_version
                );
                if !no_wait {
                    let wait = std::time::Duration::from_secs(600);
                    let version = recipe_store::wait_compiled(&client, &name, wait).await?;
                    println!("compiled: version {version:#x} is current");
                }
                0
            }
            RecipeCmd::List => {
                for l in recipe_store::list(&client).await? {
                    match recipe_store::status(&client, &l.name).await? {
                        Some(status) => println!("{}\t{status}", recipe_store::line(&l)),
                        None => println!("{}", recipe_store::line(&l)),
                    }
                }
                0
            }
            RecipeCmd::Show { name } => match recipe_store::show(&client, &name).await? {
                Some(l) => {
                    println!("{}", recipe_store::line(&l));
                    if let Some(status) = recipe_store::status(&client, &name).await? {
                        println!("status: {status}");
                    }
                    0
                }
                None => {
                    eprintln!("no recipe {name} is loaded");
                    1
                }
            },
            RecipeCmd::Remove { name } => {
                if recipe_store::remove(&client, &name).await? {
                    println!("removed {name}");
                    0
                } else {
                    eprintln!("no recipe {name} is loaded");
                    1
                }
            }
        })
    }
    .await;
    let _ = client.close().await;
    result
}

/// JSON if `bytes` are exactly one MessagePack value, else `hex:` and the bytes.
fn show(bytes: &[u8]) -> String {
    let mut cur = Cursor::new(bytes);
    let decoded: Result<serde_json::Value, _> =
        serde::Deserialize::deserialize(&mut rmp_serde::Deserializer::new(&mut cur));
    match decoded {
        Ok(v) if !bytes.is_empty() && cur.position() as usize == bytes.len() => v.to_string(),
        _ => format!("hex:{}", to_hex(bytes)),
    }
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn from_hex(s: &str) -> anyhow::Result<Vec<u8>> {
    if s.len() % 2 != 0 {
        bail!("an odd number of hex digits");
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).context("not hex"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_json_only_when_it_is_exactly_one_messagepack_value() {
        let packed = rmp_serde::to_vec(&serde_json::json!({"value": 3})).unwrap();
        assert_eq!(show(&packed), r#"{"value":3}"#);
        // An 8-byte little-endian 3: its first byte alone would read as MessagePack's 3.
        assert_eq!(show(&3i64.to_le_bytes()), "hex:0300000000000000");
        assert_eq!(show(b""), "hex:");
        assert_eq!(from_hex("00ff").unwrap(), vec![0, 255]);
        assert!(from_hex("0").is_err() && from_hex("zz").is_err());
    }
}
