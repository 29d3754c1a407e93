//! `ListObjectsV2` over the `s3s-fs` directory layout (a key `a/b/c` is the file
//! `<root>/<bucket>/a/b/c`), in key order and bounded by the page.
//!
//! `s3s-fs` 0.14.1 answers every listing by walking the whole bucket, reading the metadata
//! of every file in it, sorting them all and only then applying the prefix's end, the
//! start-after key and max-keys: one listing costs as much as the bucket holds, whatever
//! was asked. On S3 a listing costs what its page holds. A client that lists a growing
//! table's log from a known version (a Delta snapshot) or probes a prefix with
//! `max-keys=1` saw its cost grow with every object ever written to the bucket, which is
//! the stand-in's cost, not the client's. This walk reads only the directories under the
//! prefix, in key order, passes over every subtree that sorts wholly at or before the
//! start-after key, and stops once the page is full.
//!
//! Only the delimiter `/` (the one that matches directories) is walked here; a listing
//! with another delimiter, or a prefix that is not a plain path, is left to `s3s-fs`
//! (the caller gets `None`).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::path::Path;
use std::time::SystemTime;

/// One listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListedObject {
    pub key: String,
    pub size: u64,
    pub modified: SystemTime,
}

/// One page of a listing.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Page {
    /// Objects in key order.
    pub objects: Vec<ListedObject>,
    /// Common prefixes (with the delimiter `/`), in order.
    pub common_prefixes: Vec<String>,
    /// More keys or prefixes follow the page.
    pub truncated: bool,
    /// The last key or prefix on the page (the continuation token when truncated).
    pub last: Option<String>,
}

/// Lists `bucket_root` (the bucket's directory) like `ListObjectsV2`: keys starting with
/// `prefix`, grouped at the first `/` after the prefix when `delimiter` is `/`, only those
/// after `start_after`, at most `max_keys` entries. `None` when the request is one this
/// walk does not answer (see the module docs).
pub(crate) fn list(
    bucket_root: &Path,
    prefix: &str,
    delimiter: Option<&str>,
    start_after: Option<&str>,
    max_keys: usize,
) -> Option<io::Result<Page>> {
    let grouped = match delimiter {
        None => false,
        Some("/") => true,
        Some(_) => return None,
    };
    // `s3s-fs` lists keys relative to the bucket directory: a leading `/` means nothing.
    let prefix = prefix.trim_start_matches('/');
    let (dir_part, name_prefix) = match prefix.rfind('/') {
        Some(i) => (&prefix[..=i], &prefix[i + 1..]),
        None => ("", prefix),
    };
    // Only plain relative paths: no empty, `.` or `..` components.
    if !dir_part.is_empty()
        && dir_part[..dir_part.len() - 1]
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return None;
    }
    let mut walk = Walk {
        start_after,
        grouped,
        // One more than the page, to know whether the page is truncated.
        limit: max_keys.saturating_add(1),
        page: Page::default(),
        found: 0,
    };
    if max_keys == 0 {
        return Some(Ok(Page::default()));
    }
    let dir = bucket_root.join(dir_part);
    let result = match std::fs::metadata(&dir) {
        Ok(m) if m.is_dir() => walk.dir(&dir, dir_part, Some(name_prefix)),
        Ok(_) => Ok(()),
        // No such directory, or a file where the prefix has one: no key has the prefix.
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(e),
    };
    Some(result.map(|()| walk.finish(max_keys)))
}

struct Walk<'a> {
    start_after: Option<&'a str>,
    grouped: bool,
    limit: usize,
    page: Page,
    found: usize,
}

