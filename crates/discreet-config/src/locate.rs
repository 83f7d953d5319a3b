//! Finds where a key was written, so validation errors (which run on the typed model, after
//! parsing) can still point at a line. The text is parsed a second time into a tree of
//! mapping keys with their [`serde_saphyr::Spanned`] positions; this copes with comments,
//! quoting and flow mappings, which a textual search would not.

use std::fmt;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// The mapping keys of a YAML document, nested as written; scalars and sequences are leaves.
#[derive(Debug, Default)]
pub(crate) struct KeyTree(Vec<(Spanned<String>, KeyTree)>);

impl KeyTree {
    /// Parses `text`; `None` when it cannot be parsed (the position is then simply unknown).
    pub(crate) fn parse(text: &str) -> Option<KeyTree> {
        serde_saphyr::from_str(text).ok()
    }

    /// `(line, column)` of the deepest key along `path` that was written: the key itself,
    /// or, when it was left to its default, the nearest ancestor that was.
    pub(crate) fn find(&self, path: &[String]) -> Option<(u64, u64)> {
        let (first, rest) = path.split_first()?;
        let (key, child) = self.0.iter().find(|(k, _)| k.value == *first)?;
        let here = (key.referenced.line(), key.referenced.column());
        Some(child.find(rest).unwrap_or(here)).filter(|(line, _)| *line > 0)
    }
}

impl<'de> Deserialize<'de> for KeyTree {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TreeVisitor)
    }
}

struct TreeVisitor;

impl<'de> Visitor<'de> for TreeVisitor {
    type Value = KeyTree;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<KeyTree, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<String>>()? {
            entries.push((key, map.next_value::<KeyTree>()?));
        }
        Ok(KeyTree(entries))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<KeyTree, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(KeyTree::default())
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<KeyTree, D::Error> {
        KeyTree::deserialize(d)
    }

    fn visit_none<E>(self) -> Result<KeyTree, E> {
        Ok(KeyTree::default())
    }

    fn visit_unit<E>(self) -> Result<KeyTree, E> {
        Ok(KeyTree::default())
    }

    fn visit_bool<E>(self, _: bool) -> Result<KeyTree, E> {
        Ok(KeyTree::default())
    }

    fn visit_i64<E>(self, _: i64) -> Result<KeyTree, E> {
        Ok(KeyTree::default())
    }

    fn visit_u64<E>(self, _: u64) -> Result<KeyTree, E> {
        Ok(KeyTree::default())
    }

    fn visit_i128<E>(self, _: i128) -> Result<KeyTree, E> {
        Ok(KeyTree::default())
    }

    fn visit_u128<E>(self, _: u128) -> Result<KeyTree, E> {
        Ok(KeyTree::default())
    }

    fn visit_f64<E>(self, _: f64) -> Result<KeyTree, E> {
        Ok(KeyTree::default())
    }

    fn visit_str<E>(self, _: &str) -> Result<KeyTree, E> {
        Ok(KeyTree::default())
    }

    fn visit_bytes<E>(self, _: &[u8]) -> Result<KeyTree, E> {
        Ok(KeyTree::default())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn path(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn finds_nested_and_flow_keys() {
        let text = "# comment\na: 1\nb:\n  c: x\n  d: { e: 1 }\nf: [1, {g: 2}]\n\"/x.Y/Z\": read\n";
        let tree = KeyTree::parse(text).unwrap();
        assert_eq!(tree.find(&path(&["a"])), Some((2, 1)));
        assert_eq!(tree.find(&path(&["b", "c"])), Some((4, 3)));
        assert_eq!(tree.find(&path(&["b", "d", "e"])), Some((5, 8)));
        assert_eq!(tree.find(&path(&["/x.Y/Z"])), Some((7, 1)));
    }

    #[test]
    fn falls_back_to_nearest_written_ancestor() {
        let tree = KeyTree::parse("limits:\n  max_timeout: 1s\n").unwrap();
        assert_eq!(
            tree.find(&path(&["limits", "default_timeout"])),
            Some((1, 1))
        );
        assert_eq!(tree.find(&path(&["tls"])), None);
    }
}
