//! The live log: `GET /v1/events/stream` as server-sent events, read off a raw socket.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::common::{dev_server, message};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_arrive_as_they_happen_and_shutdown_ends_the_stream() {
    let mut api = dev_server("");
    let addr = api.server.base_url.trim_start_matches("http://").to_owned();
    // Something before the stream opens: it must not be replayed.
    assert_eq!(
        api.post("/v1/messages", &message(&["before@example.com"]))
            .await
            .0,
        202
    );
    for _ in 0..200 {
        let (_, d) = api.get("/v1/events?type=delivered").await;
        if d["items"].as_array().is_some_and(|i| !i.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let tcp = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let (read, mut write) = tcp.into_split();
    write
        .write_all(format!("GET /v1/events/stream?type=accepted,delivered HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nAccept: text/event-stream\r\n\r\n", api.key).as_bytes())
        .await
        .expect("request");
    let mut lines = BufReader::new(read).lines();
    let status = lines.next_line().await.expect("read").expect("status line");
    assert!(status.contains(" 200 "), "{status}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, sent) = api
        .post("/v1/messages", &message(&["live@example.com"]))
        .await;
    let id = sent["id"].as_str().expect("id").to_owned();

    let mut seen = Vec::new();
    let read_events = async {
        while let Some(line) = lines.next_line().await.expect("read") {
            if let Some(data) = line
                .strip_prefix("data: ")
                .or_else(|| line.strip_prefix("data:"))
            {
                let v: Value = serde_json::from_str(data).expect("JSON event");
                seen.push((
                    v["type"].as_str().unwrap_or_default().to_owned(),
                    v["recipient"].as_str().unwrap_or_default().to_owned(),
                    v["message_id"] == id.as_str(),
                ));
                if seen.len() == 2 {
                    break;
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read_events)
        .await
        .expect("two events within 20 s");
    assert_eq!(
        seen,
        [
            ("accepted".to_owned(), "live@example.com".to_owned(), true),
            ("delivered".to_owned(), "live@example.com".to_owned(), true)
        ]
    );

    // An open stream does not hold up a graceful stop.
    assert_eq!(api.server.terminate(), Some(0));
}
