//! The shared skeleton of per-document operators (normalize, lang_id, quality, …): each
//! document is kept (possibly rewritten) or rejected with a reason, and the operator's
//! `docs_in`, `docs_out`, `dropped.<reason>` and time are counted under its name.
//! Stateless: nothing is held between records.

use crate::doc::{Doc, Reject};
use crate::stats::StatsRegistry;
use crate::Epoch;
use differential_dataflow::collection::AsCollection;
use differential_dataflow::VecCollection;
use std::time::Instant;
use timely::dataflow::operators::core::OkErr;

/// What a step decides for one document.
pub type Verdict = Result<Doc, Reject>;

/// The verdict of a step that rewrites the text: the document with the new text, or a reject
/// by `operator` with the step's reason and detail.
pub fn rewrite_text(mut doc: Doc, operator: &str, result: Result<String, (&'static str, String)>) -> Verdict {
    match result {
        Ok(text) => {
            doc.text = text;
            Ok(doc)
        }
        Err((reason, detail)) => Err(Reject::new(doc.source.clone(), operator, reason, detail, Some(doc.id))),
    }
}

/// Applies `step` to every document; returns (kept, rejected).
pub fn split_docs<'s, F>(
    docs: VecCollection<'s, Epoch, Doc>,
    name: &str,
    stats: &StatsRegistry,
    step: F,
) -> (VecCollection<'s, Epoch, Doc>, VecCollection<'s, Epoch, Reject>)
where
    F: FnMut(Doc) -> Verdict + 'static,
{
    split_map(docs, name, stats, step)
}

/// [`split_docs`] over any record that a step turns into a document or a reject (e.g. a
/// document with its model output).
pub fn split_map<'s, T, F>(
    docs: VecCollection<'s, Epoch, T>,
    name: &str,
    stats: &StatsRegistry,
    mut step: F,
) -> (VecCollection<'s, Epoch, Doc>, VecCollection<'s, Epoch, Reject>)
where
    T: differential_dataflow::Data,
    F: FnMut(T) -> Verdict + 'static,
{
    let stats = stats.clone();
    let name = name.to_string();
    let (kept, rejected) = docs.inner.ok_err::<Vec<_>, _, Vec<_>, _, _>(move |(doc, time, diff)| {
        let started = Instant::now();
        let verdict = step(doc);
        stats.with(&name, |s| {
            s.docs_in += 1;
            match &verdict {
                Ok(_) => s.docs_out += 1,
                Err(r) => s.drop(&r.reason),
            }
            s.add_time(started.elapsed());
        });
        match verdict {
            Ok(doc) => Ok((doc, time, diff)),
            Err(reject) => Err((reject, time, diff)),
        }
    });
    (kept.as_collection(), rejected.as_collection())
}
