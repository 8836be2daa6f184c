//! One conformance suite for every store backend: the S3 store against a real Garage
//! server and the directory store run the same cases.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use berth_core::Digest;
use berth_core::store::{FileSegment, StoreError, WriteMeta};
use berth_e2e::{TestStore, both_backends};
use bytes::Bytes;

both_backends!(
    put_then_head_and_get_return_bytes_and_metadata,
    |t: TestStore| async move {
        let s = &t.store;
        assert!(s.head("a/b").await.unwrap().is_none());
        assert!(s.get("a/b").await.unwrap().is_none());
        let meta = WriteMeta::new("text/plain").with("digest", "sha256:x");
        s.put("a/b", Bytes::from_static(b"hello"), &meta)
            .await
            .unwrap();
        let head = s.head("a/b").await.unwrap().unwrap();
        assert_eq!(head.size, 5);
        assert_eq!(head.content_type.as_deref(), Some("text/plain"));
        assert_eq!(
            head.metadata.get("digest").map(String::as_str),
            Some("sha256:x")
        );
        let object = s.get("a/b").await.unwrap().unwrap();
        assert_eq!(&object.body[..], b"hello");
        assert_eq!(object.meta, head);
    }
);

fn segment_of(dir: &tempfile::TempDir, data: &[u8]) -> FileSegment {
    // Put the bytes in the middle of a file, as a blob sits inside an archive.
    let path = dir.path().join("source");
    let mut file = vec![7u8; 100];
    file.extend_from_slice(data);
    file.extend_from_slice(&[9u8; 100]);
    std::fs::write(&path, file).unwrap();
    FileSegment {
        path,
        offset: 100,
        len: data.len() as u64,
    }
}

async fn verified_put_case(t: &TestStore, len: usize) {
    let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
    let dir = tempfile::tempdir().unwrap();
    let segment = segment_of(&dir, &data);
    let meta = WriteMeta::new("application/octet-stream");
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    let progress = Arc::new(move |n| {
        counter.fetch_add(n, Ordering::Relaxed);
    });

    let wrong = Digest::of(b"something else");
    let err = t
        .store
        .put_verified("blob", &segment, &wrong, &meta, progress.clone())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::DigestMismatch { .. }), "{err}");
    assert!(
        t.store.head("blob").await.unwrap().is_none(),
        "wrong bytes became visible"
    );

    sent.store(0, Ordering::Relaxed);
    t.store
        .put_verified("blob", &segment, &Digest::of(&data), &meta, progress)
        .await
        .unwrap();
    assert_eq!(sent.load(Ordering::Relaxed), len as u64);
    let object = t.store.get("blob").await.unwrap().unwrap();
    assert_eq!(object.body.len(), len);
    assert!(object.body == data, "stored bytes differ");
}

both_backends!(
    verified_put_of_a_small_blob_checks_the_digest,
    |t: TestStore| async move {
        verified_put_case(&t, 1000).await;
    }
);

// Above the 5 MiB part size the tests use, so S3 takes the multipart path.
both_backends!(
    verified_put_of_a_multipart_blob_checks_the_digest,
    |t: TestStore| async move {
        verified_put_case(&t, (12 << 20) + 123).await;
    }
);

both_backends!(copy_keeps_content_and_metadata, |t: TestStore| async move {
    let s = &t.store;
    let meta = WriteMeta::new("application/json").with("digest", "d");
    s.put("from/x", Bytes::from_static(b"{}"), &meta)
        .await
        .unwrap();
    assert!(s.copy("from/x", "to/y", 2).await.unwrap());
    assert_eq!(
        s.head("to/y").await.unwrap(),
        s.head("from/x").await.unwrap()
    );
    assert_eq!(&s.get("to/y").await.unwrap().unwrap().body[..], b"{}");
    assert!(!s.copy("from/missing", "to/z", 2).await.unwrap());
    assert!(s.head("to/z").await.unwrap().is_none());
});

