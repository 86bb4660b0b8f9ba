//! `rfma-bench`: run the benchmark (and the soak), write `docs/performance.md` and
//! `docs/performance.json`. `make bench` runs it and then draws `docs/performance.png`.

use clap::Parser;
use rfma_bench::bench::{self, PROFILE, PROFILE_SCENARIO, STANDARD, Setup, Variant};
use rfma_bench::report::Report;
use rfma_bench::{instructions, load, machine, rig, soak, summary};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(about = "Benchmark the token gate against no gate, RBAC and Lua in Envoy, then soak it")]
struct Args {
    /// The Envoy binary (default: ENVOY_BIN, else `envoy` on PATH).
    #[arg(long)]
    envoy: Option<PathBuf>,
    /// The filter module (default: RFMA_WASM, else target/rfma_filter.wasm).
    #[arg(long)]
    wasm: Option<PathBuf>,
    /// Rounds of alternating variants.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    rounds: u32,
    /// Seconds of warm-up load before each measured window.
    #[arg(long, default_value_t = 1)]
    warmup: u64,
    /// Seconds of each measured window.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=600))]
    duration: u64,
    /// Scenarios of the CPU rounds, comma-separated: h1-allowed, h1-denied, h2-allowed,
    /// h2-denied, h1-bypass.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "h1-allowed,h1-denied,h2-allowed"
    )]
    scenarios: Vec<String>,
    /// Also run the profiling variants that split the filter's cost (other filter
    /// configurations, probe modules) in h1-allowed; the record formats (p1–p3) always run.
    #[arg(long)]
    profile: bool,
    /// Only these variants, comma-separated keys (a…e, p1…; a profiling one runs only in
    /// h1-allowed). Default: a…e and p1–p3, and every p… with --profile.
    #[arg(long, value_delimiter = ',')]
    variants: Vec<String>,
    /// Requests in the soak run (0: no soak).
    #[arg(long, default_value_t = 1_000_000)]
    soak_requests: u64,
    /// Requests per soak batch (each batch is checked completely).
    #[arg(long, default_value_t = 50_000)]
    soak_batch: u64,
    /// Rounds of the memory runs (a, the empty probe and d with one and with two workers;
    /// 0: none).
    #[arg(long, default_value_t = 3)]
    memory_rounds: u32,
    /// Requests per callgrind run: after the CPU rounds, each variant runs once more under
    /// valgrind's callgrind, which counts the instructions Envoy executes per request
    /// (deterministic, unlike CPU time; needs valgrind and hey). 0: skip.
    #[arg(long, default_value_t = instructions::DEFAULT_REQUESTS)]
    instructions: u64,
    /// Scenarios of the callgrind runs, comma-separated, HTTP/1.1 only (RBAC and Lua do not
    /// run in h1-bypass: they have no bypass rule).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = instructions::DEFAULT_SCENARIOS
    )]
    instruction_scenarios: Vec<String>,
    /// Do not pin Envoy and the load generator to cores.
    #[arg(long)]
    no_pin: bool,
    /// Where performance.md and performance.json go.
    #[arg(long, default_value = "docs")]
    out: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rfma-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn find_wasm(explicit: Option<&PathBuf>) -> Result<PathBuf, String> {
    let path = explicit
        .cloned()
        .or_else(|| {
            std::env::var_os("RFMA_WASM")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| PathBuf::from("target/rfma_filter.wasm"));
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "the filter module {} does not exist; build it with `make wasm`",
            path.display()
        ))
    }
}

