//! Class names.

use std::path::Path;

use crate::error::{Error, Result};

const IMAGENET: &str = include_str!("../../models/imagenet_classes.txt");

/// Class names, one per model output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labels {
    names: Vec<String>,
}

impl Labels {
    /// The 1000 ImageNet-1k class names shipped in `models/imagenet_classes.txt`.
    pub fn imagenet() -> Self {
        Labels { names: IMAGENET.lines().map(str::to_string).collect() }
    }

    /// Reads one name per line from `path` and checks there is one per model output.
    ///
    /// # Errors
    /// [`Error::Labels`] naming the file: unreadable, or not `classes` lines.
    pub fn from_file(path: &Path, classes: usize) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Labels { path: path.into(), message: e.to_string() })?;
        let names: Vec<String> = text.lines().map(|l| l.trim_end_matches('\r').to_string()).collect();
        if names.len() != classes {
            return Err(Error::Labels { path: path.into(), message: format!("has {} lines but the model has {classes} outputs", names.len()) });
        }
        Ok(Labels { names })
    }

    /// The labels a model's metadata names (`imagenet-1k`), if edgenet ships them and they fit.
    pub fn for_metadata(label_set: Option<&str>, classes: usize) -> Option<Self> {
        (label_set == Some("imagenet-1k") && classes == 1000).then(Self::imagenet)
    }

    /// The name of class `i` (or `#i` when there is none).
    pub fn name(&self, i: usize) -> std::borrow::Cow<'_, str> {
        match self.names.get(i) {
            Some(n) => std::borrow::Cow::Borrowed(n.as_str()),
            None => std::borrow::Cow::Owned(format!("#{i}")),
        }
    }

    /// The name of class `i`, if there is one (borrowed: no allocation).
    pub fn get(&self, i: usize) -> Option<&str> {
        self.names.get(i).map(String::as_str)
    }

    /// Number of names.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn imagenet_has_1000_names() {
        let l = super::Labels::imagenet();
        assert_eq!(l.len(), 1000);
        assert!(l.name(281).starts_with("tabby"));
        assert!(l.name(967).starts_with("espresso"));
    }
}
