//! `LocalS3` and `FaultProxy` driven by the real AWS SDK for Rust.

use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use local_s3::{ACCESS_KEY, FaultConfig, FaultProxy, LocalS3, REGION, SECRET_KEY};

const MIB: usize = 1024 * 1024;
const BUCKET: &str = "test-bucket";

fn client_with(
    endpoint: &str,
    retry: RetryConfig,
    checksums: RequestChecksumCalculation,
) -> Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .force_path_style(true)
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new(
            ACCESS_KEY,
            SECRET_KEY,
            None,
            None,
            "local-s3-tests",
        ))
        .request_checksum_calculation(checksums)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .retry_config(retry)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_attempt_timeout(Duration::from_secs(10))
                .build(),
        )
        .build();
    Client::from_conf(config)
}

/// Standard retry mode with many attempts and short backoffs (keeps tests fast).
fn retrying() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(10)
        .with_initial_backoff(Duration::from_millis(5))
        .with_max_backoff(Duration::from_millis(50))
}

fn client(endpoint: &str) -> Client {
    client_with(
        endpoint,
        retrying(),
        RequestChecksumCalculation::WhenRequired,
    )
}

async fn server() -> (tempfile::TempDir, LocalS3) {
    let dir = tempfile::tempdir().unwrap();
    let s3 = LocalS3::start(dir.path().join("data")).await.unwrap();
    s3.create_bucket(BUCKET).unwrap();
    (dir, s3)
}

/// Deterministic, non-repeating-looking bytes.
fn pattern(len: usize, salt: u32) -> Vec<u8> {
    (0..len)
        .map(|i| {
            let x = (u32::try_from(i).unwrap() ^ salt).wrapping_mul(2_654_435_761);
            x.to_be_bytes()[0]
        })
        .collect()
}

async fn get_bytes(client: &Client, key: &str) -> Vec<u8> {
    let out = client
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .unwrap();
    out.body.collect().await.unwrap().into_bytes().to_vec()
}

fn http_status<E>(err: &SdkError<E, HttpResponse>) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
}

#[tokio::test]
async fn put_get_head_list_delete_round_trip() {
    let (_dir, s3) = server().await;
    assert!(s3.endpoint().starts_with("http://127.0.0.1:"));
    let c = client(&s3.endpoint());

    c.put_object()
        .bucket(BUCKET)
        .key("dir/hello.txt")
        .body(ByteStream::from_static(b"hello world"))
        .send()
        .await
        .unwrap();
    assert_eq!(get_bytes(&c, "dir/hello.txt").await, b"hello world");
    let head = c
        .head_object()
        .bucket(BUCKET)
        .key("dir/hello.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some(11));

    // ListObjectsV2: prefix and continuation tokens.
    for i in 0..5 {
        c.put_object()
            .bucket(BUCKET)
            .key(format!("list/k{i}"))
            .body(ByteStream::from(vec![u8::try_from(i).unwrap(); 3]))
            .send()
            .await
            .unwrap();
    }
    let mut keys = Vec::new();
    let mut token = None;
    let mut pages = 0;
    loop {
        let page = c
            .list_objects_v2()
            .bucket(BUCKET)
            .prefix("list/")
            .max_keys(2)
            .set_continuation_token(token)
            .send()
            .await
            .unwrap();
        pages += 1;
        keys.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_owned)),
        );
        token = page.next_continuation_token().map(str::to_owned);
        if !page.is_truncated().unwrap_or(false) {
            break;
        }
    }
    assert_eq!(
        keys,
        ["list/k0", "list/k1", "list/k2", "list/k3", "list/k4"]
    );
    assert_eq!(pages, 3);

    // Delimiter gives common prefixes.
    let top = c
        .list_objects_v2()
        .bucket(BUCKET)
        .delimiter("/")
        .send()
        .await
        .unwrap();
    let prefixes: Vec<_> = top
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    assert_eq!(prefixes, ["dir/", "list/"]);

    // DeleteObjects.
    let delete = Delete::builder()
        .objects(ObjectIdentifier::builder().key("list/k0").build().unwrap())
        .objects(ObjectIdentifier::builder().key("list/k1").build().unwrap())
        .build()
        .unwrap();
    let out = c
        .delete_objects()
        .bucket(BUCKET)
        .delete(delete)
        .send()
        .await
        .unwrap();
    assert_eq!(out.deleted().len(), 2);
    let left = c
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix("list/")
        .send()
        .await
        .unwrap();
    assert_eq!(left.key_count(), Some(3));

    // Missing key and missing bucket.
    let err = c
        .get_object()
        .bucket(BUCKET)
        .key("nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(http_status(&err), Some(404));
    let err = c
        .put_object()
        .bucket("no-such-bucket")
        .key("k")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(http_status(&err), Some(404), "{err:?}");
    assert_eq!(err.code(), Some("NoSuchBucket"));
    assert!(!s3.root().join("no-such-bucket").exists());
    let err = c
        .get_object()
        .bucket("no-such-bucket")
        .key("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("NoSuchBucket"));

    // DeleteBucket refuses a bucket with objects, as AWS does.
    c.create_bucket()
        .bucket("short-lived")
        .send()
        .await
        .unwrap();
    c.put_object()
        .bucket("short-lived")
        .key("a/b")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    let err = c
        .delete_bucket()
        .bucket("short-lived")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("BucketNotEmpty"), "{err:?}");
    c.delete_object()
        .bucket("short-lived")
        .key("a/b")
        .send()
        .await
        .unwrap();
    c.delete_bucket()
        .bucket("short-lived")
        .send()
        .await
        .unwrap();
    assert!(!s3.root().join("short-lived").exists());

    // Bad credentials are refused.
    let bad = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(s3.endpoint())
        .force_path_style(true)
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new(
            ACCESS_KEY,
            "wrong-secret",
            None,
            None,
            "bad",
        ))
        .build();
    let err = Client::from_conf(bad)
        .get_object()
        .bucket(BUCKET)
        .key("dir/hello.txt")
        .send()
        .await
        .unwrap_err();
    assert_eq!(http_status(&err), Some(403));

    s3.shutdown().await;
}