fn run(args: &Args) -> Result<(), String> {
    let envoy = envoy_harness::find_envoy(args.envoy.as_deref())?;
    let wasm = find_wasm(args.wasm.as_ref())?;
    load::check_tools()?;
    // Checked before the CPU rounds, so a missing tool does not fail a long run at its end.
    let instr_tools = if args.instructions > 0 {
        let tools = instructions::check_tools()?;
        if args.instructions < u64::from(instructions::CONNECTIONS) {
            return Err(format!(
                "--instructions: at least {} requests (hey's connections), or 0 to skip",
                instructions::CONNECTIONS
            ));
        }
        // valgrind must start the Envoy binary, not the virtualenv's wrapper script.
        Some((tools, instructions::resolve_envoy_binary(&envoy)?))
    } else {
        None
    };
    let scenarios = args
        .scenarios
        .iter()
        .map(|s| bench::scenario(s.trim()))
        .collect::<Result<Vec<_>, _>>()?;
    if scenarios.is_empty() {
        return Err("--scenarios: name at least one".to_owned());
    }
    let variants: Vec<Variant> = if args.variants.is_empty() {
        bench::default_variants(args.profile)
    } else {
        bench::select(&args.variants)?
    };
    let profiling = variants
        .iter()
        .any(|v| PROFILE.iter().any(|p| p.key == v.key));
    if profiling && !scenarios.iter().any(|s| s.key == PROFILE_SCENARIO) {
        return Err(format!(
            "the profiling variants run in {PROFILE_SCENARIO} only; add it to --scenarios"
        ));
    }
    let instruction_runs = if instr_tools.is_some() {
        let scenarios = args
            .instruction_scenarios
            .iter()
            .map(|s| bench::scenario(s.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        instructions::plan(&scenarios, &variants)?
    } else {
        Vec::new()
    };
    if !args.out.is_dir() {
        return Err(format!("--out: {} is not a directory", args.out.display()));
    }
    let cores = (!args.no_pin && rig::can_pin()).then_some((0, 1));
    let setup = Setup {
        envoy: envoy.clone(),
        wasm: wasm.clone(),
        warmup: Duration::from_secs(args.warmup),
        duration: Duration::from_secs(args.duration),
        cores,
        scratch: bench::default_scratch(),
        workers: 1,
    };
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let command = std::env::var("RFMA_BENCH_COMMAND").unwrap_or(command);
    let meta = machine::describe(&envoy, &wasm, &command);
    let load_before = machine::load_average();

    let started = Instant::now();
    let mut runs = Vec::new();
    let per_round: usize = scenarios
        .iter()
        .map(|sc| variants.iter().filter(|v| bench::runs_in(v, sc)).count())
        .sum();
    let total = per_round * args.rounds as usize;
    for round in 1..=args.rounds {
        for sc in &scenarios {
            for v in variants.iter().filter(|v| bench::runs_in(v, sc)) {
                let r = bench::run_one(&setup, round, *sc, *v)?;
                eprintln!(
                    "[{:>3}/{total} {:>4.0}s] round {round} {:<10} {:<48} {:>7.0} req/s  {:>5.1} µs CPU/req  busy {:>3.0} %",
                    runs.len() + 1,
                    started.elapsed().as_secs_f64(),
                    sc.key,
                    v.label,
                    r.measured.rps(),
                    r.cpu_us_per_request,
                    r.envoy_utilisation * 100.0
                );
                runs.push(r);
            }
        }
    }
    let scenario_keys: Vec<&'static str> = scenarios.iter().map(|s| s.key).collect();
    let variant_keys: Vec<&'static str> = STANDARD
        .iter()
        .chain(PROFILE.iter())
        .map(|v| v.key)
        .collect();
    let rows = summary::summarise(&runs, &scenario_keys, &variant_keys, "a");

    // Instructions per request: one callgrind run per variant is enough (it is deterministic).
    let mut instr = Vec::new();
    if let Some((tools, envoy_elf)) = &instr_tools {
        let isetup = instructions::Setup {
            envoy: envoy_elf.clone(),
            wasm: wasm.clone(),
            tools: tools.clone(),
            requests: args.instructions,
            warmup_requests: instructions::WARMUP_REQUESTS,
            scratch: setup.scratch.clone(),
        };
        let n = instruction_runs.len();
        for (i, (sc, v)) in instruction_runs.iter().enumerate() {
            let t = Instant::now();
            let m = instructions::measure(&isetup, *sc, *v)?;
            eprintln!(
                "[instr {:>2}/{n} {:>4.0}s] {:<10} {:<48} {:>9.0} instructions/req  ({} requests, window {:.1}s, run {:.0}s)",
                i + 1,
                started.elapsed().as_secs_f64(),
                sc.key,
                v.label,
                m.per_request(),
                m.requests,
                m.window_s,
                t.elapsed().as_secs_f64()
            );
            instr.push(m);
        }
    }

    // Memory: what a further worker (a further Wasm VM) adds, apart from what the first costs:
    // no gate, the empty probe, the filter.
    let mem_variants: Vec<Variant> = ["a", "p6", "d"]
        .into_iter()
        .filter_map(bench::variant)
        .collect();
    let mut mem_samples = Vec::new();
    let h1 = bench::scenario("h1-allowed")?;
    for round in 1..=args.memory_rounds {
        for workers in [1, 2] {
            for v in mem_variants.iter().copied() {
                let s = Setup {
                    workers,
                    warmup: Duration::ZERO,
                    duration: Duration::from_secs(1),
                    ..setup.clone()
                };
                let r = bench::run_one(&s, round, h1, v)?;
                eprintln!(
                    "[memory {:>4.0}s] round {round} {workers} worker(s) {:<48} VmHWM {} KiB",
                    started.elapsed().as_secs_f64(),
                    v.label,
                    r.vm_hwm_kib
                );
                mem_samples.push((workers, v.key, r.vm_hwm_kib));
            }
        }
    }
    let mem_keys: Vec<&'static str> = mem_variants.iter().map(|v| v.key).collect();
    let memory = summary::memory_rows(&mem_samples, &mem_keys);

    let soak_reference = args.soak_batch;
    let soak = if args.soak_requests > 0 {
        let dir = bench::tempdir(&setup.scratch, "soak-")?;
        let spec = soak::SoakSpec {
            envoy: envoy.clone(),
            wasm: wasm.clone(),
            requests: args.soak_requests,
            batch: args.soak_batch,
            reference_after: soak_reference,
            max_growth_percent: 5.0,
            cores,
            deadline: None,
        };
        let t = Instant::now();
        let result = soak::run(&spec, dir.path(), |line| {
            eprintln!("[soak {:>4.0}s] {line}", t.elapsed().as_secs_f64());
        })?;
        eprintln!(
            "soak: {} requests in {:.0}s, VmRSS {} KiB after {} requests, {} KiB at the end ({:+.2} %)",
            result.requests,
            result.seconds,
            result.rss_reference_kib,
            soak_reference,
            result.rss_end_kib,
            result.growth_percent
        );
        Some(result)
    } else {
        None
    };

    let report = Report {
        meta,
        rounds: args.rounds,
        warmup_s: args.warmup,
        duration_s: args.duration,
        pinned: cores,
        scenarios: scenario_keys,
        runs: &runs,
        rows: &rows,
        memory: &memory,
        load_before,
        load_after: machine::load_average(),
        soak: soak.as_ref(),
        soak_requests: args.soak_requests,
        soak_batch: args.soak_batch,
        soak_reference,
        instructions: &instr,
        instructions_requests: args.instructions,
        instructions_tool: instr_tools
            .as_ref()
            .map(|(t, _)| t.valgrind_version.clone()),
    };
    let md = args.out.join("performance.md");
    let js = args.out.join("performance.json");
    std::fs::write(&md, report.markdown()).map_err(|e| format!("{}: {e}", md.display()))?;
    let json = serde_json::to_string_pretty(&report.to_json()).map_err(|e| e.to_string())?;
    std::fs::write(&js, json + "\n").map_err(|e| format!("{}: {e}", js.display()))?;
    eprintln!(
        "wrote {} and {} in {:.0}s",
        md.display(),
        js.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
