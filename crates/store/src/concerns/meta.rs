//! Meta: small installation-wide key-value settings (the processed mark, the installation id).

use crate::Result;

/// Reading and writing installation-wide settings.
pub trait Meta {
    fn meta(&self, key: &str) -> Result<Option<String>>;

    fn set_meta(&self, key: &str, value: &str) -> Result<()>;
}

/// Reading and writing installation-wide settings inside an engine transaction.
pub trait MetaTx {
    fn meta(&mut self, key: &str) -> Result<Option<String>>;

    fn set_meta(&mut self, key: &str, value: &str) -> Result<()>;
}
