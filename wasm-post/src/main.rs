//! `wasm-post --exports filter/exports.json IN.wasm -o OUT.wasm` (see the library's docs).

use anyhow::{Context, Result, bail};
use std::path::PathBuf;
use wasm_post::{kept_exports, post_process, write_atomically};

const USAGE: &str = "usage: wasm-post --exports EXPORTS.json IN.wasm -o OUT.wasm";

fn main() -> Result<()> {
    let args = Args::parse(std::env::args().skip(1))?;
    let graph = std::fs::read_to_string(&args.exports)
        .with_context(|| format!("reading {}", args.exports.display()))?;
    let keep = kept_exports(&graph).with_context(|| args.exports.display().to_string())?;
    let wasm =
        std::fs::read(&args.input).with_context(|| format!("reading {}", args.input.display()))?;
    let out = post_process(&wasm, &keep).with_context(|| args.input.display().to_string())?;
    write_atomically(&args.output, &out)
}

#[derive(Debug)]
struct Args {
    exports: PathBuf,
    input: PathBuf,
    output: PathBuf,
}

impl Args {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Args> {
        let (mut exports, mut input, mut output) = (None, None, None);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--exports" => exports = args.next().map(PathBuf::from),
                "-o" => output = args.next().map(PathBuf::from),
                "-h" | "--help" => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                _ if arg.starts_with('-') => bail!("unknown option {arg}\n{USAGE}"),
                _ if input.is_none() => input = Some(PathBuf::from(arg)),
                _ => bail!("more than one input module\n{USAGE}"),
            }
        }
        match (exports, input, output) {
            (Some(exports), Some(input), Some(output)) => Ok(Args {
                exports,
                input,
                output,
            }),
            _ => bail!("{USAGE}"),
        }
    }
}
