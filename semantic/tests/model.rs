//! The real all-MiniLM-L6-v2 model from `make model` (models/all-MiniLM-L6-v2): vectors are
//! unit length, padding does not change them, and meaning beats wording.

use std::path::PathBuf;

use reef_semantic::{DIM, Embedder, index::dot};

fn model() -> Embedder {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/all-MiniLM-L6-v2");
    Embedder::load(&dir).unwrap_or_else(|e| panic!("{e}\nrun `make model` first"))
}

#[test]
fn embeddings_are_unit_vectors_independent_of_padding_and_follow_meaning() {
    let m = model();
    let short = "I need someone to fix my leaking sink";
    let long = "Plumber. Repairs leaking pipes, faucets, toilets and water heaters in homes and \
                small offices, same-day emergency call-outs. Skills: plumbing, repairs";
    let other = "Translates legal contracts from German into English";
    // One batch (the short text padded to the long one's length) and one at a time.
    let batch = m.embed(&[short, long, other]).unwrap();
    let alone = m.embed_one(short).unwrap();
    assert_eq!(batch.len(), 3);
    for v in &batch {
        assert_eq!(v.len(), DIM);
        assert!((dot(v, v) - 1.0).abs() < 1e-4);
    }
    // Padding is weighted out of the mean: the padded and the unpadded vector agree.
    assert!(dot(&batch[0], &alone) > 0.9999, "padding changed the vector");
    let related = dot(&batch[0], &batch[1]);
    let unrelated = dot(&batch[0], &batch[2]);
    assert!(related > 0.3, "related {related}");
    assert!(unrelated < 0.15, "unrelated {unrelated}");
    assert!(related > unrelated + 0.25);
}

#[test]
fn long_inputs_are_truncated_not_refused() {
    let m = model();
    let text = "word ".repeat(2000);
    let v = m.embed_one(&text).unwrap();
    assert_eq!(v.len(), DIM);
    assert!(m.embed(&[]).unwrap().is_empty());
}

#[test]
fn a_folder_without_the_model_says_how_to_get_it() {
    let e = Embedder::load(std::path::Path::new("/nonexistent/model")).unwrap_err().to_string();
    assert!(e.contains("config.json is missing") && e.contains("make model"), "{e}");
}
