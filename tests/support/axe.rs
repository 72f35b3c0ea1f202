//! Accessibility audits of the real window with axe-core (npm `axe-core`, installed with the
//! browser peer's packages in `tests/browser`): the library is injected into the page over
//! WebDriver and run on what is on screen; a `serious` or `critical` violation fails the test.
//!
//! axe runs asynchronously and, in the app's WebKit (JavaScriptCore without its JIT, to save
//! memory), takes seconds: so the page keeps the result in a global and the test polls for it,
//! instead of holding one WebDriver request open for the whole run.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::webdriver::Session;

/// How long one audit may take.
pub const AUDIT_TIMEOUT: Duration = Duration::from_secs(120);

/// Impacts that fail a test (axe's scale: minor, moderate, serious, critical).
pub const FAILING_IMPACTS: [&str; 2] = ["serious", "critical"];

/// `tests/browser/node_modules/axe-core/axe.min.js`.
pub fn axe_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser/node_modules/axe-core/axe.min.js")
}

/// The axe-core source, or an error saying how to install it.
pub fn axe_source() -> Result<String> {
    let path = axe_path();
    std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {} (run `npm ci` in tests/browser; ./task test does)",
            path.display()
        )
    })
}

/// One rule axe found broken, with where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub id: String,
    pub impact: String,
    pub help: String,
    /// Each offending element: its CSS path and what axe says is wrong with it.
    pub nodes: Vec<(String, String)>,
}

/// What one audit found.
#[derive(Debug, Clone, Default)]
pub struct Audit {
    pub screen: String,
    pub violations: Vec<Violation>,
    /// Rules that passed, to show the audit really ran.
    pub passes: usize,
}

impl Audit {
    /// The violations that fail a test.
    pub fn failing(&self) -> Vec<&Violation> {
        self.violations
            .iter()
            .filter(|v| FAILING_IMPACTS.contains(&v.impact.as_str()))
            .collect()
    }

    /// Ok when nothing `serious` or `critical` was found; else an error listing it all.
    pub fn ensure_passed(&self) -> Result<()> {
        let failing = self.failing();
        if failing.is_empty() {
            return Ok(());
        }
        bail!(
            "accessibility audit of the {} screen: {} serious or critical violation(s):\n{}",
            self.screen,
            failing.len(),
            describe(&failing)
        )
    }

    /// One line for the test's output: what ran and what it found.
    pub fn summary(&self) -> String {
        let mut by_impact: Vec<String> = Vec::new();
        for impact in ["critical", "serious", "moderate", "minor"] {
            let n = self
                .violations
                .iter()
                .filter(|v| v.impact == impact)
                .count();
            if n > 0 {
                by_impact.push(format!("{n} {impact}"));
            }
        }
        let found = if by_impact.is_empty() {
            "no violations".to_owned()
        } else {
            let ids: Vec<&str> = self.violations.iter().map(|v| v.id.as_str()).collect();
            format!("{} ({})", by_impact.join(", "), ids.join(", "))
        };
        format!(
            "axe on the {} screen: {} rules passed, {found}",
            self.screen, self.passes
        )
    }
}

fn describe(violations: &[&Violation]) -> String {
    let mut out = String::new();
    for v in violations {
        out.push_str(&format!("- {} ({}): {}\n", v.id, v.impact, v.help));
        for (target, summary) in &v.nodes {
            let summary = summary.replace('\n', " ");
            out.push_str(&format!("    {target}: {summary}\n"));
        }
    }
    out
}

