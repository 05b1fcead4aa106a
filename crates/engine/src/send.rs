//! The send gate: the one place where a message is decided and written to the outbox.
//!
//! Every outbox row is written here, in the caller's transaction: journey emails and SMS,
//! journey webhooks, broadcasts, double opt-in confirmations and operators' test sends. What a
//! message must pass depends on its [`Purpose`]:
//!
//! | check                                   | journey | broadcast | requested | test |
//! | --------------------------------------- | ------- | --------- | --------- | ---- |
//! | the contact has an address (or `to`)    | yes     | yes       | yes       | yes  |
//! | the address is not suppressed (bounces, complaints, STOP) | yes | yes | yes | yes |
//! | consent to the template's topic (marketing templates, see `consent`) | yes | yes | no | no |
//! | frequency caps (marketing templates, see `caps`) | yes | yes² | no | no |
//! | unsubscribe link (`unsubscribe_url`)    | marketing | marketing | no    | no   |
//! | open and click tracking                 | yes¹    | yes¹      | no        | no   |
//!
//! ¹ when a public URL is configured and the template allows it. ² unless the broadcast says
//! it ignores them (recorded on the broadcast).
//!
//! Quiet hours and blocked dates are a matter of *when*, decided before a message reaches the
//! gate: a journey's send node waits for the window to open (`waymark_core::timing`, applied
//! by the stepper, so that goals and exits still apply while it waits), and a broadcast keeps
//! a recipient waiting until then (`waymark_core::broadcast`). Requested and test messages are
//! sent at once, whatever the hour.
//!
//! A message refused by a check is written `suppressed` with the reason, and one that cannot
//! be rendered `failed` with the error: never dropped, so the step log, the counts and the
//! message list show what happened.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use serde_json::{Map, Value, json};
use waymark_core::journey::{Channel, TemplateDefinition, WebhookNode};
use waymark_core::{Enrollment, Journey};
use waymark_render::{CompiledTemplate, Rendered};
use waymark_store::{
    Contact, EngineTx, MessageStatus, NewMessage, Priority, StoreError, StoredTemplate,
};

use crate::caps::FrequencyCap;
use crate::tracking::{Tracking, track_html};
use crate::{consent, enrollment_events, recommendations, webhook};

/// How many compiled template versions the gate keeps.
const MAX_CACHED_TEMPLATES: usize = 1000;

/// Why a message is sent, which decides the checks it must pass (see the module docs).
#[derive(Clone, Copy)]
pub enum Purpose<'a> {
    /// A journey's email or SMS node.
    Journey(JourneyNode<'a>),
    /// A broadcast's message to one of its recipients.
    Broadcast(BroadcastSend<'a>),
    /// A message the contact asked for by their own action, such as the double opt-in
    /// confirmation of a subscribe form: it needs no consent and is never capped.
    Requested,
    /// An operator's test of a template, to an address given with the request.
    Test,
}

impl Purpose<'_> {
    /// Marks `message` as sent by its journey node or broadcast, at that priority.
    fn stamp(&self, message: &mut NewMessage) {
        match self {
            Purpose::Journey(at) => at.stamp(message),
            Purpose::Broadcast(b) => b.stamp(message),
            Purpose::Requested | Purpose::Test => {}
        }
    }
}

/// A node of a journey that an enrollment is at.
#[derive(Clone, Copy)]
pub struct JourneyNode<'a> {
    pub journey: &'a Journey,
    pub enrollment: &'a Enrollment,
    pub node: &'a str,
    /// The last accepted event the step saw: `enrollment.events` lists the events up to it.
    pub upto_seq: i64,
}

impl JourneyNode<'_> {
    /// Marks `message` as sent by this node of this enrollment.
    fn stamp(&self, message: &mut NewMessage) {
        message.enrollment_id = Some(self.enrollment.id);
        message.journey_id = Some(self.journey.id().to_string());
        message.node = Some(self.node.to_string());
        message.priority = Priority::Journey;
    }
}

