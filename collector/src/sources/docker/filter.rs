//! Which containers are collected: the container's own opt-out, the operator's exclusions,
//! and optional include-only lists.
//!
//! In order: a container that opted out (`shiplog.exclude=true`, `LOGSPOUT=ignore`) is
//! skipped; then one whose name or image matches an exclusion; then, if any include list is
//! set, one that matches no include entry (name regex, image regex or label). Our own
//! container is skipped before any of this (see [`identity`](super::identity)).

use regex::Regex;

use super::metadata::ContainerMeta;
use crate::config::{CollectorConfig, compile_pattern};
use crate::error::Result;

/// The compiled container selection.
#[derive(Debug, Clone, Default)]
pub struct ContainerFilter {
    exclude_names: Vec<Regex>,
    exclude_images: Vec<Regex>,
    include_names: Vec<Regex>,
    include_images: Vec<Regex>,
    /// `(key, Some(value))` or `(key, None)` for any value.
    include_labels: Vec<(String, Option<String>)>,
}

impl ContainerFilter {
    /// Compiles the selection `config` describes.
    pub fn from_config(config: &CollectorConfig) -> Result<Self> {
        let compile = |setting: &'static str, patterns: &[String]| {
            patterns
                .iter()
                .map(|p| compile_pattern(setting, p))
                .collect::<Result<Vec<_>>>()
        };
        Ok(ContainerFilter {
            exclude_names: compile("exclude_names", &config.exclude_names)?,
            exclude_images: compile("exclude_images", &config.exclude_images)?,
            include_names: compile("include_names", &config.include_names)?,
            include_images: compile("include_images", &config.include_images)?,
            include_labels: config
                .include_labels
                .iter()
                .map(|entry| match entry.split_once('=') {
                    Some((key, value)) => (key.trim().to_string(), Some(value.to_string())),
                    None => (entry.trim().to_string(), None),
                })
                .collect(),
        })
    }

    /// `None` when the container is collected, else why it is not (for the debug log).
    pub fn skip_reason(&self, meta: &ContainerMeta) -> Option<&'static str> {
        if let Some(reason) = meta.opted_out {
            return Some(reason);
        }
        if self.exclude_names.iter().any(|r| r.is_match(&meta.name)) {
            return Some("name matches exclude_names");
        }
        if self.exclude_images.iter().any(|r| r.is_match(&meta.image)) {
            return Some("image matches exclude_images");
        }
        let has_includes = !self.include_names.is_empty()
            || !self.include_images.is_empty()
            || !self.include_labels.is_empty();
        if !has_includes {
            return None;
        }
        let included = self.include_names.iter().any(|r| r.is_match(&meta.name))
            || self.include_images.iter().any(|r| r.is_match(&meta.image))
            || self.include_labels.iter().any(|(key, value)| {
                meta.labels
                    .get(key)
                    .is_some_and(|v| value.as_ref().is_none_or(|want| want == v))
            });
        (!included).then_some("matches no include rule")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::Map;

    use super::*;

    fn meta(name: &str, image: &str, labels: &[(&str, &str)]) -> ContainerMeta {
        ContainerMeta {
            id: "c0ffee".into(),
            name: name.into(),
            image: image.into(),
            service: name.into(),
            tty: false,
            opted_out: None,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            fields: Map::new(),
        }
    }

    #[test]
    fn exclusions_then_includes() {
        let config = CollectorConfig {
            exclude_names: vec!["^tmp-".into()],
            exclude_images: vec!["^busybox".into()],
            ..CollectorConfig::default()
        };
        let filter = ContainerFilter::from_config(&config).unwrap();
        assert_eq!(filter.skip_reason(&meta("web", "shop/web", &[])), None);
        assert!(
            filter
                .skip_reason(&meta("tmp-1", "shop/web", &[]))
                .is_some()
        );
        assert!(filter.skip_reason(&meta("web", "busybox:1", &[])).is_some());
        let mut opted = meta("web", "shop/web", &[]);
        opted.opted_out = Some("label shiplog.exclude=true");
        assert_eq!(
            filter.skip_reason(&opted),
            Some("label shiplog.exclude=true")
        );

        let config = CollectorConfig {
            include_names: vec!["^api".into()],
            include_labels: vec!["team=ml".into(), "collect".into()],
            exclude_names: vec!["-debug$".into()],
            ..CollectorConfig::default()
        };
        let filter = ContainerFilter::from_config(&config).unwrap();
        assert_eq!(filter.skip_reason(&meta("api-1", "x", &[])), None);
        assert_eq!(filter.skip_reason(&meta("w", "x", &[("team", "ml")])), None);
        assert_eq!(
            filter.skip_reason(&meta("w", "x", &[("collect", "")])),
            None
        );
        assert!(
            filter
                .skip_reason(&meta("w", "x", &[("team", "web")]))
                .is_some()
        );
        assert!(
            filter.skip_reason(&meta("api-debug", "x", &[])).is_some(),
            "exclusions win"
        );
    }
}
