//! Where the walk is, without allocating: each step borrows its parent from the caller's stack.
//! A [`KeyPath`] is built only when a diagnostic needs one, so a file without mistakes never
//! copies a key.

use crate::source::{KeyPath, PathSegment};

/// One position of the walk: the root, or a key or index below a parent position.
pub(super) enum Path<'a> {
    /// The whole file.
    Root,
    /// A table key below `parent`.
    Key(&'a Path<'a>, &'a str),
    /// An array index below `parent`.
    Index(&'a Path<'a>, usize),
}

impl<'a> Path<'a> {
    /// The owned path, for a diagnostic.
    pub(super) fn to_key_path(&self) -> KeyPath {
        let mut segments = Vec::new();
        self.collect(&mut segments);
        KeyPath::from_segments(segments)
    }

    fn collect(&self, segments: &mut Vec<PathSegment>) {
        match *self {
            Path::Root => {}
            Path::Key(parent, key) => {
                parent.collect(segments);
                segments.push(PathSegment::Key(key.to_owned()));
            }
            Path::Index(parent, index) => {
                parent.collect(segments);
                segments.push(PathSegment::Index(index));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn materialises_as_the_key_path_it_stands_for() {
        let services = Path::Key(&Path::Root, "services");
        let second = Path::Index(&services, 2);
        let saga = Path::Key(&second, "saga");
        assert_eq!(
            saga.to_key_path(),
            KeyPath::root().key("services").index(2).key("saga")
        );
        assert_eq!(Path::Root.to_key_path(), KeyPath::root());
    }
}
