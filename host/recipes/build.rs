//! Builds the built-in recipes (`recipes/`, a workspace of its own) into wasm32-wasip2
//! components for the tests and the server to embed: `$OUT_DIR/<name>.wasm`. The nested cargo
//! gets a target directory of its own (sharing the outer one would wait on its lock forever).
//! Needs the target: `rustup target add wasm32-wasip2` (the scripts run it).

use std::env;
use std::path::PathBuf;
use std::process::Command;

/// The crates of `recipes/` (a crate `a-b` builds `a_b.wasm`).
const RECIPES: &[&str] = &[
    "barrier",
    "counter",
    "double-barrier",
    "hostile",
    "latch",
    "mutex",
    "queue",
    "rwlock",
    "semaphore",
];

fn main() {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo")).join("../..");
    let recipes = root.join("recipes");
    for dir in [
        "recipes/Cargo.toml",
        "recipes/Cargo.lock",
        "wit",
        "guest-sdk",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    for name in RECIPES {
        println!("cargo:rerun-if-changed={}", recipes.join(name).display());
    }
    let out = PathBuf::from(env::var("OUT_DIR").expect("set by cargo"));
    let target = out.join("guest-target");
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--locked",
            "--target",
            "wasm32-wasip2",
        ])
        .arg("--manifest-path")
        .arg(recipes.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .env_remove("RUSTFLAGS")
        // The small-stack profile (guest-sdk/README.md): a 64 KiB shadow stack instead of
        // rustc's 1 MiB keeps a recipe's touched memory inside the pages the host keeps
        // resident between instances, so an instantiation is a memset, not page faults and
        // madvise TLB shootdowns (perf of the double-barrier bench: memset 7.7%,
        // smp_call_function_many_cond 6% of the server with 1 MiB).
        .env("CARGO_ENCODED_RUSTFLAGS", "-Clink-arg=-zstack-size=65536")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .status()
        .expect("cargo runs");
    assert!(
        status.success(),
        "building the recipes for wasm32-wasip2 failed (is the target installed? \
         `rustup target add wasm32-wasip2`)"
    );
    for name in RECIPES {
        let file = format!("{}.wasm", name.replace('-', "_"));
        let built = target.join("wasm32-wasip2/release").join(&file);
        std::fs::copy(&built, out.join(&file))
            .unwrap_or_else(|e| panic!("{}: {e}", built.display()));
    }
}