/// A broadcast, as its messages need it.
#[derive(Clone, Copy)]
pub struct BroadcastSend<'a> {
    pub id: &'a str,
    pub name: &'a str,
    /// The template version pinned when the broadcast started.
    pub template_version: Option<i64>,
    pub ignore_frequency_caps: bool,
}

impl BroadcastSend<'_> {
    /// Marks `message` as this broadcast's: bulk, behind transactional and journey messages.
    fn stamp(&self, message: &mut NewMessage) {
        message.broadcast_id = Some(self.id.to_string());
        message.priority = Priority::Bulk;
    }
}

/// A queued outbox row with nothing decided yet: no journey, no content, and the priority of
/// a message someone waits for (a journey's [`JourneyNode::stamp`] lowers it).
fn queued_row(idempotency_key: &str, contact_id: i64, channel: &str, now: Timestamp) -> NewMessage {
    NewMessage {
        idempotency_key: idempotency_key.to_string(),
        contact_id,
        enrollment_id: None,
        journey_id: None,
        node: None,
        template: String::new(),
        channel: channel.to_string(),
        recipient: None,
        subject: None,
        html: None,
        text: None,
        status: MessageStatus::Queued,
        error: None,
        created_at: now,
        priority: Priority::Transactional,
        broadcast_id: None,
        unsubscribe_url: None,
    }
}

/// The template a message is rendered from.
#[derive(Clone, Copy)]
pub enum TemplateSource<'a> {
    /// A stored template, by id.
    Stored(&'a str),
    /// A template built into Waymark (used when no stored template of that id exists).
    Builtin(&'a TemplateDefinition),
}

/// A message to decide and write.
pub struct Outgoing<'a> {
    /// Unique in the outbox: a second message with the same key is not written.
    pub idempotency_key: String,
    /// The contact it is for; 0 for a test send that names none.
    pub contact_id: i64,
    pub channel: Channel,
    pub template: TemplateSource<'a>,
    pub purpose: Purpose<'a>,
    /// The address, when it is not the contact's own (a test send).
    pub to: Option<String>,
    /// What the template sees. `None` for journey sends: the gate builds `contact`, `event`
    /// (the trigger), `journey` and, when the template uses them, `recommendations`.
    pub data: Option<Map<String, Value>>,
}

/// What the gate did with a message.
#[derive(Debug, Clone)]
pub struct Decision {
    /// `queued`, or `suppressed` / `failed` with `error`.
    pub status: MessageStatus,
    pub error: Option<String>,
    /// What was rendered, when it was (as queued: links rewritten for tracking).
    pub rendered: Option<Rendered>,
    /// Whether a new row was written (false when the idempotency key was already there).
    pub written: bool,
}

impl Decision {
    fn of(message: NewMessage, rendered: Option<Rendered>, written: bool) -> Self {
        Decision {
            status: message.status,
            error: message.error,
            rendered,
            written,
        }
    }

    /// Whether a new message now waits in the outbox for delivery.
    pub fn queued(&self) -> bool {
        self.written && self.status == MessageStatus::Queued
    }
}

/// The send gate, configured once per engine: tracking, frequency caps and the cache of
/// compiled templates.
pub struct SendGate {
    tracking: Option<Tracking>,
    caps: Vec<FrequencyCap>,
    /// Compiled stored templates, by id and version.
    templates: Mutex<HashMap<(String, i64), Arc<CompiledTemplate>>>,
    /// Stored template versions as read, by id and version: a version never changes, and a
    /// journey's sends read the one it pinned again and again (a round trip each on a database
    /// server).
    versions: Mutex<HashMap<(String, i64), StoredTemplate>>,
}

impl SendGate {
    pub fn new(tracking: Option<Tracking>, caps: Vec<FrequencyCap>) -> Self {
        SendGate {
            tracking,
            caps,
            templates: Mutex::new(HashMap::new()),
            versions: Mutex::new(HashMap::new()),
        }
    }

    /// Rewrites the links of journey email for open and click tracking.
    pub fn set_tracking(&mut self, tracking: Option<Tracking>) {
        self.tracking = tracking;
    }