#[tokio::test]
async fn if_none_match_star_rejects_second_put_with_412() {
    let (_dir, s3) = server().await;
    let c = client(&s3.endpoint());

    let put = |body: &'static [u8]| {
        c.put_object()
            .bucket(BUCKET)
            .key("commit/marker")
            .if_none_match("*")
            .body(ByteStream::from_static(body))
            .send()
    };
    put(b"first").await.unwrap();
    let err = put(b"second").await.unwrap_err();
    assert_eq!(http_status(&err), Some(412), "{err:?}");
    assert_eq!(err.code(), Some("PreconditionFailed"));
    assert_eq!(get_bytes(&c, "commit/marker").await, b"first");

    // Racing conditional creates: exactly one wins.
    let mut tasks = Vec::new();
    for i in 0..8u8 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            c.put_object()
                .bucket(BUCKET)
                .key("race/marker")
                .if_none_match("*")
                .body(ByteStream::from(vec![i; 256 * 1024]))
                .send()
                .await
                .map(|_| i)
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(i) => winners.push(i),
            Err(err) => assert_eq!(http_status(&err), Some(412), "{err:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    assert_eq!(
        get_bytes(&c, "race/marker").await,
        vec![winners[0]; 256 * 1024]
    );

    // CompleteMultipartUpload honours If-None-Match too.
    let up = c
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("commit/marker")
        .send()
        .await
        .unwrap();
    let upload_id = up.upload_id().unwrap();
    let part = c
        .upload_part()
        .bucket(BUCKET)
        .key("commit/marker")
        .upload_id(upload_id)
        .part_number(1)
        .body(ByteStream::from_static(b"mp"))
        .send()
        .await
        .unwrap();
    let err = c
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key("commit/marker")
        .upload_id(upload_id)
        .if_none_match("*")
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(part.e_tag().unwrap())
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(http_status(&err), Some(412), "{err:?}");
    assert_eq!(get_bytes(&c, "commit/marker").await, b"first");

    s3.shutdown().await;
}

type ChunkStream = std::pin::Pin<
    Box<
        dyn futures::Stream<Item = Result<hyper::body::Frame<bytes::Bytes>, std::io::Error>> + Send,
    >,
>;

