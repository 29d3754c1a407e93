//! The matrix's results: a connector × runner table on stdout and JUnit XML (one test
//! suite per connector, one test case per cell).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use crate::matrix_file::RUNNERS;
use crate::secs;

/// How a cell ended.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// A declared runner produced the reference dataset (`rows` rows).
    Passed {
        /// Rows committed.
        rows: usize,
    },
    /// An undeclared runner was refused with the documented error.
    Refused,
    /// Why the cell failed.
    Failed(String),
}

impl Verdict {
    /// Whether the cell passed.
    pub fn passed(&self) -> bool {
        !matches!(self, Verdict::Failed(_))
    }
}

/// One cell: a connector on a runner (or its one-shot reference).
#[derive(Debug, Clone)]
pub struct CellResult {
    /// The connector's manifest name.
    pub connector: String,
    /// `lambda`, `fargate`, `ec2`, `glue` or `one-shot`.
    pub runner: String,
    /// How it ended.
    pub verdict: Verdict,
    /// How long it took.
    pub duration: Duration,
}

impl CellResult {
    /// A cell.
    pub fn new(connector: &str, runner: &str, verdict: Verdict, duration: Duration) -> Self {
        Self {
            connector: connector.to_string(),
            runner: runner.to_string(),
            verdict,
            duration,
        }
    }

    fn short(&self) -> String {
        match &self.verdict {
            Verdict::Passed { rows } => format!("pass {} ({rows} rows)", secs(self.duration)),
            Verdict::Refused => format!("refused {}", secs(self.duration)),
            Verdict::Failed(_) => format!("FAIL {}", secs(self.duration)),
        }
    }
}

/// The table: a row per connector, a column per runner (and the one-shot reference).
pub fn print_table(cells: &[CellResult]) {
    let mut connectors: Vec<&str> = Vec::new();
    for c in cells {
        if !connectors.contains(&c.connector.as_str()) {
            connectors.push(&c.connector);
        }
    }
    let columns: Vec<&str> = std::iter::once("one-shot").chain(RUNNERS).collect();
    let width = connectors.iter().map(|c| c.len()).max().unwrap_or(9).max(9);
    println!();
    print!("{:<width$}", "connector");
    for col in &columns {
        print!("  {col:<24}");
    }
    println!();
    for connector in &connectors {
        print!("{connector:<width$}");
        for col in &columns {
            let cell = cells
                .iter()
                .find(|c| c.connector == *connector && c.runner == *col)
                .map(CellResult::short)
                .unwrap_or_else(|| "-".into());
            print!("  {cell:<24}");
        }
        println!();
    }
    let failed: Vec<&CellResult> = cells.iter().filter(|c| !c.verdict.passed()).collect();
    println!();
    println!(
        "{} cells: {} passed, {} failed",
        cells.len(),
        cells.len() - failed.len(),
        failed.len()
    );
    for c in failed {
        if let Verdict::Failed(why) = &c.verdict {
            println!("FAIL {} on {}: {why}", c.connector, c.runner);
        }
    }
}

/// JUnit XML at `path` (directories created).
pub fn write_junit(cells: &[CellResult], total: Duration, path: &Path) -> Result<()> {
    let mut report = Report::new("runner-matrix");
    report.set_time(total);
    let mut connectors: Vec<&str> = Vec::new();
    for c in cells {
        if !connectors.contains(&c.connector.as_str()) {
            connectors.push(&c.connector);
        }
    }
    for connector in connectors {
        let mut suite = TestSuite::new(connector);
        for c in cells.iter().filter(|c| c.connector == connector) {
            let status = match &c.verdict {
                Verdict::Failed(why) => {
                    let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    s.set_message(why.lines().next().unwrap_or_default().to_string());
                    s.set_description(why.clone());
                    s
                }
                _ => TestCaseStatus::success(),
            };
            let name = match c.verdict {
                Verdict::Refused => format!("{}::refused", c.runner),
                _ => c.runner.clone(),
            };
            let mut case = TestCase::new(name, status);
            case.set_classname(format!("matrix.{connector}"));
            case.set_time(c.duration);
            suite.add_test_case(case);
        }
        report.add_test_suite(suite);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    report
        .serialize(file)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
