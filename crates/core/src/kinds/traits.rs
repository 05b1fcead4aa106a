//! The kinds that change contact traits: `update_traits` (set and increment) and `score`
//! (points on a lead score trait, optionally taken back later). Later nodes of the same step
//! see the changed traits.

use std::collections::BTreeMap;

use jiff::SignedDuration;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Arrival, Kind, NEXT_ONLY, Output};
use crate::duration::Duration;
use crate::stepper::{Effect, Run};
use crate::validate::NodeCheck;

pub struct UpdateTraits;

impl Kind for UpdateTraits {
    type Settings = UpdateTraitsNode;
    const DESCRIPTION: &'static str = "Sets contact traits (values may not be templates).";
    const OUTPUTS: &'static [Output] = NEXT_ONLY;
    const EXAMPLE: &'static str = r#"{"set": {"onboarded": true}, "increment": {"visits": 1}}"#;

    fn validate(u: &UpdateTraitsNode, check: &mut NodeCheck<'_>) {
        if u.set.is_empty() && u.increment.is_empty() {
            check.err(
                "required",
                Some("set"),
                "must set or increment at least one trait".into(),
            );
        }
        for k in u.increment.keys() {
            if u.set.contains_key(k) {
                check.err(
                    "conflicting_update",
                    Some(&format!("increment.{k}")),
                    format!("trait `{k}` is both set and incremented"),
                );
            }
        }
    }

    fn arrive(u: &UpdateTraitsNode, run: &mut Run<'_>) -> Arrival {
        let increments = u.increment.iter().map(|(k, by)| (k.as_str(), by));
        run.apply_trait_changes(&u.set, increments);
        Arrival::next()
    }
}

pub struct Score;

impl Kind for Score {
    type Settings = ScoreNode;
    const DESCRIPTION: &'static str = "Adds points (negative: removes) to a lead score trait.";
    const OUTPUTS: &'static [Output] = NEXT_ONLY;
    const EXAMPLE: &'static str = r#"{"points": 10, "expires_after": "30d"}"#;

    fn validate(s: &ScoreNode, check: &mut NodeCheck<'_>) {
        if s.points == 0 {
            check.err("invalid_points", Some("points"), "must not be 0".into());
        }
        if let Some(after) = &s.expires_after {
            check.duration(after, "expires_after");
        }
        if s.score_trait
            .as_deref()
            .is_some_and(|t| t.trim().is_empty())
        {
            check.err("required", Some("trait"), "must not be empty".into());
        }
    }

    fn arrive(s: &ScoreNode, run: &mut Run<'_>) -> Arrival {
        let by = serde_json::Number::from(s.points);
        run.apply_trait_changes(&Default::default(), [(s.trait_name(), &by)]);
        if let Some(after) = s.expires_after.as_deref() {
            let after = Duration::parse(after).expect("validated");
            let at = run.now() + SignedDuration::from_secs(after.seconds());
            run.effect(Effect::ExpireScore {
                score_trait: s.trait_name().to_string(),
                points: s.points,
                at,
            });
        }
        Arrival::next()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTraitsNode {
    /// Traits to set; `null` removes a trait.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub set: serde_json::Map<String, Value>,
    /// Numbers to add to numeric traits (a missing or non-numeric trait counts as 0), e.g.
    /// `{score: 10}`; negative numbers subtract.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub increment: BTreeMap<String, serde_json::Number>,
}

/// The trait a `score` node changes unless it names another.
pub const DEFAULT_SCORE_TRAIT: &str = "lead_score";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScoreNode {
    /// Points to add; negative to remove.
    pub points: i64,
    /// The score trait, default `lead_score`.
    #[serde(default, rename = "trait", skip_serializing_if = "Option::is_none")]
    pub score_trait: Option<String>,
    /// Score decay: these points are taken back this long after they were given (e.g. `30d`),
    /// so an old burst of interest fades.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_after: Option<String>,
}

impl ScoreNode {
    pub fn trait_name(&self) -> &str {
        self.score_trait.as_deref().unwrap_or(DEFAULT_SCORE_TRAIT)
    }
}