/// A body of unknown length (so hyper sends it with `Transfer-Encoding: chunked`).
fn chunk_stream(chunks: Vec<Vec<u8>>) -> ChunkStream {
    Box::pin(futures::stream::iter(
        chunks
            .into_iter()
            .map(|c| Ok(hyper::body::Frame::data(bytes::Bytes::from(c)))),
    ))
}

/// Starts a multipart upload of `key` and uploads `parts` (numbered from 1): its upload id
/// and the part list to complete it with.
async fn upload_parts(c: &Client, key: &str, parts: &[Vec<u8>]) -> (String, Vec<CompletedPart>) {
    let up = c
        .create_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .unwrap();
    let upload_id = up.upload_id().unwrap().to_owned();
    let mut completed = Vec::new();
    for (i, data) in parts.iter().enumerate() {
        let n = i32::try_from(i + 1).unwrap();
        let out = c
            .upload_part()
            .bucket(BUCKET)
            .key(key)
            .upload_id(&upload_id)
            .part_number(n)
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap();
        completed.push(
            CompletedPart::builder()
                .part_number(n)
                .e_tag(out.e_tag().unwrap())
                .build(),
        );
    }
    (upload_id, completed)
}

async fn multipart_put(c: &Client, key: &str, parts: &[Vec<u8>]) {
    let (upload_id, completed) = upload_parts(c, key, parts).await;
    let upload_id = upload_id.as_str();
    let listed = c
        .list_multipart_uploads()
        .bucket(BUCKET)
        .prefix(key)
        .send()
        .await
        .unwrap();
    assert!(
        listed
            .uploads()
            .iter()
            .any(|u| u.upload_id() == Some(upload_id) && u.key() == Some(key)),
        "{listed:?}"
    );
    let parts_listed = c
        .list_parts()
        .bucket(BUCKET)
        .key(key)
        .upload_id(upload_id)
        .send()
        .await
        .unwrap();
    assert_eq!(parts_listed.parts().len(), parts.len());
    let done = c
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(completed))
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert!(
        done.e_tag()
            .unwrap()
            .ends_with(&format!("-{}\"", parts.len())),
        "{done:?}"
    );
}

#[tokio::test]
async fn multipart_upload_completes_and_reads_back_exactly() {
    let (_dir, s3) = server().await;
    let c = client(&s3.endpoint());

    let parts = vec![pattern(5 * MIB, 1), pattern(5 * MIB, 2), pattern(1234, 3)];
    multipart_put(&c, "big/object.bin", &parts).await;
    let got = get_bytes(&c, "big/object.bin").await;
    assert_eq!(got.len(), 10 * MIB + 1234);
    assert!(
        got == parts.concat(),
        "multipart object differs from the parts"
    );

    // No upload left in progress.
    let listed = c
        .list_multipart_uploads()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    assert!(listed.uploads().is_empty(), "{listed:?}");

    // A too-small non-last part is rejected.
    let up = c
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("small")
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    let mut done = Vec::new();
    for n in 1..=2 {
        let out = c
            .upload_part()
            .bucket(BUCKET)
            .key("small")
            .upload_id(id)
            .part_number(n)
            .body(ByteStream::from_static(b"tiny"))
            .send()
            .await
            .unwrap();
        done.push(
            CompletedPart::builder()
                .part_number(n)
                .e_tag(out.e_tag().unwrap())
                .build(),
        );
    }
    let err = c
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key("small")
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(done))
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("EntityTooSmall"), "{err:?}");
    // As on S3, the refused complete leaves the upload in progress: it is listed and can
    // be aborted, and its parts are gone after the abort.
    let listed = c
        .list_multipart_uploads()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    let ids: Vec<_> = listed
        .uploads()
        .iter()
        .filter_map(|u| u.upload_id())
        .collect();
    assert_eq!(ids, [id], "{listed:?}");
    c.abort_multipart_upload()
        .bucket(BUCKET)
        .key("small")
        .upload_id(id)
        .send()
        .await
        .unwrap();
    // A complete of an upload no longer in progress is NoSuchUpload (404), as on S3.
    let err = c
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key("small")
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(CompletedPart::builder().part_number(1).e_tag("x").build())
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("NoSuchUpload"), "{err:?}");
    assert_eq!(http_status(&err), Some(404));

    s3.shutdown().await;
}

