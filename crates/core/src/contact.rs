//! Contact attributes that are parsed at the edge: an email address, an E.164 phone number and
//! an IANA time zone. Holding one of these types means the value is valid.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

/// The time zone named by a contact's `timezone` trait, when it is one Waymark knows; callers
/// fall back to the node's, the journey's or UTC.
pub fn trait_time_zone(
    traits: &serde_json::Map<String, serde_json::Value>,
) -> Option<jiff::tz::TimeZone> {
    traits
        .get("timezone")
        .and_then(serde_json::Value::as_str)
        .and_then(|t| jiff::tz::TimeZone::get(t).ok())
}

/// A syntactically valid email address (`local@domain`, no spaces, a dot in the domain),
/// lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let s = raw.trim();
        let err = || ParseError(format!("`{raw}` is not a valid email address"));
        if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(err());
        }
        let (local, domain) = s.rsplit_once('@').ok_or_else(err)?;
        if local.is_empty() || local.len() > 64 || local.contains('@') && !local.starts_with('"') {
            return Err(err());
        }
        let labels_ok = domain.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
        if !domain.contains('.') || !labels_ok {
            return Err(err());
        }
        // Lower-cased whole: mailbox providers treat local parts case-insensitively, and one
        // person must not become two contacts (or two suppression entries) by capitalisation.
        Ok(Email(s.to_lowercase()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A phone number in E.164 form: `+`, a country code that does not start with 0, at most 15
/// digits. Spaces, dashes, dots and parentheses are accepted on input and dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phone(String);

impl Phone {
    /// Parses an international number (`+` and country code required), checks it against the
    /// libphonenumber metadata and normalises it to E.164 (`+14155552671`).
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let trimmed = raw.trim();
        if !trimmed.starts_with('+') {
            return Err(ParseError(format!(
                "`{raw}` is not an E.164 phone number (it must start with + and the country code)"
            )));
        }
        let invalid = || ParseError(format!("`{raw}` is not a valid international phone number"));
        let number = phonenumber::parse(None, trimmed).map_err(|_| invalid())?;
        if !phonenumber::is_valid(&number) {
            return Err(invalid());
        }
        Ok(Phone(
            number.format().mode(phonenumber::Mode::E164).to_string(),
        ))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An IANA time zone name known to the bundled time zone database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeZoneName(String);

impl TimeZoneName {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let s = raw.trim();
        jiff::tz::TimeZone::get(s)
            .map(|_| TimeZoneName(s.to_string()))
            .map_err(|_| ParseError(format!("`{raw}` is not a known IANA time zone")))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(
            Email::parse(" Ann@Example.COM ").unwrap().as_str(),
            "ann@example.com"
        );
        for bad in [
            "",
            "ann",
            "ann@",
            "@example.com",
            "ann@example",
            "a b@example.com",
            "ann@-x.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn phones() {
        assert_eq!(
            Phone::parse("+1 (415) 555-2671").unwrap().as_str(),
            "+14155552671"
        );
        assert_eq!(
            Phone::parse(" +44 20 7183 8750 ").unwrap().as_str(),
            "+442071838750"
        );
        assert_eq!(
            Phone::parse("+49 151 23456789").unwrap().as_str(),
            "+4915123456789"
        );
        for bad in [
            "5550109999",
            "+0123456789",
            "+12",
            "+1234567890123456",
            "+1555abc1234",
            "+15550109999",
            "+4412",
            "4155552671",
        ] {
            assert!(Phone::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn time_zones() {
        assert!(TimeZoneName::parse("Europe/Berlin").is_ok());
        assert!(TimeZoneName::parse("Mars/Olympus").is_err());
    }
}