    /// Holds back marketing messages over these caps (recorded `suppressed`).
    pub fn set_caps(&mut self, caps: Vec<FrequencyCap>) {
        self.caps = caps;
    }

    /// Decides `outgoing`, renders it and writes its outbox row, in `tx`.
    pub fn send(
        &self,
        tx: &mut dyn EngineTx,
        outgoing: Outgoing<'_>,
        now: Timestamp,
    ) -> Result<Decision, StoreError> {
        let (message, rendered) = self.decide(tx, &outgoing, now)?;
        let written = tx.insert_message(&message)?;
        Ok(Decision::of(message, rendered, written))
    }

    /// Writes `outgoing` as `suppressed` with `reason` without looking further (a broadcast's
    /// recipient whose time never comes).
    pub fn suppress(
        &self,
        tx: &mut dyn EngineTx,
        outgoing: Outgoing<'_>,
        reason: String,
        now: Timestamp,
    ) -> Result<Decision, StoreError> {
        let mut message = queued_row(
            &outgoing.idempotency_key,
            outgoing.contact_id,
            outgoing.channel.as_str(),
            now,
        );
        if let TemplateSource::Stored(id) = outgoing.template {
            message.template = id.to_string();
        }
        outgoing.purpose.stamp(&mut message);
        message.status = MessageStatus::Suppressed;
        message.error = Some(reason);
        let written = tx.insert_message(&message)?;
        Ok(Decision::of(message, None, written))
    }

    /// Renders a journey's `webhook` node's body and writes its outbox row (channel `webhook`;
    /// see `waymark_channels::webhook`). Webhooks go to a system, not a person: no consent,
    /// suppression or caps apply.
    pub fn send_webhook(
        &self,
        tx: &mut dyn EngineTx,
        at: JourneyNode<'_>,
        settings: &WebhookNode,
        idempotency_key: &str,
        now: Timestamp,
    ) -> Result<Decision, StoreError> {
        let contact = tx.contact(at.enrollment.contact_id)?;
        let data = journey_data(tx, at.journey, at.enrollment, &contact)?;
        let mut row = queued_row(idempotency_key, contact.id, webhook::CHANNEL, now);
        at.stamp(&mut row);
        let message = webhook::outbox_message(settings, &data, row);
        let written = tx.insert_message(&message)?;
        Ok(Decision::of(message, None, written))
    }