both_backends!(
    list_is_flat_sorted_and_paginated,
    |t: TestStore| async move {
        let s = &t.store;
        let meta = WriteMeta::new("text/plain");
        for key in ["p/c", "p/a", "p/b/c", "p/b/d/e", "q/x", "pa"] {
            s.put(key, Bytes::from_static(b"."), &meta).await.unwrap();
        }
        assert_eq!(
            s.list("p/", None, 100).await.unwrap(),
            ["p/a", "p/b/c", "p/b/d/e", "p/c"]
        );
        assert_eq!(
            s.list("p/", Some("p/a"), 2).await.unwrap(),
            ["p/b/c", "p/b/d/e"]
        );
        assert_eq!(
            s.list("p/", Some("p/c"), 2).await.unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(s.list("p/b/", None, 1).await.unwrap(), ["p/b/c"]);
        assert_eq!(
            s.list("nothing/", None, 10).await.unwrap(),
            Vec::<String>::new()
        );
    }
);

both_backends!(
    delete_removes_and_tolerates_absent_keys,
    |t: TestStore| async move {
        let s = &t.store;
        s.put("k", Bytes::from_static(b"v"), &WriteMeta::new("text/plain"))
            .await
            .unwrap();
        s.delete("k").await.unwrap();
        assert!(s.head("k").await.unwrap().is_none());
        s.delete("k").await.unwrap();
    }
);

// The tests' stores copy part by part above 8 MiB, as S3 must above 5 GiB.
both_backends!(large_copies_go_part_by_part, |t: TestStore| async move {
    let data: Vec<u8> = (0..(12u32 << 20) + 7).map(|i| (i % 253) as u8).collect();
    let meta = WriteMeta::new("application/octet-stream").with("digest", "d");
    t.store
        .put("big/from", Bytes::from(data.clone()), &meta)
        .await
        .unwrap();
    assert!(
        t.store
            .copy("big/from", "big/to", data.len() as u64)
            .await
            .unwrap()
    );
    let copied = t.store.get("big/to").await.unwrap().unwrap();
    assert!(copied.body == data, "copied bytes differ");
    assert_eq!(
        copied.meta.content_type.as_deref(),
        Some("application/octet-stream")
    );
    assert_eq!(
        copied.meta.metadata.get("digest").map(String::as_str),
        Some("d")
    );
    assert!(
        !t.store
            .copy("big/missing", "big/none", data.len() as u64)
            .await
            .unwrap()
    );
});

both_backends!(
    listings_carry_sizes_and_times_and_touch_renews_them,
    |t: TestStore| async move {
        let s = &t.store;
        let meta = WriteMeta::new("text/plain").with("digest", "sha256:x");
        s.put("t/a", Bytes::from_static(b"abc"), &meta)
            .await
            .unwrap();
        let listed = s.list_entries("t/", None, 10).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].key.as_str(), listed[0].size), ("t/a", 3));
        let written = listed[0].modified;
        // HEAD's Last-Modified is an HTTP date: whole seconds.
        let headed = s.head("t/a").await.unwrap().unwrap().modified.unwrap();
        assert!(
            headed <= written
                && written.duration_since(headed).unwrap() < std::time::Duration::from_secs(1),
            "HEAD says {headed:?}, the listing {written:?}"
        );
        // Store clocks keep whole seconds at least.
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        assert!(s.touch("t/a").await.unwrap());
        let touched = s.list_entries("t/", None, 10).await.unwrap();
        assert!(
            touched[0].modified > written,
            "touch did not renew the time"
        );
        let object = s.get("t/a").await.unwrap().unwrap();
        assert_eq!(&object.body[..], b"abc");
        assert_eq!(object.meta.content_type.as_deref(), Some("text/plain"));
        assert_eq!(
            object.meta.metadata.get("digest").map(String::as_str),
            Some("sha256:x")
        );
        assert!(!s.touch("t/missing").await.unwrap());
        assert!(s.head("t/missing").await.unwrap().is_none());
    }
);
