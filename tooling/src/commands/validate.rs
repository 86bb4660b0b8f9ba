//! `istio-demo validate [PATH...]`: render every kustomization, validate each object strictly
//! against the pinned schemas, and check the project's rules. Exit status 1 on any error.
//! `istio-demo validate -` checks one rendered YAML stream from stdin instead (what
//! `istio-demo up --dry-run=client -o yaml` prints), where every placeholder is an error.

use super::cannot_run;
use crate::manifests::lint::{self, LintOptions};
use crate::manifests::schema::Schemas;
use crate::manifests::{self, Finding, Manifest, Severity, display_path};
use clap::Args;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Args)]
#[command(
    about = "Validate the GitOps manifests offline: kustomize build, strict schemas, project lints",
    long_about = "Renders every kustomization (kubectl kustomize, offline) under each PATH, validates every object \
strictly against the pinned Kubernetes and CRD schemas (unknown fields, wrong types and missing required fields \
are errors), and checks the project's rules (pinned images, requests and limits, no clear-text token in the \
WasmPlugin, no duplicate objects, security contexts, the WasmPlugin covering Flagger's primary and canary pods...). \
A PATH may also be a YAML file. Without PATH, the repository's manifest directories are checked, including the \
rules that need the whole repository (every namespace created, STRICT mTLS in demo, the filter deployed). \
In the repository the release template's zero digests are warnings (`istio-demo up` renders the real values). \
With `-` as the only PATH, one YAML stream is read from stdin, e.g. `istio-demo up --dry-run=client -o yaml | \
istio-demo validate -`, and checked as a whole deploy: every rule above, every Flux source present, and any \
placeholder (registry.example.com, your-org, an all-zero digest) is an error. \
Each error names the file, the object (Kind/namespace/name) and the field path. Exit status: 0 when there is no \
error (warnings are printed only), 1 when there is one, 2 when the schemas or stdin cannot be read."
)]
pub struct ValidateArgs {
    /// Kustomization directories (searched recursively) or YAML files, or `-` alone for one YAML
    /// stream on stdin. Default: the repository's manifest directories (registry, flux, istio,
    /// monitoring, flagger, demo, elk).
    pub paths: Vec<PathBuf>,

    /// Schema folder with kubernetes/<version>/ and crds/. Default: $ISTIO_DEMO_SCHEMAS, else <repo>/../shared/schemas.
    #[arg(long, value_name = "DIR")]
    pub schemas: Option<PathBuf>,

    /// Print one line per object checked.
    #[arg(short, long)]
    pub verbose: bool,
}

/// What a run found.
#[derive(Debug, Default)]
pub struct Report {
    pub kustomizations: usize,
    pub files: usize,
    pub objects: usize,
    pub findings: Vec<Finding>,
    /// Load failures (kustomize errors, unreadable YAML): always errors.
    pub load_errors: Vec<String>,
}

impl Report {
    pub fn errors(&self) -> usize {
        self.load_errors.len()
            + self
                .findings
                .iter()
                .filter(|f| f.severity == Severity::Error)
                .count()
    }
    pub fn warnings(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Warning)
            .count()
    }
}

/// Runs the command; the exit code is 0 when there is no error, 1 otherwise, 2 when the schemas cannot be loaded.
pub fn run(args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    let repo = manifests::repo_root();
    let schema_dir = args
        .schemas
        .clone()
        .unwrap_or_else(|| manifests::default_schema_dir(&repo));
    let schemas = match Schemas::load(&schema_dir) {
        Ok(s) => s,
        Err(e) => return cannot_run(e),
    };
    let stdin = Path::new("-");
    if args.paths.iter().any(|p| p == stdin) {
        if args.paths.len() > 1 {
            return cannot_run(anyhow::anyhow!(
                "`-` (a YAML stream on stdin) cannot be combined with other paths"
            ));
        }
        let mut text = String::new();
        if let Err(e) = std::io::stdin().read_to_string(&mut text) {
            return cannot_run(anyhow::Error::new(e).context("reading stdin"));
        }
        let report = check_stream(&text, &schemas);
        return print_report(&report, "stdin", &schema_dir);
    }
    let (paths, whole) = if args.paths.is_empty() {
        let dirs: Vec<PathBuf> = manifests::MANIFEST_DIRS
            .iter()
            .map(|d| repo.join(d))
            .collect();
        (dirs, true)
    } else {
        (args.paths.clone(), false)
    };
    let report = check(
        &paths,
        &schemas,
        LintOptions {
            whole_repository: whole,
            stream: false,
        },
        args.verbose,
    );
    let from = format!(
        "{} kustomizations and {} files",
        report.kustomizations, report.files
    );
    print_report(&report, &from, &schema_dir)
}

