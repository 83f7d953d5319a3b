//! The names policies use: fideslang's default taxonomy of data categories and purposes
//! (shipped in `vocabulary/`, CC BY 4.0, © Ethyca, Inc.), plus a policy's own additions.
use std::collections::BTreeMap;

use serde::Deserialize;

const CATEGORIES: &str = include_str!("../../../vocabulary/fideslang-data-categories.yaml");
const PURPOSES: &str = include_str!("../../../vocabulary/fideslang-data-uses.yaml");

/// One category or purpose.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct VocabularyEntry {
    pub key: String,
    pub parent: Option<String>,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub deprecated: Option<String>,
    #[serde(default)]
    pub replaced_by: Option<String>,
    /// GDPR Art. 9/10 or children's data (our annotation, not fideslang's).
    #[serde(default)]
    pub special: bool,
}

#[derive(Deserialize)]
struct CategoryFile {
    data_categories: Vec<VocabularyEntry>,
}

#[derive(Deserialize)]
struct PurposeFile {
    data_uses: Vec<VocabularyEntry>,
}

/// Categories and purposes by key.
#[derive(Clone, Debug, Default)]
pub struct Vocabulary {
    categories: BTreeMap<String, VocabularyEntry>,
    purposes: BTreeMap<String, VocabularyEntry>,
}

impl Vocabulary {
    /// The fideslang default taxonomy.
    pub fn fideslang() -> Result<Vocabulary, String> {
        let c: CategoryFile =
            serde_saphyr::from_str(CATEGORIES).map_err(|e| format!("built-in categories: {e}"))?;
        let p: PurposeFile =
            serde_saphyr::from_str(PURPOSES).map_err(|e| format!("built-in purposes: {e}"))?;
        Ok(Vocabulary {
            categories: c
                .data_categories
                .into_iter()
                .map(|e| (e.key.clone(), e))
                .collect(),
            purposes: p
                .data_uses
                .into_iter()
                .map(|e| (e.key.clone(), e))
                .collect(),
        })
    }

    pub(crate) fn add_category(&mut self, entry: VocabularyEntry) {
        self.categories.insert(entry.key.clone(), entry);
    }

    pub(crate) fn add_purpose(&mut self, entry: VocabularyEntry) {
        self.purposes.insert(entry.key.clone(), entry);
    }

    #[must_use]
    pub fn category(&self, key: &str) -> Option<&VocabularyEntry> {
        self.categories.get(key)
    }

    #[must_use]
    pub fn purpose(&self, key: &str) -> Option<&VocabularyEntry> {
        self.purposes.get(key)
    }

    /// The key a category is known by now: deprecated keys map to their replacement.
    #[must_use]
    pub fn canonical<'a>(&'a self, key: &'a str) -> &'a str {
        let mut key = key;
        // Replacement chains are short; the bound stops a cycle in a policy's additions.
        for _ in 0..8 {
            match self
                .categories
                .get(key)
                .and_then(|e| e.replaced_by.as_deref())
            {
                Some(next) => key = next,
                None => break,
            }
        }
        key
    }

    /// Whether a category, or any of its ancestors, is special.
    #[must_use]
    pub fn is_special(&self, key: &str) -> bool {
        ancestors_or_self(key).any(|k| self.categories.get(k).is_some_and(|e| e.special))
    }

    /// Why `key` is not a category, naming the nearest category when it looks like a
    /// typo; `None` when it is one. Policies and `policy explain --grant` say the same.
    #[must_use]
    pub fn unknown_category(&self, key: &str) -> Option<String> {
        if self.category(key).is_some() {
            return None;
        }
        let mut message = format!(
            "unknown category {key}: not in the fideslang vocabulary nor in vocabulary.categories"
        );
        if let Some(near) = crate::closest::closest(key, self.category_keys()) {
            message.push_str(&format!("; did you mean {near}?"));
        }
        Some(message)
    }

    /// Every category key.
    pub fn category_keys(&self) -> impl Iterator<Item = &str> {
        self.categories.keys().map(String::as_str)
    }
}

/// `a.b.c`, `a.b`, `a`.
pub(crate) fn ancestors_or_self(key: &str) -> impl Iterator<Item = &str> {
    let mut next = Some(key);
    std::iter::from_fn(move || {
        let current = next?;
        next = current.rsplit_once('.').map(|(p, _)| p);
        Some(current)
    })
}

/// Whether `key` is `ancestor` or lies below it.
pub(crate) fn within(key: &str, ancestor: &str) -> bool {
    key == ancestor
        || (key.starts_with(ancestor) && key.as_bytes().get(ancestor.len()) == Some(&b'.'))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn loads_fideslang_with_special_marks_and_aliases() {
        let v = Vocabulary::fideslang().unwrap();
        assert_eq!(v.category_keys().count(), 123);
        assert!(v.purpose("marketing.communications.email").is_some());
        assert!(v.is_special("user.health.reproductive_or_sexual"));
        assert!(v.is_special("user.demographic.race_ethnicity"));
        assert!(!v.is_special("user.contact.email"));
        assert_eq!(v.canonical("user.childrens"), "user.children");
        assert_eq!(v.canonical("user.contact.email"), "user.contact.email");
    }

    #[test]
    fn an_unknown_category_names_the_nearest_one() {
        let v = Vocabulary::fideslang().unwrap();
        assert_eq!(v.unknown_category("user.demographic.race_ethnicity"), None);
        let m = v
            .unknown_category("user.demographic.race_ethnicty")
            .unwrap();
        assert!(
            m.starts_with("unknown category user.demographic.race_ethnicty: ")
                && m.ends_with("did you mean user.demographic.race_ethnicity?"),
            "{m}"
        );
    }

    #[test]
    fn ancestry() {
        assert_eq!(
            ancestors_or_self("a.b.c").collect::<Vec<_>>(),
            vec!["a.b.c", "a.b", "a"]
        );
        assert!(within("user.contact.email", "user.contact"));
        assert!(!within("user.contactless", "user.contact"));
    }
}