    /// The outbox row of `outgoing` (with its unsubscribe link when queued) and what was
    /// rendered, after every check its purpose requires.
    fn decide(
        &self,
        tx: &mut dyn EngineTx,
        outgoing: &Outgoing<'_>,
        now: Timestamp,
    ) -> Result<(NewMessage, Option<Rendered>), StoreError> {
        let channel = outgoing.channel;
        let contact = if outgoing.contact_id == 0 {
            None
        } else {
            Some(tx.contact(outgoing.contact_id)?)
        };
        let recipient = outgoing.to.clone().or_else(|| {
            contact.as_ref().and_then(|c| match channel {
                Channel::Email => c.email.clone(),
                Channel::Sms => c.phone.clone(),
            })
        });
        // A journey sends the template version it pinned when it was published.
        let pinned = match (outgoing.template, outgoing.purpose) {
            (TemplateSource::Stored(id), Purpose::Journey(at)) => at.journey.template_version(id),
            (TemplateSource::Stored(_), Purpose::Broadcast(b)) => b.template_version,
            _ => None,
        };
        let stored = match (outgoing.template, pinned) {
            (TemplateSource::Stored(id), Some(version)) => {
                self.template_version(tx, id, version)?
            }
            (TemplateSource::Stored(id), None) => tx.template(id)?,
            (TemplateSource::Builtin(_), _) => None,
        };
        let template_id = match outgoing.template {
            TemplateSource::Stored(id) => id,
            TemplateSource::Builtin(d) => d.id.as_str(),
        };
        let mut message = queued_row(
            &outgoing.idempotency_key,
            outgoing.contact_id,
            channel.as_str(),
            now,
        );
        message.template = template_id.to_string();
        message.recipient = recipient.clone();
        outgoing.purpose.stamp(&mut message);
        let suppress = |mut message: NewMessage, reason: String| {
            message.status = MessageStatus::Suppressed;
            message.error = Some(reason);
            Ok((message, None))
        };

        // Who: an address, not on the suppression list.
        let Some(address) = &recipient else {
            let reason = match channel {
                Channel::Email => "the contact has no email address",
                Channel::Sms => "the contact has no phone number",
            };
            return suppress(message, reason.into());
        };
        if let Some(reason) = tx.suppression(channel.as_str(), address)? {
            return suppress(message, format!("address suppressed: {reason}"));
        }

        // Which template.
        let definition = match (outgoing.template, &stored) {
            (TemplateSource::Builtin(d), _) => d,
            (TemplateSource::Stored(_), Some(stored)) => &stored.definition,
            (TemplateSource::Stored(id), None) => {
                message.status = MessageStatus::Failed;
                message.error = Some(match pinned {
                    Some(v) => format!("version {v} of template `{id}` does not exist"),
                    None => format!("template `{id}` does not exist"),
                });
                return Ok((message, None));
            }
        };

        // Consent and caps: marketing messages of journeys and broadcasts (see `consent` and
        // `caps`).
        let marketing = matches!(
            outgoing.purpose,
            Purpose::Journey(_) | Purpose::Broadcast(_)
        );
        let capped = !matches!(
            outgoing.purpose,
            Purpose::Broadcast(BroadcastSend {
                ignore_frequency_caps: true,
                ..
            })
        );
        let topic = consent::topic_of(definition).filter(|_| marketing);
        if let (Some(topic), Some(contact)) = (&topic, &contact) {
            if let Some(reason) = consent::refusal(tx, contact, channel, topic)? {
                return suppress(message, reason);
            }
            if capped
                && let Some(cap) = crate::caps::exceeded(&self.caps, tx, contact.id, channel, now)?
            {
                return suppress(message, format!("frequency cap reached ({cap})"));
            }
        }
        let unsubscribe_url = match (&topic, &self.tracking) {
            (Some(topic), Some(tracking)) => Some(consent::unsubscribe_url(
                tracking,
                outgoing.contact_id,
                channel.as_str(),
                topic,
                &outgoing.idempotency_key,
            )),
            _ => None,
        };

        // How, and what the template sees.
        let template = match self.compiled(definition, stored.as_ref().map(|s| s.version)) {
            Ok(t) => t,
            Err(error) => {
                message.status = MessageStatus::Failed;
                message.error = Some(error);
                return Ok((message, None));
            }
        };
        let mut data = match (&outgoing.data, outgoing.purpose, &contact) {
            (Some(data), _, _) => data.clone(),
            (
                None,
                Purpose::Journey(JourneyNode {
                    journey,
                    enrollment,
                    upto_seq,
                    ..
                }),
                Some(contact),
            ) => {
                let mut data = journey_data(tx, journey, enrollment, contact)?;
                if enrollment_events::uses(definition) {
                    let events = enrollment_events::of(tx, journey, enrollment, upto_seq)?;
                    data["enrollment"]["events"] = Value::Array(events);
                }
                if recommendations::uses_recommendations(definition) {
                    let list =
                        recommendations::for_contact(tx, contact.id, recommendations::LIST_LENGTH)?;
                    data.insert(recommendations::VARIABLE.into(), Value::Array(list));
                }
                data
            }
            (None, Purpose::Broadcast(b), Some(contact)) => {
                let mut data = Map::new();
                data.insert("contact".into(), Value::Object(contact_data(contact)));
                data.insert("broadcast".into(), json!({ "id": b.id, "name": b.name }));
                if recommendations::uses_recommendations(definition) {
                    let list =
                        recommendations::for_contact(tx, contact.id, recommendations::LIST_LENGTH)?;
                    data.insert(recommendations::VARIABLE.into(), Value::Array(list));
                }
                data
            }
            (None, _, contact) => {
                let mut data = Map::new();
                if let Some(contact) = contact {
                    data.insert("contact".into(), Value::Object(contact_data(contact)));
                }
                data
            }
        };
        if let Some(url) = &unsubscribe_url {
            data.insert("unsubscribe_url".into(), json!(url));
        }

        match template.render(&data) {
            Ok(rendered) => {
                let tracked = marketing && template.tracking;
                message.subject = rendered.subject;
                message.html = track_html(
                    self.tracking.as_ref(),
                    tracked,
                    &outgoing.idempotency_key,
                    rendered.html,
                );
                message.text = rendered.text;
            }
            Err(error) => {
                message.status = MessageStatus::Failed;
                message.error = Some(format!("rendering failed: {error}"));
                return Ok((message, None));
            }
        }
        let rendered = Rendered {
            subject: message.subject.clone(),
            html: message.html.clone(),
            text: message.text.clone(),
        };
        message.unsubscribe_url = unsubscribe_url;
        Ok((message, Some(rendered)))
    }

