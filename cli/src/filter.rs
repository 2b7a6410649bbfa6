//! Key filters (`attr.label=L attr.sign=true ...`) and finding the one key
//! a filter must select.

use hsm_client::{Client, ErrorKind, KeyFilter, KeyId, KeyInfo, Username};

use crate::error::{Class, CliError, Result};
use crate::keys::{flag, parse_bool, parse_hex, parse_key_reference, type_name, TYPE_NAMES};

/// A parsed filter: what the cluster filters on, plus what is checked
/// here (key type family, key reference).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    server: KeyFilter,
    key_type: Option<&'static str>,
    reference: Option<KeyId>,
    /// The filter as given, for messages.
    text: String,
}

impl Filter {
    /// Parses filter tokens (`NAME=VALUE`, NAME optionally prefixed with
    /// `attr.`).
    pub fn parse(tokens: &[String]) -> Result<Filter> {
        let mut filter = Filter {
            text: tokens.join(" "),
            ..Filter::default()
        };
        let mut seen: Vec<String> = Vec::new();
        for token in tokens {
            let (raw, value) = token.split_once('=').ok_or_else(|| {
                CliError::invalid(format!(
                    "key filter {token:?} is not NAME=VALUE (for example attr.label=my-key)"
                ))
            })?;
            let name = raw.strip_prefix("attr.").unwrap_or(raw);
            if seen.iter().any(|s| s == name) {
                return Err(CliError::invalid(format!(
                    "key filter names {name} twice: give each attribute once"
                )));
            }
            seen.push(name.to_string());
            match name {
                "label" => filter.server.label = Some(value.to_string()),
                "id" => filter.server.id = Some(parse_hex(value, "attr.id")?),
                "key-type" => {
                    let t = TYPE_NAMES.iter().find(|t| **t == value).ok_or_else(|| {
                        CliError::invalid(format!(
                            "attr.key-type must be one of {}, got {value:?}",
                            TYPE_NAMES.join(", ")
                        ))
                    })?;
                    filter.key_type = Some(t);
                }
                "owner" | "key-owner" => {
                    filter.server.owner = Some(Username::new(value).map_err(CliError::invalid)?)
                }
                "key-reference" => filter.reference = Some(parse_key_reference(value)?),
                other => match flag(other) {
                    Some(f) => filter.server.flags.push((f, parse_bool(value, raw)?)),
                    None => {
                        return Err(CliError::invalid(format!(
                            "unknown key filter {raw:?}: expected attr.label, attr.id (hex), \
                             attr.key-type, owner, key-reference or a boolean attribute \
                             (attr.encrypt, attr.sign, attr.extractable, ...)"
                        )))
                    }
                },
            }
        }
        Ok(filter)
    }

    /// Whether `key` passes the whole filter.
    pub fn matches(&self, key: &KeyInfo) -> bool {
        self.server.matches(key)
            && self.key_type.is_none_or(|t| t == type_name(key.spec))
            && self.reference.is_none_or(|r| r == key.id)
    }

    /// The keys visible to the caller that pass, in id order.
    ///
    /// # Errors
    /// As the SDK's `list_keys` and `get_key`.
    pub async fn find(&self, client: &Client) -> Result<Vec<KeyInfo>> {
        let keys = match self.reference {
            Some(id) => match client.get_key(id).await {
                Ok(key) => vec![key],
                Err(e) if e.kind() == Some(ErrorKind::NotFound) => Vec::new(),
                Err(e) => return Err(e.into()),
            },
            None => client.list_keys(self.server.clone()).await?,
        };
        Ok(keys.into_iter().filter(|k| self.matches(k)).collect())
    }

    /// The one key the filter selects; `flag` names the option for
    /// messages (`--key-filter`).
    ///
    /// # Errors
    /// `not-found` when no key matches, `ambiguous-key-filter` when more
    /// than one does (both exit code 4), or as [`Filter::find`].
    pub async fn one(&self, client: &Client, flag: &str) -> Result<KeyInfo> {
        let mut keys = self.find(client).await?;
        match keys.len() {
            0 => Err(CliError::new(
                Class::Input,
                ErrorKind::NotFound.as_str(),
                format!(
                    "no key you can see matches {flag} {}; `hsm key list` shows the keys you \
                     own or that are shared with you",
                    self.text
                ),
            )),
            1 => Ok(keys.remove(0)),
            n => {
                let ids: Vec<String> = keys.iter().take(5).map(|k| k.id.to_string()).collect();
                let more = if n > 5 { ", ..." } else { "" };
                Err(CliError::new(
                    Class::Input,
                    "ambiguous-key-filter",
                    format!(
                        "{flag} {} matches {n} keys ({}{more}) but must select exactly one: \
                         add filters, e.g. key-reference={}",
                        self.text,
                        ids.join(", "),
                        ids.first().map(String::as_str).unwrap_or("0x...")
                    ),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hsm_client::{KeyAttributes, KeyFlag, KeySpec};

    fn tokens(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| s.to_string()).collect()
    }

    fn key(id: u64, label: &str, spec: KeySpec) -> KeyInfo {
        KeyInfo {
            id: KeyId(id),
            spec,
            owner: Username::new("alice").expect("name"),
            shared_with: Vec::new(),
            attributes: KeyAttributes {
                label: label.into(),
                sign: true,
                ..KeyAttributes::default()
            },
            provenance: hsm_client::KeyProvenance::known_outside(hsm_client::KeyOrigin::Imported),
            public_key: Vec::new(),
            created_ms: 0,
            certificate: Vec::new(),
        }
    }

    #[test]
    fn filters_parse_every_documented_name() {
        let f = Filter::parse(&tokens(&[
            "attr.label=app",
            "attr.id=0a0b",
            "attr.key-type=ec",
            "owner=alice",
            "attr.sign=true",
            "attr.extractable=false",
        ]))
        .expect("parses");
        assert_eq!(f.server.label.as_deref(), Some("app"));
        assert_eq!(f.server.id, Some(vec![10, 11]));
        assert_eq!(f.key_type, Some("ec"));
        assert_eq!(
            f.server.flags,
            vec![(KeyFlag::Sign, true), (KeyFlag::Extractable, false)]
        );
        let by_ref = Filter::parse(&tokens(&["key-reference=0x000000000000002a"])).expect("ref");
        assert_eq!(by_ref.reference, Some(KeyId(42)));
    }

    #[test]
    fn filter_mistakes_are_explained() {
        let msg = |t: &[&str]| Filter::parse(&tokens(t)).expect_err("refused").message;
        assert!(msg(&["label"]).contains("NAME=VALUE"));
        assert!(msg(&["attr.colour=red"]).contains("unknown key filter"));
        assert!(msg(&["attr.key-type=dsa"]).contains("rsa"));
        assert!(msg(&["attr.sign=maybe"]).contains("true or false"));
        assert!(msg(&["attr.label=a", "label=b"]).contains("twice"));
        assert!(msg(&["attr.id=xyz"]).contains("hex"));
    }

    #[test]
    fn the_key_type_family_is_matched_here() {
        let f = Filter::parse(&tokens(&["attr.key-type=ec", "attr.label=a"])).expect("parses");
        assert!(f.matches(&key(1, "a", KeySpec::EcP384)));
        assert!(!f.matches(&key(2, "a", KeySpec::Ed25519)));
        assert!(!f.matches(&key(3, "b", KeySpec::EcP256)));
    }
}
