//! Reading the file: parse, validate, then make relative paths relative to the file.

use std::path::{Path, PathBuf};

use serde_saphyr::{MessageFormatter, UserMessageFormatter};

use crate::locate::KeyTree;
use crate::{ConfigError, GatewayConfig, IdentityConfig};

impl GatewayConfig {
    /// Parses and validates `text`; `file` is used only in error messages. No file access:
    /// paths stay as written (see [`GatewayConfig::resolve_paths`]).
    pub fn from_yaml(file: &Path, text: &str) -> Result<GatewayConfig, ConfigError> {
        let config: GatewayConfig =
            serde_saphyr::from_str(text).map_err(|e| parse_error(file, &e))?;
        config
            .validate()
            .map_err(|e| e.in_file(file, |path| KeyTree::parse(text)?.find(path)))?;
        Ok(config)
    }

    /// Reads, parses and validates the file at `path`, then resolves every relative path in
    /// it against the file's directory, so the gateway behaves the same whatever directory
    /// it is started from.
    pub fn load(path: &Path) -> Result<GatewayConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.to_owned(),
            source,
        })?;
        let mut config = GatewayConfig::from_yaml(path, &text)?;
        config.resolve_paths(path.parent().unwrap_or(Path::new("")));
        Ok(config)
    }

    /// Joins every relative file path (schema, policy, pseudonym secret, TLS, collector TLS and headers, consent keys
    /// and revocation list, service-account keys) onto `dir`; absolute paths are kept.
    /// [`GatewayConfig::load`] does this with the file's directory; callers of
    /// [`GatewayConfig::from_yaml`] do it themselves when the text came from a file.
    pub fn resolve_paths(&mut self, dir: &Path) {
        let join = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        };
        self.schema.protos.iter_mut().for_each(join);
        self.schema.includes.iter_mut().for_each(join);
        self.schema.mapping.iter_mut().for_each(join);
        join(&mut self.policy.file);
        join(&mut self.pseudonym.secret_file);
        join(&mut self.audit.key_file);
        self.audit.shadow_policy.iter_mut().for_each(join);
        if let Some(tls) = &mut self.audit.tls {
            tls.ca_file.iter_mut().for_each(join);
            tls.cert_file.iter_mut().for_each(join);
            tls.key_file.iter_mut().for_each(join);
        }
        for header in self.audit.headers.values_mut() {
            header.file.iter_mut().for_each(join);
        }
        if let Some(tls) = &mut self.tls {
            join(&mut tls.cert_file);
            join(&mut tls.key_file);
            tls.client_ca_file.iter_mut().for_each(join);
        }
        for keys in [&mut self.consent.keys]
            .into_iter()
            .chain(match &mut self.identity {
                IdentityConfig::ServiceAccount(sa) => Some(&mut sa.keys),
                _ => None,
            })
        {
            keys.file.iter_mut().for_each(join);
            keys.ca_file.iter_mut().for_each(join);
            keys.bearer_token_file.iter_mut().for_each(join);
        }
        if let Some(revocation) = &mut self.consent.revocation {
            revocation.file.iter_mut().for_each(join);
            revocation.ca_file.iter_mut().for_each(join);
            revocation.bearer_token_file.iter_mut().for_each(join);
        }
    }
}

/// The parser's message and position, without its source snippet (one line per error
/// suits logs and `discreet check` alike). The wording is the parser's user-facing one,
/// which gives no advice about the library's options; a duplicate key says which key.
fn parse_error(file: &Path, e: &serde_saphyr::Error) -> ConfigError {
    let location = e.location();
    let e = e.without_snippet();
    let text = match e {
        serde_saphyr::Error::DuplicateMappingKey { key: Some(k), .. } => {
            format!("`{k}` appears twice in this mapping")
        }
        serde_saphyr::Error::DuplicateMappingKey { key: None, .. } => {
            "a key appears twice in this mapping".to_owned()
        }
        other => UserMessageFormatter.format_message(other).into_owned(),
    };
    let mut message = String::new();
    for c in text.chars() {
        // The message may quote the file's text; keep control characters out of logs.
        if c.is_control() {
            message.extend(c.escape_default());
        } else {
            message.push(c);
        }
    }
    ConfigError::Parse {
        file: file.to_owned(),
        line: location.map(|l| l.line()).filter(|l| *l > 0),
        column: location.map(|l| l.column()).filter(|c| *c > 0),
        message,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    #[test]
    fn a_duplicate_key_is_named_without_advice_about_parser_options() {
        let e = serde_saphyr::from_str::<std::collections::BTreeMap<String, String>>(
            "mode: strict\nmode: strict\n",
        )
        .unwrap_err();
        let ConfigError::Parse { line, message, .. } = parse_error(Path::new("t.yaml"), &e) else {
            panic!("not a parse error");
        };
        assert_eq!(line, Some(2));
        assert_eq!(message, "`mode` appears twice in this mapping");
    }
}
