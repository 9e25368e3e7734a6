//! The results: rows of samples, ratios against a peer measured in the
//! same run, the targets, printed as a table or as JSON.

use serde_json::{Value, json};

/// Is more of this better (connections per second) or less (time)?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Higher,
    Lower,
}

/// One contender on one workload: every round's value.
#[derive(Debug, Clone)]
pub struct Row {
    pub workload: String,
    pub contender: String,
    pub unit: &'static str,
    pub better: Better,
    pub values: Vec<f64>,
}

impl Row {
    pub fn median(&self) -> f64 {
        let mut v = self.values.clone();
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }

    fn min_max(&self) -> (f64, f64) {
        let min = self.values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = self
            .values
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        (min, max)
    }
}

/// A target of the issue: `contender / against` on `workload` (or, with
/// no `against`, the contender's own median), at least (Higher) or at
/// most (Lower) `bound`.
#[derive(Debug, Clone)]
pub struct Target {
    pub what: String,
    pub workload: String,
    pub contender: String,
    pub against: Option<String>,
    pub bound: f64,
}

/// Everything measured in one run.
#[derive(Debug, Default)]
pub struct Report {
    pub rows: Vec<Row>,
    /// workload -> the contender its ratios are against
    pub peers: Vec<(String, String)>,
    pub targets: Vec<Target>,
    /// Contenders not run, and why (e.g. not installed).
    pub skipped: Vec<String>,
    /// A contender that gave a wrong answer, stalled or refused, on a
    /// workload: reported, and the run goes on.
    pub failures: Vec<String>,
    pub notes: Vec<String>,
}

impl Report {
    /// Record one round's value (the row is created on first use).
    pub fn push(
        &mut self,
        workload: &str,
        contender: &str,
        unit: &'static str,
        better: Better,
        value: f64,
    ) {
        let found = self
            .rows
            .iter()
            .position(|r| r.workload == workload && r.contender == contender);
        let at = found.unwrap_or_else(|| {
            self.rows.push(Row {
                workload: workload.into(),
                contender: contender.into(),
                unit,
                better,
                values: Vec::new(),
            });
            self.rows.len() - 1
        });
        self.rows[at].values.push(value);
    }

    /// `contender` failed on `workload` (once per pair is said).
    pub fn fail(&mut self, workload: &str, contender: &str, error: anyhow::Error) {
        let line = format!("{contender}: {workload}: {error:#}");
        if !self
            .failures
            .iter()
            .any(|f| f.starts_with(&format!("{contender}: {workload}:")))
        {
            self.failures.push(line);
        }
    }

    pub fn peer(&mut self, workload: &str, contender: &str) {
        self.peers.push((workload.into(), contender.into()));
    }

    pub fn target(
        &mut self,
        what: &str,
        workload: &str,
        contender: &str,
        against: &str,
        bound: f64,
    ) {
        self.targets.push(Target {
            what: what.into(),
            workload: workload.into(),
            contender: contender.into(),
            against: Some(against.into()),
            bound,
        });
    }

    /// A target on the contender's own median (`% of a core`, `ms`), not a
    /// ratio.
    pub fn limit(&mut self, what: &str, workload: &str, contender: &str, bound: f64) {
        self.targets.push(Target {
            what: what.into(),
            workload: workload.into(),
            contender: contender.into(),
            against: None,
            bound,
        });
    }

    fn row(&self, workload: &str, contender: &str) -> Option<&Row> {
        self.rows
            .iter()
            .find(|r| r.workload == workload && r.contender == contender)
    }

    /// median(contender) / median(against), on one workload.
    fn ratio_of(&self, workload: &str, contender: &str, against: &str) -> Option<f64> {
        let a = self.row(workload, contender)?.median();
        let b = self.row(workload, against)?.median();
        (b != 0.0 && a.is_finite() && b.is_finite()).then(|| a / b)
    }

    fn ratio(&self, row: &Row) -> Option<f64> {
        let (_, peer) = self.peers.iter().find(|(w, _)| *w == row.workload)?;
        self.ratio_of(&row.workload, &row.contender, peer)
    }

    /// (ratio or value, met) of a target; None if either side was not
    /// measured.
    fn check(&self, t: &Target) -> Option<(f64, bool)> {
        let ratio = match &t.against {
            Some(against) => self.ratio_of(&t.workload, &t.contender, against)?,
            None => self.row(&t.workload, &t.contender)?.median(),
        };
        let better = self.row(&t.workload, &t.contender)?.better;
        let met = match better {
            Better::Higher => ratio >= t.bound,
            Better::Lower => ratio <= t.bound,
        };
        Some((ratio, met))
    }

