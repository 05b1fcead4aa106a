//! The splits: `random_split` (fixed percentages) and `experiment` (variants and a holdout
//! whose winner, once significant, takes every new entrant). Both choose with a stable hash
//! of journey, node and contact (`crate::timing::choose_branch`), so a retry or re-entry goes
//! the same way.

use std::collections::HashSet;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Arrival, Kind, Output};
use crate::stepper::Run;
use crate::validate::{NodeCheck, valid_id};

/// Most branches a random split may have.
pub const MAX_SPLIT_BRANCHES: usize = 10;

pub struct RandomSplit;

impl Kind for RandomSplit {
    type Settings = RandomSplitNode;
    const DESCRIPTION: &'static str = "Sends each contact down one of its branches by \
        percentage. The choice is a stable hash of journey, node and contact, so a retry or \
        re-entry goes the same way. Outputs: the branch names.";
    const OUTPUTS: &'static [Output] = &[Output::Each {
        from: "branches",
        field: "name",
    }];
    const EXAMPLE: &'static str =
        r#"{"branches": [{"name": "a", "percent": 50}, {"name": "b", "percent": 50}]}"#;

    fn validate(r: &RandomSplitNode, check: &mut NodeCheck<'_>) {
        check_split(&r.branches, check);
    }

    fn arrive(r: &RandomSplitNode, run: &mut Run<'_>) -> Arrival {
        let chosen = crate::timing::choose_branch(
            run.journey().id(),
            run.node(),
            run.contact_id(),
            &r.branches,
        );
        Arrival::Leave(chosen.to_string().into())
    }
}

pub struct Experiment;

impl Kind for Experiment {
    type Settings = ExperimentNode;
    const DESCRIPTION: &'static str = "Splits contacts between variants (and an optional \
        holdout) like `random_split`, counts the journey's goal per variant, and once a variant \
        wins (one-sided two-proportion z-test at `confidence`, every variant with `min_sample` \
        entries) sends every new entrant down the winner. Outputs: the variant names, and \
        `holdout` with a holdout.";
    const OUTPUTS: &'static [Output] = &[
        Output::Each {
            from: "variants",
            field: "name",
        },
        Output::When {
            output: HOLDOUT,
            when: "holdout",
        },
    ];
    const EXAMPLE: &'static str = r#"{"variants": [{"name": "short", "percent": 45}, {"name": "long", "percent": 45}], "holdout": 10}"#;

    fn validate(x: &ExperimentNode, check: &mut NodeCheck<'_>) {
        if x.variants.iter().any(|v| v.name == HOLDOUT) {
            check.err(
                "invalid_split",
                Some("variants"),
                "`holdout` is the holdout group's output; name the variant differently".into(),
            );
        }
        check_split(&x.branches(), check);
        if !(0.5..=0.999).contains(&x.confidence) {
            check.err(
                "invalid_confidence",
                Some("confidence"),
                "must be between 0.5 and 0.999".into(),
            );
        }
        if x.min_sample == 0 {
            check.err(
                "invalid_sample",
                Some("min_sample"),
                "must be at least 1".into(),
            );
        }
        if check.document().goal.is_none() {
            check.err(
                "no_goal",
                None,
                "an experiment needs the journey's `goal` to count conversions".into(),
            );
        }
    }

    fn arrive(x: &ExperimentNode, run: &mut Run<'_>) -> Arrival {
        let winner = run
            .facts()
            .experiment_winner(run.node())
            .filter(|w| x.variants.iter().any(|v| &v.name == w));
        let chosen = match winner {
            Some(w) => w,
            None => crate::timing::choose_branch(
                run.journey().id(),
                run.node(),
                run.contact_id(),
                &x.branches(),
            )
            .to_string(),
        };
        Arrival::Leave(chosen.into())
    }
}

fn check_split(branches: &[SplitBranch], check: &mut NodeCheck<'_>) {
    let n = branches.len();
    if !(2..=MAX_SPLIT_BRANCHES).contains(&n) {
        check.err(
            "invalid_split",
            Some("branches"),
            format!("a split needs 2 to {MAX_SPLIT_BRANCHES} branches, not {n}"),
        );
    }
    let mut names = HashSet::new();
    for (i, b) in branches.iter().enumerate() {
        if !valid_id(&b.name) {
            check.err(
                "invalid_split",
                Some(&format!("branches[{i}].name")),
                "branch names are 1-100 letters, digits, `-` or `_`".into(),
            );
        } else if !names.insert(b.name.as_str()) {
            check.err(
                "invalid_split",
                Some(&format!("branches[{i}].name")),
                format!("two branches are named `{}`", b.name),
            );
        }
        if b.percent > 100 {
            check.err(
                "invalid_split",
                Some(&format!("branches[{i}].percent")),
                "a percent is 0-100".into(),
            );
        }
    }
    let total: u64 = branches.iter().map(|b| u64::from(b.percent)).sum();
    if total != 100 {
        check.err(
            "invalid_split",
            Some("branches"),
            format!("the percents sum to {total}, not 100"),
        );
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RandomSplitNode {
    /// 2 to 10 branches with unique names; the percents sum to 100.
    pub branches: Vec<SplitBranch>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SplitBranch {
    /// The output an edge leaves this branch from.
    pub name: String,
    /// Share of contacts, 0-100.
    pub percent: u32,
}

/// The output of an experiment's holdout group.
pub const HOLDOUT: &str = "holdout";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExperimentNode {
    /// 2 to 10 variants; their percents and the holdout's sum to 100.
    pub variants: Vec<SplitBranch>,
    /// Percent of contacts held out (output `holdout`): they get none of the variants and
    /// measure the lift; they do not compete.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub holdout: u32,
    /// Entries every variant needs before a winner can be declared (default 100).
    #[serde(default = "default_min_sample")]
    pub min_sample: u64,
    /// Confidence of the test, between 0.5 and 0.999 (default 0.95).
    #[serde(default = "default_confidence")]
    pub confidence: f64,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn default_min_sample() -> u64 {
    100
}

fn default_confidence() -> f64 {
    0.95
}

impl ExperimentNode {
    /// The variants and, with a holdout, the holdout group, as split branches.
    pub fn branches(&self) -> Vec<SplitBranch> {
        let mut all = self.variants.clone();
        if self.holdout > 0 {
            all.push(SplitBranch {
                name: HOLDOUT.into(),
                percent: self.holdout,
            });
        }
        all
    }
}