/// A client that stops waiting for a long complete (a timeout, a reset) must not stop it
/// midway: the object appears whole, and the client's retry of the same complete is
/// answered with that object's ETag. (`s3s-fs` alone forgot the upload first and
/// concatenated the parts inside the request's future, so the interrupted complete left
/// no object and a retry that was refused: the upload was lost.)
#[tokio::test]
async fn a_complete_the_client_stops_waiting_for_still_completes_and_its_retry_gets_the_object() {
    let (_dir, s3) = server().await;
    let c = client(&s3.endpoint());
    let key = "interrupted/complete.bin";

    // 16 parts of 5 MiB and a short last one: concatenating 80 MiB takes long enough to be
    // seen and interrupted midway.
    let mut parts: Vec<Vec<u8>> = (0..16).map(|i| pattern(5 * MIB, 100 + i)).collect();
    parts.push(pattern(4321, 999));
    let (upload_id, completed) = upload_parts(&c, key, &parts).await;
    let body = CompletedMultipartUpload::builder()
        .set_parts(Some(completed))
        .build();

    // The complete, dropped (its connection closed) as soon as the server is writing the
    // object: s3s-fs concatenates the parts into a `.tmp.*.internal.part` file first.
    let first = tokio::spawn(
        c.complete_multipart_upload()
            .bucket(BUCKET)
            .key(key)
            .upload_id(&upload_id)
            .multipart_upload(body.clone())
            .send(),
    );
    let root = s3.root().to_owned();
    let writing = || {
        std::fs::read_dir(&root).unwrap().any(|e| {
            e.unwrap()
                .file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(".tmp.") && n.ends_with(".internal.part"))
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !writing() {
        assert!(
            !first.is_finished(),
            "the complete ended before it could be interrupted: {:?}",
            first.await
        );
        assert!(
            std::time::Instant::now() < deadline,
            "the complete never began"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    first.abort();
    match first.await {
        Err(e) if e.is_cancelled() => {}
        other => panic!("the complete was not interrupted: {other:?}"),
    }

    // The object appears whole, without any further request from the client.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let head = loop {
        match c.head_object().bucket(BUCKET).key(key).send().await {
            Ok(head) => break head,
            Err(err) => {
                assert_eq!(http_status(&err), Some(404), "{err:?}");
                assert!(
                    std::time::Instant::now() < deadline,
                    "the interrupted complete never wrote the object"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    assert!(
        get_bytes(&c, key).await == parts.concat(),
        "object differs from its parts"
    );

    // The retry (what the SDK or the caller does after a timeout) gets the same object.
    let retried = c
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .upload_id(&upload_id)
        .multipart_upload(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(retried.e_tag(), head.e_tag());
    assert!(head.e_tag().unwrap().ends_with("-17\""), "{head:?}");
    // The upload id belongs to its key: the same complete for another key is NoSuchUpload.
    let err = c
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key("another/key.bin")
        .upload_id(&upload_id)
        .multipart_upload(body)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("NoSuchUpload"), "{err:?}");
    let listed = c
        .list_multipart_uploads()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    assert!(listed.uploads().is_empty(), "{listed:?}");

    s3.shutdown().await;
}

#[tokio::test]
async fn abort_multipart_upload_discards_it() {
    let (_dir, s3) = server().await;
    let c = client(&s3.endpoint());

    let up = c
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("aborted")
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    c.upload_part()
        .bucket(BUCKET)
        .key("aborted")
        .upload_id(id)
        .part_number(1)
        .body(ByteStream::from(pattern(MIB, 9)))
        .send()
        .await
        .unwrap();
    let listed = c
        .list_multipart_uploads()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.uploads().len(), 1);

    c.abort_multipart_upload()
        .bucket(BUCKET)
        .key("aborted")
        .upload_id(id)
        .send()
        .await
        .unwrap();

    let listed = c
        .list_multipart_uploads()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    assert!(listed.uploads().is_empty(), "{listed:?}");
    let err = c
        .upload_part()
        .bucket(BUCKET)
        .key("aborted")
        .upload_id(id)
        .part_number(2)
        .body(ByteStream::from_static(b"late"))
        .send()
        .await
        .unwrap_err();
    assert!(http_status(&err).is_some_and(|s| s >= 400), "{err:?}");
    let err = c
        .head_object()
        .bucket(BUCKET)
        .key("aborted")
        .send()
        .await
        .unwrap_err();
    assert_eq!(http_status(&err), Some(404));
    // No part files left behind in the data root.
    let leftovers: Vec<_> = std::fs::read_dir(s3.root())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(".upload"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    s3.shutdown().await;
}

#[tokio::test]
async fn proxy_forwards_large_streaming_and_aws_chunked_bodies() {
    let (_dir, s3) = server().await;
    let proxy = FaultProxy::start(s3.addr(), FaultConfig::default())
        .await
        .unwrap();
    assert_ne!(proxy.endpoint(), s3.endpoint());
    let c = client(&proxy.endpoint());

    // 8 MiB part + small last part through the proxy.
    let parts = vec![pattern(8 * MIB, 4), pattern(100, 5)];
    multipart_put(&c, "via-proxy/mp.bin", &parts).await;
    assert!(get_bytes(&c, "via-proxy/mp.bin").await == parts.concat());

    // HEAD keeps its Content-Length through the proxy.
    let head = c
        .head_object()
        .bucket(BUCKET)
        .key("via-proxy/mp.bin")
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.content_length(),
        Some(i64::try_from(8 * MIB + 100).unwrap())
    );

    // `Expect: 100-continue` on a 9 MiB PutObject.
    let big = pattern(9 * MIB, 6);
    c.put_object()
        .bucket(BUCKET)
        .key("via-proxy/expect.bin")
        .body(ByteStream::from(big.clone()))
        .customize()
        .mutate_request(|req| {
            req.headers_mut().insert("expect", "100-continue");
        })
        .send()
        .await
        .unwrap();
    assert!(get_bytes(&c, "via-proxy/expect.bin").await == big);

    // aws-chunked bodies with trailing checksums: what the SDK sends for a
    // streaming body when it computes checksums (its default mode).
    let chunked = client_with(
        &proxy.endpoint(),
        retrying(),
        RequestChecksumCalculation::WhenSupported,
    );
    let body = pattern(3 * MIB + 7, 7);
    let file = _dir.path().join("upload.bin");
    std::fs::write(&file, &body).unwrap();
    chunked
        .put_object()
        .bucket(BUCKET)
        .key("via-proxy/aws-chunked.bin")
        .body(ByteStream::from_path(&file).await.unwrap())
        .customize()
        .mutate_request(|req| {
            assert_eq!(req.headers().get("content-encoding"), Some("aws-chunked"));
        })
        .send()
        .await
        .unwrap();
    assert!(get_bytes(&c, "via-proxy/aws-chunked.bin").await == body);

    // A presigned PUT sent with `Transfer-Encoding: chunked` (no
    // Content-Length) and `Expect: 100-continue` by a plain HTTP client.
    let presigned = c
        .put_object()
        .bucket(BUCKET)
        .key("via-proxy/te-chunked.bin")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).unwrap())
        .await
        .unwrap();
    let chunks: Vec<Vec<u8>> = vec![pattern(MIB, 8), pattern(3 * MIB, 9), pattern(17, 10)];
    let stream = chunk_stream(chunks.clone());
    let mut req = hyper::Request::builder().method("PUT").uri(presigned.uri());
    for (name, value) in presigned.headers() {
        req = req.header(name, value);
    }
    let req = req
        .header("expect", "100-continue")
        .body(http_body_util::StreamBody::new(stream))
        .unwrap();
    let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::StreamBody<ChunkStream>>();
    let resp = http.request(req).await.unwrap();
    let status = resp.status();
    let resp_body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&resp_body));
    assert!(get_bytes(&c, "via-proxy/te-chunked.bin").await == chunks.concat());

    let stats = proxy.stats();
    assert!(stats.requests >= 10, "{stats:?}");
    assert_eq!((stats.slow_downs, stats.resets), (0, 0));

    proxy.shutdown().await;
    s3.shutdown().await;
}

#[tokio::test]
async fn proxy_faults_are_retried_by_the_sdk() {
    let (_dir, s3) = server().await;
    let proxy = FaultProxy::start(
        s3.addr(),
        FaultConfig {
            slow_down_rate: 0.3,
            reset_rate: 0.1,
            fail_all: false,
            seed: 42,
            lose_reply_once: None,
            lose_complete_reply_once: false,
            answer_once: None,
            hang: None,
            throttle: None,
        },
    )
    .await
    .unwrap();
    let c = client(&proxy.endpoint());

    for i in 0..20u32 {
        let key = format!("faulty/{i}");
        let body = pattern(1000 + usize::try_from(i).unwrap() * 100, i);
        c.put_object()
            .bucket(BUCKET)
            .key(&key)
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
        let out = c
            .get_object()
            .bucket(BUCKET)
            .key(&key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("get {key}: {e:?}"));
        assert!(
            out.body.collect().await.unwrap().into_bytes() == body,
            "{key}"
        );
    }
    let stats = proxy.stats();
    assert!(stats.requests > 40, "{stats:?}");
    assert!(stats.slow_downs > 0, "{stats:?}");
    assert!(stats.resets > 0, "{stats:?}");

    proxy.shutdown().await;
    s3.shutdown().await;
}

#[tokio::test]
async fn proxy_fail_all_answers_503_slow_down_and_can_be_switched_off() {
    let (_dir, s3) = server().await;
    let proxy = FaultProxy::start(
        s3.addr(),
        FaultConfig {
            fail_all: true,
            ..FaultConfig::default()
        },
    )
    .await
    .unwrap();
    let c = client_with(
        &proxy.endpoint(),
        RetryConfig::standard()
            .with_max_attempts(2)
            .with_initial_backoff(Duration::from_millis(1))
            .with_max_backoff(Duration::from_millis(5)),
        RequestChecksumCalculation::WhenRequired,
    );

    let err = c
        .put_object()
        .bucket(BUCKET)
        .key("k")
        .body(ByteStream::from(pattern(64 * 1024, 1)))
        .send()
        .await
        .unwrap_err();
    assert_eq!(http_status(&err), Some(503), "{err:?}");
    assert_eq!(err.code(), Some("SlowDown"));
    assert_eq!(err.message(), Some("Please reduce your request rate."));
    let err = c
        .get_object()
        .bucket(BUCKET)
        .key("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!(http_status(&err), Some(503), "{err:?}");
    let err = c.list_objects_v2().bucket(BUCKET).send().await.unwrap_err();
    assert_eq!(err.code(), Some("SlowDown"), "{err:?}");
    let err = c
        .head_object()
        .bucket(BUCKET)
        .key("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!(http_status(&err), Some(503), "{err:?}");

    let stats = proxy.stats();
    assert_eq!(stats.requests, 8, "{stats:?}"); // 4 operations x 2 attempts
    assert_eq!(stats.slow_downs, 8, "{stats:?}");

    proxy.set_config(FaultConfig::default());
    c.put_object()
        .bucket(BUCKET)
        .key("k")
        .body(ByteStream::from_static(b"ok"))
        .send()
        .await
        .unwrap();
    assert_eq!(get_bytes(&c, "k").await, b"ok");

    proxy.shutdown().await;
    s3.shutdown().await;
}

#[tokio::test]
async fn resets_give_the_client_an_error_not_a_hang() {
    let (_dir, s3) = server().await;
    let proxy = FaultProxy::start(
        s3.addr(),
        FaultConfig {
            reset_rate: 1.0,
            ..FaultConfig::default()
        },
    )
    .await
    .unwrap();
    let c = client_with(
        &proxy.endpoint(),
        RetryConfig::disabled(),
        RequestChecksumCalculation::WhenRequired,
    );
    let started = std::time::Instant::now();
    let err = c
        .put_object()
        .bucket(BUCKET)
        .key("k")
        .body(ByteStream::from(pattern(2 * MIB, 3)))
        .send()
        .await
        .unwrap_err();
    assert!(matches!(err, SdkError::DispatchFailure(_)), "{err:?}");
    let err = c
        .get_object()
        .bucket(BUCKET)
        .key("k")
        .send()
        .await
        .unwrap_err();
    assert!(matches!(err, SdkError::DispatchFailure(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(proxy.stats().resets, 2);

    proxy.shutdown().await;
    s3.shutdown().await;
}

/// GET with `If-Match`: the named version is served (whole or a range); another
/// version's ETag is 412 `PreconditionFailed`, as on S3.
#[tokio::test]
async fn get_with_if_match_serves_only_the_named_version() {
    let (_dir, s3) = server().await;
    let c = client(&s3.endpoint());
    let put = |body: &'static [u8]| {
        c.put_object()
            .bucket(BUCKET)
            .key("v/obj")
            .body(ByteStream::from_static(body))
            .send()
    };
    let first = put(b"version one")
        .await
        .unwrap()
        .e_tag()
        .unwrap()
        .to_string();
    let got = c
        .get_object()
        .bucket(BUCKET)
        .key("v/obj")
        .if_match(&first)
        .range("bytes=8-")
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().as_ref(),
        b"one"
    );
    let second = put(b"version two")
        .await
        .unwrap()
        .e_tag()
        .unwrap()
        .to_string();
    assert_ne!(first, second);
    let err = c
        .get_object()
        .bucket(BUCKET)
        .key("v/obj")
        .if_match(&first)
        .send()
        .await
        .unwrap_err();
    assert_eq!(http_status(&err), Some(412), "{err:?}");
    assert_eq!(err.code(), Some("PreconditionFailed"));
    // The precondition comes before the range: a range past the new, shorter object is
    // still 412 (not 416) for the old version.
    let third = put(b"v3").await.unwrap().e_tag().unwrap().to_string();
    let err = c
        .get_object()
        .bucket(BUCKET)
        .key("v/obj")
        .if_match(&second)
        .range("bytes=8-")
        .send()
        .await
        .unwrap_err();
    assert_eq!(http_status(&err), Some(412), "{err:?}");
    let second = third;
    let now = c
        .get_object()
        .bucket(BUCKET)
        .key("v/obj")
        .if_match(&second)
        .send()
        .await
        .unwrap();
    assert_eq!(
        now.body.collect().await.unwrap().into_bytes().as_ref(),
        b"v3"
    );
    let any = c
        .get_object()
        .bucket(BUCKET)
        .key("v/obj")
        .if_match("*")
        .send()
        .await;
    assert!(any.is_ok(), "{any:?}");
}

/// Ranged and whole reads of an object larger than the server's read chunk (1 MiB) give
/// exactly its bytes: the first and last byte, a range across a chunk boundary, an
/// open-ended range, a suffix range, a range past the end (cut at the end) and the whole.
#[tokio::test]
async fn ranged_reads_of_a_large_object_are_exact() {
    let (_dir, s3) = server().await;
    let c = client(&s3.endpoint());
    let len = (1 << 20) * 3 + 12_345;
    let body = pattern(len, 7);
    c.put_object()
        .bucket(BUCKET)
        .key("ranges/big.bin")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap();
    let get = |range: Option<String>| {
        let c = c.clone();
        async move {
            let out = c
                .get_object()
                .bucket(BUCKET)
                .key("ranges/big.bin")
                .set_range(range)
                .send()
                .await
                .unwrap();
            let length = out.content_length().unwrap();
            let bytes = out.body.collect().await.unwrap().into_bytes().to_vec();
            assert_eq!(length, bytes.len() as i64);
            bytes
        }
    };
    assert_eq!(get(None).await, body);
    let mib = 1 << 20;
    for (range, want) in [
        ("bytes=0-0".to_string(), &body[..1]),
        (format!("bytes={}-{}", len - 1, len - 1), &body[len - 1..]),
        (
            format!("bytes={}-{}", mib - 3, mib + 2),
            &body[mib - 3..mib + 3],
        ),
        (
            format!("bytes={}-{}", 5, 2 * mib + 17),
            &body[5..2 * mib + 18],
        ),
        (format!("bytes={}-", 2 * mib + 1), &body[2 * mib + 1..]),
        ("bytes=-1000".to_string(), &body[len - 1000..]),
        (
            format!("bytes={}-{}", len - 10, len + 100),
            &body[len - 10..],
        ),
    ] {
        assert_eq!(get(Some(range.clone())).await, want, "{range}");
    }
}