impl Walk<'_> {
    fn full(&self) -> bool {
        self.found >= self.limit
    }

    fn after_start(&self, key: &str) -> bool {
        self.start_after.is_none_or(|s| key > s)
    }

    /// Walk `dir` (whose keys start with `base`), only names starting with `name_prefix`.
    fn dir(&mut self, dir: &Path, base: &str, name_prefix: Option<&str>) -> io::Result<()> {
        // The start-after key relative to this directory, when it lies inside it.
        let after_here = self.start_after.and_then(|s| s.strip_prefix(base));
        // (the name it sorts by, is a directory): every key under a directory `d` starts
        // with `d/`, so it sorts as that.
        let mut entries: Vec<Reverse<(String, bool)>> = Vec::new();
        let listed = match std::fs::read_dir(dir) {
            Ok(listed) => listed,
            // Removed while listed (a directory marker's delete): nothing in it.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for entry in listed {
            let entry = entry?;
            // A name that is not UTF-8 is no key (`s3s-fs` passes over it too).
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if name_prefix.is_some_and(|p| !name.starts_with(p)) {
                continue;
            }
            let file_type = entry.file_type()?;
            if !file_type.is_dir() && !file_type.is_file() {
                continue;
            }
            let is_dir = file_type.is_dir();
            let sort_name = if is_dir { format!("{name}/") } else { name };
            // Passed over before sorting: what sorts wholly at or before the start-after
            // key (a listing resumed near the end of a large directory sorts only the rest).
            if let Some(rest) = after_here {
                let wholly_before = if is_dir {
                    rest >= sort_name.as_str() && !rest.starts_with(sort_name.as_str())
                } else {
                    sort_name.as_str() <= rest
                };
                if wholly_before {
                    continue;
                }
            }
            entries.push(Reverse((sort_name, is_dir)));
        }
        // Taken in order from a heap (built in linear time): a page of a few keys from a
        // large directory does not sort all of it.
        let mut entries = BinaryHeap::from(entries);
        while let Some(Reverse((sort_name, is_dir))) = entries.pop() {
            if self.full() {
                break;
            }
            let key = format!("{base}{sort_name}");
            let path = dir.join(sort_name.trim_end_matches('/'));
            if !is_dir {
                if self.after_start(&key) {
                    let meta = match std::fs::metadata(&path) {
                        Ok(m) => m,
                        // Deleted while listed: not part of the listing.
                        Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(e),
                    };
                    self.page.objects.push(ListedObject {
                        key,
                        size: meta.len(),
                        modified: meta.modified()?,
                    });
                    self.found += 1;
                }
            } else if self.grouped {
                // Every key under it shares this prefix up to its first `/` after the
                // listing's prefix. S3 has no empty directories: only one holding an
                // object is a common prefix.
                if self.after_start(&key) && holds_a_file(&path)? {
                    self.page.common_prefixes.push(key);
                    self.found += 1;
                }
            } else {
                // Every key under `key` starts with it. When the start-after key sorts
                // after `key` without starting with it, every one of them sorts before it.
                let skip = self
                    .start_after
                    .is_some_and(|s| s >= key.as_str() && !s.starts_with(key.as_str()));
                if !skip {
                    self.dir(&path, &key, None)?;
                }
            }
        }
        Ok(())
    }

    fn finish(mut self, max_keys: usize) -> Page {
        if self.found > max_keys {
            // One entry past the page was found: drop it (it is whichever sorts last).
            let last_object = self.page.objects.last().map(|o| o.key.as_str());
            let last_prefix = self.page.common_prefixes.last().map(String::as_str);
            if last_object > last_prefix {
                self.page.objects.pop();
            } else {
                self.page.common_prefixes.pop();
            }
            self.page.truncated = true;
        }
        let last_object = self.page.objects.last().map(|o| o.key.clone());
        let last_prefix = self.page.common_prefixes.last().cloned();
        self.page.last = last_object.max(last_prefix);
        self.page
    }
}

