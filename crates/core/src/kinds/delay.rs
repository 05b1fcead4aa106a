//! `delay`: waits for a fixed duration.

use jiff::SignedDuration;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Arrival, Kind, NEXT_ONLY};
use crate::duration::Duration;
use crate::stepper::Run;
use crate::validate::NodeCheck;

pub struct Delay;

impl Kind for Delay {
    type Settings = DelayNode;
    const DESCRIPTION: &'static str = "Waits for a fixed duration (a day is 24 hours).";
    const OUTPUTS: &'static [super::Output] = NEXT_ONLY;
    const EXAMPLE: &'static str = r#"{"duration": "2d"}"#;
    const WAITS: bool = true;

    fn validate(d: &DelayNode, check: &mut NodeCheck<'_>) {
        check.duration(&d.duration, "duration");
    }

    fn arrive(d: &DelayNode, run: &mut Run<'_>) -> Arrival {
        let duration = Duration::parse(&d.duration).expect("validated");
        Arrival::Wait(run.now() + SignedDuration::from_secs(duration.seconds()))
    }

    fn timer(_: &DelayNode, _: &mut Run<'_>) -> Option<Arrival> {
        Some(Arrival::next())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DelayNode {
    /// e.g. `30m`, `2d`, `1w`.
    pub duration: String,
}
