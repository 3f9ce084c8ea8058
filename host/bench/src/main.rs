//! `wazoo-bench`: the same load generator as `wazoo bench`, as a small binary of its own (it
//! builds without RocksDB, so it is quick to build on a machine that only runs the client).

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "wazoo-bench",
    version,
    about = "ZooKeeper-protocol load generator (same as `wazoo bench`)"
)]
struct Cli {
    #[command(flatten)]
    bench: wazoo_bench::BenchArgs,
}

fn main() {
    let cli = Cli::parse();
    let code = match wazoo_bench::main_with(cli.bench) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("wazoo-bench: {:#}", anyhow::Error::from(e));
            1
        }
    };
    std::process::exit(code);
}
