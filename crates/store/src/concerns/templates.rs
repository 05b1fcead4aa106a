//! Templates: message templates with every version kept, because journey versions pin the
//! template version they send.

use jiff::Timestamp;
use waymark_core::journey::Channel;
use waymark_core::journey::TemplateDefinition;

use crate::{Result, StoredTemplate, TemplateVersionSummary};

/// Managing templates and their versions from the API.
pub trait Templates {
    fn templates(&self) -> Result<Vec<StoredTemplate>>;

    fn get_template(&self, id: &str) -> Result<StoredTemplate>;

    /// Creates a template or makes a new version of it; true when it was created. A definition
    /// equal to the current version changes nothing.
    fn put_template(&self, def: &TemplateDefinition, now: Timestamp) -> Result<bool>;

    /// A template's versions, newest first, with the journey versions that pin each.
    fn template_versions(&self, id: &str) -> Result<Vec<TemplateVersionSummary>>;

    /// One version of a template, also of a deleted one.
    fn get_template_version(&self, id: &str, version: i64) -> Result<StoredTemplate>;

    fn delete_template(&self, id: &str) -> Result<()>;

    fn template_channel(&self, id: &str) -> Result<Option<Channel>>;
}

/// The template versions the engine renders when it sends.
pub trait TemplatesTx {
    /// The current version of a template.
    fn template(&mut self, id: &str) -> Result<Option<StoredTemplate>>;

    /// One version of a template (kept after the template is changed or deleted).
    fn template_version(&mut self, id: &str, version: i64) -> Result<Option<StoredTemplate>>;
}
