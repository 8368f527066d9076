//! An object store that shows DataFusion only the dataset's committed data files: listings of
//! `lang=*/`, `corpus/`, `rejects/`, `dup_clusters/` and `diversity/` leave out every Parquet file the manifest does not
//! commit (a stray copy, a part of a commit a crash cut short), so a query never counts a row
//! twice. Everything else passes through to the real store.

use futures::stream::{BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};
use std::collections::HashSet;
use std::sync::Arc;

#[derive(Debug)]
pub struct CommittedOnly {
    inner: Arc<dyn ObjectStore>,
    /// The dataset's root as an object path prefix (`tmp/x/out` for a local folder, the key
    /// prefix on S3).
    root: String,
    committed: Arc<HashSet<String>>,
}

impl CommittedOnly {
    /// `committed`: paths relative to the dataset root (the manifest's file paths).
    pub fn new(inner: Arc<dyn ObjectStore>, root: &str, committed: impl IntoIterator<Item = String>) -> Self {
        let root = root.trim_matches('/').to_string();
        CommittedOnly { inner, root, committed: Arc::new(committed.into_iter().collect()) }
    }

    fn keeps(root: &str, committed: &HashSet<String>, location: &Path) -> bool {
        let loc = location.as_ref();
        let rel = if root.is_empty() {
            loc
        } else {
            match loc.strip_prefix(root).and_then(|r| r.strip_prefix('/')) {
                Some(r) => r,
                None => return true,
            }
        };
        !is_data_file(rel) || committed.contains(rel)
    }
}

/// Whether `rel` (relative to the dataset root) is a Parquet file of a table's folder, which
/// only the manifest can make part of the dataset.
pub fn is_data_file(rel: &str) -> bool {
    use crate::manifest::{CORPUS_DIR, DIVERSITY_DIR, DUP_CLUSTERS_DIR, LANG_PREFIX};
    let folder = rel.starts_with(LANG_PREFIX)
        || rel.starts_with("rejects/")
        || [CORPUS_DIR, DUP_CLUSTERS_DIR, DIVERSITY_DIR].iter().any(|d| rel.starts_with(&format!("{d}/")));
    folder && rel.ends_with(".parquet")
}

impl std::fmt::Display for CommittedOnly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CommittedOnly({})", self.inner)
    }
}

#[async_trait::async_trait]
impl ObjectStore for CommittedOnly {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let (root, committed) = (self.root.clone(), self.committed.clone());
        self.inner
            .list(prefix)
            .filter(move |m| {
                let keep = m.as_ref().map_or(true, |m| Self::keeps(&root, &committed, &m.location));
                futures::future::ready(keep)
            })
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let mut listed = self.inner.list_with_delimiter(prefix).await?;
        listed.objects.retain(|m| Self::keeps(&self.root, &self.committed, &m.location));
        Ok(listed)
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}