/// Prints the findings and the summary line; exit status 1 on any error.
fn print_report(report: &Report, from: &str, schema_dir: &Path) -> anyhow::Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    for e in &report.load_errors {
        let _ = writeln!(stdout, "error[load]: {e}");
    }
    for f in &report.findings {
        let _ = writeln!(stdout, "{f}");
    }
    let _ = writeln!(
        stdout,
        "validate: {} objects from {from} against {}: {} errors, {} warnings",
        report.objects,
        display_path(schema_dir),
        report.errors(),
        report.warnings()
    );
    Ok(if report.errors() > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Checks one rendered YAML stream as a whole deploy: strict schemas, every lint (the
/// whole-repository rules included, `flux-path` excepted: a stream has no directories), every Flux
/// source present, duplicates across the stream, and every placeholder as an error.
pub fn check_stream(text: &str, schemas: &Schemas) -> Report {
    let mut report = Report::default();
    let objects = match manifests::parse_documents(text, Path::new("<stdin>")) {
        Ok(objects) => objects,
        Err(e) => {
            report.load_errors.push(e.to_string());
            return report;
        }
    };
    report.files = 1;
    report.findings.extend(lint::lint_kustomization(&objects));
    for object in &objects {
        report.objects += 1;
        report.findings.extend(schemas.validate(object));
        report.findings.extend(lint::lint_object(object));
    }
    report.findings.extend(lint::placeholders(&objects));
    report.findings.extend(lint::lint_set(
        &objects,
        LintOptions {
            whole_repository: true,
            stream: true,
        },
    ));
    report
}

/// Loads, validates and lints `paths` (directories are searched for kustomizations).
pub fn check(paths: &[PathBuf], schemas: &Schemas, options: LintOptions, verbose: bool) -> Report {
    let mut report = Report::default();
    let mut all: Vec<Manifest> = Vec::new();
    for path in paths {
        let units: Vec<(PathBuf, bool)> = if path.is_dir() {
            match manifests::find_kustomizations(path) {
                Ok(dirs) if dirs.is_empty() => {
                    report
                        .load_errors
                        .push(format!("{}: no kustomization found", display_path(path)));
                    continue;
                }
                Ok(dirs) => dirs.into_iter().map(|d| (d, true)).collect(),
                Err(e) => {
                    report.load_errors.push(e.to_string());
                    continue;
                }
            }
        } else if path
            .file_name()
            .is_some_and(|n| manifests::KUSTOMIZATION_FILES.iter().any(|k| n == *k))
        {
            // A kustomization file names its directory.
            vec![(
                path.parent().map(Path::to_path_buf).unwrap_or_default(),
                true,
            )]
        } else {
            vec![(path.clone(), false)]
        };
        for (unit, is_dir) in units {
            let loaded = if is_dir {
                manifests::render(&unit)
            } else {
                manifests::load_file(&unit)
            };
            let objects = match loaded {
                Ok(objects) => objects,
                Err(e) => {
                    report.load_errors.push(e.to_string());
                    continue;
                }
            };
            if is_dir {
                report.kustomizations += 1;
            } else {
                report.files += 1;
            }
            report.findings.extend(lint::lint_kustomization(&objects));
            report
                .findings
                .extend(lint::placeholders_in_repository(&objects));
            report.findings.extend(lint::flux_paths(&objects));
            for object in &objects {
                if verbose {
                    println!(
                        "checking {} from {}",
                        object.id(),
                        display_path(&object.source)
                    );
                }
                report.objects += 1;
                report.findings.extend(schemas.validate(object));
                report.findings.extend(lint::lint_object(object));
            }
            // Cross-object rules see each object once, even when overlays render it again.
            for object in objects {
                if !all.iter().any(|m| same_object(m, &object)) {
                    all.push(object);
                }
            }
        }
    }
    report.findings.extend(lint::lint_set(&all, options));
    // An object rendered by several kustomizations (a base and its overlays) is reported once.
    let mut unique: Vec<Finding> = Vec::with_capacity(report.findings.len());
    for f in std::mem::take(&mut report.findings) {
        if !unique.contains(&f) {
            unique.push(f);
        }
    }
    report.findings = unique;
    report
}

fn same_object(a: &Manifest, b: &Manifest) -> bool {
    a.group() == b.group()
        && a.kind() == b.kind()
        && a.namespace() == b.namespace()
        && a.name() == b.name()
}

/// `validate` over `paths` with schemas from `schema_dir`; for tests and other commands.
pub fn check_paths(paths: &[&Path], schema_dir: &Path) -> Result<Report, manifests::ManifestError> {
    let schemas = Schemas::load(schema_dir)?;
    let paths: Vec<PathBuf> = paths.iter().map(|p| p.to_path_buf()).collect();
    Ok(check(&paths, &schemas, LintOptions::default(), false))
}