    pub fn text(&self) -> String {
        let mut out = String::new();
        let mut workload = "";
        out += &format!(
            "{:<44} {:>11} {:>21} {:>7}\n",
            "contender", "median", "min - max", "ratio"
        );
        for row in self.grouped() {
            if row.workload != workload {
                workload = &row.workload;
                let peer = self
                    .peers
                    .iter()
                    .find(|(w, _)| w == workload)
                    .map(|(_, p)| format!("  (ratio: against {p})"))
                    .unwrap_or_default();
                out += &format!("\n{workload}, {}{peer}\n", row.unit);
            }
            let (min, max) = row.min_max();
            let ratio = self
                .ratio(row)
                .map_or("-".to_string(), |r| format!("{r:.2}"));
            out += &format!(
                "  {:<42} {:>11} {:>21} {:>7}\n",
                row.contender,
                number(row.median()),
                format!("{} - {}", number(min), number(max)),
                ratio
            );
        }
        if !self.targets.is_empty() {
            out += "\ntargets (ratios of medians, or medians, this run):\n";
            for t in &self.targets {
                let better = self.row(&t.workload, &t.contender).map(|r| r.better);
                let sign = if better == Some(Better::Lower) {
                    "<="
                } else {
                    ">="
                };
                out += &match self.check(t) {
                    Some((ratio, met)) => format!(
                        "  {:<58} {ratio:>6.2} {sign} {:<5} {}\n",
                        t.what,
                        t.bound,
                        if met { "met" } else { "MISSED" }
                    ),
                    None => format!("  {:<58} not measured\n", t.what),
                };
            }
        }
        for s in &self.skipped {
            out += &format!("skipped: {s}\n");
        }
        for f in &self.failures {
            out += &format!("FAILED: {f}\n");
        }
        for n in &self.notes {
            out += &format!("note: {n}\n");
        }
        out
    }

    /// The rows, each workload's together, workloads in first-seen order
    /// (rounds visit contenders in turn, so rows arrive interleaved).
    fn grouped(&self) -> Vec<&Row> {
        let mut order: Vec<&str> = Vec::new();
        for r in &self.rows {
            if !order.contains(&r.workload.as_str()) {
                order.push(&r.workload);
            }
        }
        order
            .iter()
            .flat_map(|w| self.rows.iter().filter(move |r| r.workload == *w))
            .collect()
    }

    pub fn json(&self) -> Value {
        json!({
            "rows": self.grouped().into_iter().map(|r| {
                let (min, max) = r.min_max();
                json!({
                    "workload": r.workload,
                    "contender": r.contender,
                    "unit": r.unit,
                    "better": if r.better == Better::Higher { "higher" } else { "lower" },
                    "median": r.median(),
                    "min": min,
                    "max": max,
                    "values": r.values,
                    "ratio": self.ratio(r),
                })
            }).collect::<Vec<_>>(),
            "peers": self.peers.iter().map(|(w, p)| json!({"workload": w, "peer": p})).collect::<Vec<_>>(),
            "targets": self.targets.iter().map(|t| {
                let checked = self.check(t);
                json!({
                    "what": t.what,
                    "ratio": checked.map(|c| c.0),
                    "bound": t.bound,
                    "met": checked.map(|c| c.1),
                })
            }).collect::<Vec<_>>(),
            "skipped": self.skipped,
            "failures": self.failures,
            "notes": self.notes,
        })
    }
}

/// Three significant digits, no exponent: 13749, 1862, 12.5, 0.42.
fn number(x: f64) -> String {
    if !x.is_finite() {
        return "-".into();
    }
    match x.abs() {
        a if a >= 100.0 => format!("{x:.0}"),
        a if a >= 10.0 => format!("{x:.1}"),
        _ => format!("{x:.2}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_and_targets_follow_the_medians() {
        let mut r = Report::default();
        for v in [10.0, 30.0, 20.0] {
            r.push("w", "peer", "x/s", Better::Higher, v);
        }
        for v in [50.0, 70.0, 60.0] {
            r.push("w", "ours", "x/s", Better::Higher, v);
        }
        r.peer("w", "peer");
        r.target("ours >= 2x peer", "w", "ours", "peer", 2.0);
        r.target("ours >= 4x peer", "w", "ours", "peer", 4.0);
        for v in [0.9, 1.1, 0.8] {
            r.push("cpu", "watch", "%", Better::Lower, v);
        }
        r.limit("watch <= 1%", "cpu", "watch", 1.0);
        r.limit("watch <= 0.5%", "cpu", "watch", 0.5);
        assert_eq!(r.check(&r.targets[0]), Some((3.0, true)));
        assert_eq!(r.check(&r.targets[1]), Some((3.0, false)));
        assert_eq!(r.check(&r.targets[2]), Some((0.9, true)));
        assert_eq!(r.check(&r.targets[3]), Some((0.9, false)));
        let text = r.text();
        assert!(text.contains("MISSED"), "{text}");
        assert!(text.contains("3.00"), "{text}");
    }
}
