//! `enroll_in_journey`: asks to enroll the contact in another journey through its `api`
//! trigger, with this enrollment's trigger properties as the payload.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Arrival, Kind, NEXT_ONLY, Output};
use crate::stepper::{Effect, Run};
use crate::validate::{NodeCheck, valid_id};

pub struct EnrollInJourney;

impl Kind for EnrollInJourney {
    type Settings = EnrollNode;
    const DESCRIPTION: &'static str = "Enrolls the contact in another journey, which must have \
        an `api` trigger; the trigger event's properties go along as the entry payload.";
    const OUTPUTS: &'static [Output] = NEXT_ONLY;
    const EXAMPLE: &'static str = r#"{"journey": "onboarding"}"#;

    fn validate(e: &EnrollNode, check: &mut NodeCheck<'_>) {
        if !valid_id(&e.journey) {
            check.err(
                "invalid_id",
                Some("journey"),
                format!("`{}` is not a journey id", e.journey),
            );
        } else if e.journey == check.document().id {
            check.err(
                "self_enrollment",
                Some("journey"),
                "a journey cannot enroll contacts in itself; use a jump".into(),
            );
        }
    }

    fn arrive(e: &EnrollNode, run: &mut Run<'_>) -> Arrival {
        let effect = Effect::Enroll {
            journey: e.journey.clone(),
            idempotency_key: run.effect_key(),
        };
        run.effect(effect);
        Arrival::next()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollNode {
    /// The id of the journey to enroll the contact in.
    pub journey: String,
}