/// Reads the reduced result the page keeps (`{violations: [{id, impact, help, nodes:
/// [{target, summary}]}], passes}`); anything missing is read as empty rather than guessed.
pub fn parse_results(screen: &str, value: &Value) -> Audit {
    let violations = value["violations"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|v| Violation {
                    id: v["id"].as_str().unwrap_or("?").to_owned(),
                    // axe leaves impact null only for rules that passed; treat unknown as failing.
                    impact: v["impact"].as_str().unwrap_or("critical").to_owned(),
                    help: v["help"].as_str().unwrap_or_default().to_owned(),
                    nodes: v["nodes"]
                        .as_array()
                        .map(|nodes| {
                            nodes
                                .iter()
                                .map(|n| {
                                    (
                                        n["target"].as_str().unwrap_or("?").to_owned(),
                                        n["summary"].as_str().unwrap_or_default().to_owned(),
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    Audit {
        screen: screen.to_owned(),
        violations,
        passes: value["passes"].as_u64().unwrap_or(0) as usize,
    }
}

/// Injects axe-core (once per page) and audits the whole document as it is now.
pub fn audit(session: &Session, screen: &str) -> Result<Audit> {
    let loaded = session.execute("return typeof window.axe === 'object';", vec![])?;
    if loaded != json!(true) {
        // The page's CSP allows only its own scripts; a WebDriver script is not subject to
        // it, so the library is evaluated as part of one (axe's UMD wrapper sets window.axe).
        let source = axe_source()?;
        session.execute(&format!("{source}\n;return typeof window.axe;"), vec![])?;
    }
    session.execute(
        "window.__lyrebirdAxe = null;\
         const keep = (r) => ({\
           passes: r.passes.length,\
           violations: r.violations.map(v => ({\
             id: v.id, impact: v.impact, help: v.help,\
             nodes: v.nodes.slice(0, 8).map(n => ({\
               target: n.target.join(' '), summary: n.failureSummary || ''\
             }))\
           }))\
         });\
         axe.run(document, { resultTypes: ['violations'] })\
           .then(r => { window.__lyrebirdAxe = keep(r); })\
           .catch(e => { window.__lyrebirdAxe = { error: String(e) }; });\
         return true;",
        vec![],
    )?;
    let value = session.wait_for(
        &format!("axe's audit of the {screen} screen"),
        AUDIT_TIMEOUT,
        |s| {
            let value = s.execute("return window.__lyrebirdAxe;", vec![])?;
            Ok((!value.is_null()).then_some(value))
        },
    )?;
    if let Some(error) = value["error"].as_str() {
        bail!("axe failed on the {screen} screen: {error}");
    }
    Ok(parse_results(screen, &value))
}

/// The audits of one test run: each screen is audited as the test reaches it, and the test
/// fails at its end with every screen's violations at once (fixing one screen at a time, a
/// run per screen, is slow on two cores).
#[derive(Debug, Default)]
pub struct Audits {
    done: Vec<Audit>,
}

impl Audits {
    /// Audits what is on screen now as `screen`, and prints what it found.
    pub fn run(&mut self, session: &Session, screen: &str) -> Result<()> {
        let audit = audit(session, screen)?;
        println!("{}", audit.summary());
        self.done.push(audit);
        Ok(())
    }

    /// The screens audited so far, in order.
    pub fn screens(&self) -> Vec<&str> {
        self.done.iter().map(|a| a.screen.as_str()).collect()
    }

    /// Ok when no screen had a serious or critical violation; else all of them.
    pub fn ensure_passed(&self) -> Result<()> {
        let errors: Vec<String> = self
            .done
            .iter()
            .filter_map(|a| a.ensure_passed().err().map(|e| format!("{e}")))
            .collect();
        if errors.is_empty() {
            return Ok(());
        }
        bail!("{}", errors.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_serious_and_critical_violations_fail() {
        let value = json!({
            "passes": 31,
            "violations": [
                {"id": "region", "impact": "moderate", "help": "All page content should be contained by landmarks",
                 "nodes": [{"target": "div.toast", "summary": "Fix any of the following"}]},
                {"id": "color-contrast", "impact": "serious", "help": "Elements must meet minimum color contrast ratio thresholds",
                 "nodes": [{"target": "button.ok", "summary": "Fix any of the following:\n  Element has insufficient color contrast of 4.38"}]}
            ]
        });
        let audit = parse_results("in-call", &value);
        assert_eq!(audit.passes, 31);
        assert_eq!(audit.violations.len(), 2);
        assert_eq!(
            audit
                .failing()
                .iter()
                .map(|v| v.id.as_str())
                .collect::<Vec<_>>(),
            ["color-contrast"]
        );
        let error = audit
            .ensure_passed()
            .expect_err("a serious violation fails");
        let text = format!("{error}");
        assert!(text.contains("in-call screen"), "{text}");
        assert!(
            text.contains("button.ok: Fix any of the following:   Element has insufficient"),
            "{text}"
        );
        assert_eq!(
            audit.summary(),
            "axe on the in-call screen: 31 rules passed, 1 serious, 1 moderate (region, color-contrast)"
        );
    }

    #[test]
    fn a_clean_audit_passes_and_an_unknown_impact_fails() {
        let clean = parse_results("contacts", &json!({"passes": 40, "violations": []}));
        assert!(clean.ensure_passed().is_ok());
        assert_eq!(
            clean.summary(),
            "axe on the contacts screen: 40 rules passed, no violations"
        );
        let odd = parse_results("chat", &json!({"violations": [{"id": "x", "nodes": []}]}));
        assert!(odd.ensure_passed().is_err());
    }
}