/// Whether a file lies anywhere under `dir`.
fn holds_a_file(dir: &Path) -> io::Result<bool> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let file_type = entry.file_type()?;
        if file_type.is_file() || (file_type.is_dir() && holds_a_file(&entry.path())?) {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// The page, from the whole key set: S3's rules, with `s3s-fs`'s for a common prefix
    /// and the start-after key (listed only when the prefix itself sorts after it).
    fn reference(
        keys: &BTreeSet<String>,
        prefix: &str,
        grouped: bool,
        start_after: Option<&str>,
        max_keys: usize,
    ) -> (Vec<String>, Vec<String>, bool) {
        let mut entries: BTreeSet<(String, bool)> = BTreeSet::new();
        for key in keys.iter().filter(|k| k.starts_with(prefix)) {
            let rest = &key[prefix.len()..];
            match rest.find('/').filter(|_| grouped) {
                Some(i) => entries.insert((format!("{prefix}{}", &rest[..=i]), true)),
                None => entries.insert((key.clone(), false)),
            };
        }
        let after: Vec<_> = entries
            .into_iter()
            .filter(|(k, _)| start_after.is_none_or(|s| k.as_str() > s))
            .collect();
        let truncated = max_keys > 0 && after.len() > max_keys;
        let page: Vec<_> = after.into_iter().take(max_keys).collect();
        let objects = page.iter().filter(|e| !e.1).map(|e| e.0.clone()).collect();
        let prefixes = page.iter().filter(|e| e.1).map(|e| e.0.clone()).collect();
        (objects, prefixes, truncated)
    }

    /// Keys over a small alphabet that sorts `-` and `0` around `/`, so directories and
    /// files interleave; a key that is also a directory of another key is dropped (a
    /// file system cannot hold both).
    fn key_sets() -> impl Strategy<Value = BTreeSet<String>> {
        proptest::collection::vec("[ab0-]{1,2}(/[ab0-]{1,2}){0,3}", 0..40).prop_map(|keys| {
            let all: BTreeSet<String> = keys.into_iter().collect();
            all.iter()
                .filter(|k| !all.iter().any(|o| o.starts_with(&format!("{k}/"))))
                .cloned()
                .collect()
        })
    }

    fn write(root: &Path, keys: &BTreeSet<String>) {
        for key in keys {
            let path = root.join(key);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, key.as_bytes()).unwrap();
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn a_page_is_what_s3_lists_from_the_whole_key_set(
            keys in key_sets(),
            prefix in "(|[ab0-]{1,2}|[ab0-]{1,2}/|[ab0-]{1,2}/[ab0-]{0,2})",
            grouped in any::<bool>(),
            start_after in proptest::option::of("[ab0/-]{0,6}"),
            max_keys in 0usize..6,
        ) {
            let dir = tempfile::tempdir().unwrap();
            write(dir.path(), &keys);
            // An empty directory left behind by a delete lists as nothing.
            std::fs::create_dir_all(dir.path().join("e/empty/inside")).unwrap();
            let delimiter = grouped.then_some("/");
            let page = list(dir.path(), &prefix, delimiter, start_after.as_deref(), max_keys)
                .unwrap()
                .unwrap();
            let (objects, prefixes, truncated) =
                reference(&keys, &prefix, grouped, start_after.as_deref(), max_keys);
            let listed: Vec<String> = page.objects.iter().map(|o| o.key.clone()).collect();
            prop_assert_eq!(&listed, &objects);
            prop_assert_eq!(&page.common_prefixes, &prefixes);
            prop_assert_eq!(page.truncated, truncated);
            for o in &page.objects {
                prop_assert_eq!(o.size, o.key.len() as u64);
            }
            // Following the continuation token pages through exactly the whole listing.
            if max_keys > 0 {
                let (all_objects, all_prefixes, _) =
                    reference(&keys, &prefix, grouped, None, usize::MAX - 1);
                let (mut got_objects, mut got_prefixes) = (Vec::new(), Vec::new());
                let mut token: Option<String> = None;
                loop {
                    let page = list(dir.path(), &prefix, delimiter, token.as_deref(), max_keys)
                        .unwrap()
                        .unwrap();
                    got_objects.extend(page.objects.iter().map(|o| o.key.clone()));
                    got_prefixes.extend(page.common_prefixes.iter().cloned());
                    if !page.truncated {
                        break;
                    }
                    token = page.last.clone();
                }
                prop_assert_eq!(got_objects, all_objects);
                prop_assert_eq!(got_prefixes, all_prefixes);
            }
        }
    }

    #[test]
    fn other_delimiters_and_odd_prefixes_are_left_to_s3s_fs() {
        let dir = tempfile::tempdir().unwrap();
        assert!(list(dir.path(), "", Some("-"), None, 10).is_none());
        assert!(list(dir.path(), "a/../b/", None, None, 10).is_none());
        assert!(list(dir.path(), "a//b", None, None, 10).is_none());
        assert_eq!(
            list(dir.path(), "missing/", None, None, 10)
                .unwrap()
                .unwrap(),
            Page::default()
        );
    }
}
