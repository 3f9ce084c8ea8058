//! Deterministic stand-ins for the few WASI functions a language runtime calls before it runs
//! any recipe code, so that recipes written in Python (componentize-py bundles CPython, which
//! imports the whole WASI 0.2 surface) run at all: an empty environment and argument list, no
//! working directory, clocks fixed at the call's txn time, and randomness drawn from the call's
//! seed (`context.random-seed`). Every other WASI function (files, sockets, streams, exit,
//! clock subscriptions) stays a trap (`RecipeHost::install`), so a recipe still reads no real
//! clock, entropy, file or socket, and a re-run with the same context sees the same values.
//!
//! Why these: with only traps, componentize-py's runtime trapped on
//! `wasi:cli/environment.get-environment` during its first export call
//! (recipes-research.md §6.2); CPython also asks for random bytes (hash seeds) and the clocks.

use wasmtime::component::{Component, ComponentType, Linker, Lower};
use wasmtime::Engine;

use crate::CallState;

/// `wasi:clocks/wall-clock.datetime`.
#[derive(ComponentType, Lower, Clone, Copy)]
#[component(record)]
struct Datetime {
    seconds: u64,
    nanoseconds: u32,
}

/// The most random bytes one call may ask for at once (CPython asks for tens).
const MAX_RANDOM_BYTES: u64 = 64 << 10;

/// The call's next pseudo-random u64 (splitmix64 over the seeded state).
pub(crate) fn next_u64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn random_bytes(state: &mut u64, len: u64) -> wasmtime::Result<Vec<u8>> {
    if len > MAX_RANDOM_BYTES {
        wasmtime::bail!("a recipe asked for {len} random bytes (at most {MAX_RANDOM_BYTES})");
    }
    let mut out = Vec::with_capacity(len as usize);
    while (out.len() as u64) < len {
        let word = next_u64(state).to_le_bytes();
        let take = ((len as usize) - out.len()).min(8);
        out.extend_from_slice(&word[..take]);
    }
    Ok(out)
}

/// Defines the stand-ins for whichever of these interfaces `component` imports (any 0.2.x).
pub(crate) fn define_stand_ins(
    linker: &mut Linker<CallState>,
    component: &Component,
    engine: &Engine,
) -> wasmtime::Result<()> {
    let imports: Vec<String> = component
        .component_type()
        .imports(engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    for name in imports {
        let base = name.split('@').next().unwrap_or(&name);
        match base {
            "wasi:cli/environment" => {
                let mut i = linker.instance(&name)?;
                i.func_wrap("get-environment", |_, (): ()| {
                    Ok((Vec::<(String, String)>::new(),))
                })?;
                i.func_wrap("get-arguments", |_, (): ()| Ok((Vec::<String>::new(),)))?;
                i.func_wrap("initial-cwd", |_, (): ()| Ok((None::<String>,)))?;
            }
            // The secure and the insecure interface alike: the call's seeded stream.
            "wasi:random/random" | "wasi:random/insecure" => {
                let (bytes, word) = if base == "wasi:random/random" {
                    ("get-random-bytes", "get-random-u64")
                } else {
                    ("get-insecure-random-bytes", "get-insecure-random-u64")
                };
                let mut i = linker.instance(&name)?;
                i.func_wrap(bytes, |mut s, (len,): (u64,)| {
                    Ok((random_bytes(&mut s.data_mut().rng, len)?,))
                })?;
                i.func_wrap(word, |mut s, (): ()| Ok((next_u64(&mut s.data_mut().rng),)))?;
            }
            "wasi:random/insecure-seed" => {
                let mut i = linker.instance(&name)?;
                i.func_wrap("insecure-seed", |mut s, (): ()| {
                    let rng = &mut s.data_mut().rng;
                    Ok(((next_u64(rng), next_u64(rng)),))
                })?;
            }
            "wasi:clocks/wall-clock" => {
                let mut i = linker.instance(&name)?;
                i.func_wrap("now", |s, (): ()| {
                    let ms = s.data().context.now_ms.max(0) as u64;
                    Ok((Datetime {
                        seconds: ms / 1000,
                        nanoseconds: (ms % 1000) as u32 * 1_000_000,
                    },))
                })?;
                i.func_wrap("resolution", |_, (): ()| {
                    Ok((Datetime {
                        seconds: 0,
                        nanoseconds: 1_000_000,
                    },))
                })?;
            }
            "wasi:clocks/monotonic-clock" => {
                // Nanoseconds; fixed for the call like the wall clock.
                let mut i = linker.instance(&name)?;
                i.func_wrap("now", |s, (): ()| {
                    Ok(((s.data().context.now_ms.max(0) as u64).saturating_mul(1_000_000),))
                })?;
                i.func_wrap("resolution", |_, (): ()| Ok((1_000_000u64,)))?;
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_bytes_are_the_seeds_stream_and_capped() {
        let (mut a, mut b) = (7, 7);
        assert_eq!(
            random_bytes(&mut a, 13).unwrap(),
            random_bytes(&mut b, 13).unwrap()
        );
        assert_eq!(random_bytes(&mut a, 13).unwrap().len(), 13);
        let mut c = 8;
        assert_ne!(
            random_bytes(&mut c, 8).unwrap(),
            random_bytes(&mut 7, 8).unwrap()
        );
        assert!(random_bytes(&mut a, MAX_RANDOM_BYTES + 1).is_err());
    }
}