    /// Version `version` of stored template `id`, read once (a missing one is read again).
    fn template_version(
        &self,
        tx: &mut dyn EngineTx,
        id: &str,
        version: i64,
    ) -> Result<Option<StoredTemplate>, StoreError> {
        let key = (id.to_string(), version);
        let cached = self
            .versions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&key)
            .cloned();
        if cached.is_some() {
            return Ok(cached);
        }
        let stored = tx.template_version(id, version)?;
        if let Some(template) = &stored {
            let mut cache = self
                .versions
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if cache.len() >= MAX_CACHED_TEMPLATES {
                cache.clear();
            }
            cache.insert(key, template.clone());
        }
        Ok(stored)
    }

    /// `definition` compiled; a stored template (its `version` given) is compiled once per
    /// version, since versions never change.
    fn compiled(
        &self,
        definition: &TemplateDefinition,
        version: Option<i64>,
    ) -> Result<Arc<CompiledTemplate>, String> {
        let key = version.map(|v| (definition.id.clone(), v));
        if let Some(key) = &key
            && let Some(t) = self
                .templates
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .get(key)
        {
            return Ok(t.clone());
        }
        let compiled = waymark_render::compile(definition).map_err(|errors| {
            errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        })?;
        let compiled = Arc::new(compiled);
        if let Some(key) = key {
            let mut cache = self
                .templates
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            // Every edit adds a version: start afresh rather than keep old ones for ever.
            if cache.len() >= MAX_CACHED_TEMPLATES {
                cache.clear();
            }
            cache.insert(key, compiled.clone());
        }
        Ok(compiled)
    }
}

/// What a template sees of a contact: its traits, `id`, `user_id`, `email` and `phone`.
pub fn contact_data(contact: &Contact) -> Map<String, Value> {
    let mut data = contact.traits.clone();
    data.insert("id".into(), json!(contact.id));
    data.insert("user_id".into(), json!(contact.user_id));
    data.insert("email".into(), json!(contact.email));
    data.insert("phone".into(), json!(contact.phone));
    data
}

/// What a journey's templates and webhook bodies see: `contact`, `event` (the trigger, with
/// its `name`) and `journey` (`id`, `name`).
fn journey_data(
    tx: &mut dyn EngineTx,
    journey: &Journey,
    enrollment: &Enrollment,
    contact: &Contact,
) -> Result<Map<String, Value>, StoreError> {
    let trigger = tx.event(enrollment.entered_seq)?;
    let mut event = Map::new();
    if let Some(t) = trigger {
        event = t.event.properties;
        event.insert("name".into(), json!(t.event.name));
    }
    let mut data = Map::new();
    data.insert("contact".into(), Value::Object(contact_data(contact)));
    data.insert("event".into(), Value::Object(event));
    data.insert(
        "journey".into(),
        json!({ "id": journey.id(), "name": journey.document.name }),
    );
    data.insert(
        "enrollment".into(),
        json!({
            "id": enrollment.id,
            "key": enrollment.key,
            "entered_at": enrollment.entered_at.to_string(),
            "events": [],
        }),
    );
    Ok(data)
}
