//! Criterion benchmarks for the request-side hot paths of ferrocorn-h1: request heads per
//! second (whole, in two pieces, and one byte at a time) and chunked-body throughput.
//!
//! Owns only measurements; it asserts each input parses, so a broken parser cannot post
//! flattering numbers, but correctness itself is the unit and conformance tests' job.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ferrocorn_h1::{parse_head, ChunkedDecoder, HeadParser, ParserConfig};

/// A browser's GET: 11 header fields, about 600 bytes (checked in `heads`).
const BROWSER_GET: &[u8] = b"GET /static/css/site.min.css?v=4.2.1 HTTP/1.1\r\n\
Host: www.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: text/css,*/*;q=0.1\r\n\
Accept-Language: en-GB,en;q=0.7,fr;q=0.3\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Referer: https://www.example.com/articles/2024/sans-io-http-parsing\r\n\
Connection: keep-alive\r\n\
Cookie: session=8f14e45fceea167a5a36dedd4bea2543; theme=dark; consent=1; _ga=GA1.2.1234567890.1700000000; lang=en-GB; tz=Europe%2FLondon\r\n\
Sec-Fetch-Dest: style\r\n\
Sec-Fetch-Mode: no-cors\r\n\
If-None-Match: \"5d8c72a5edda8d6a:3239\"\r\n\
\r\n";

const BODY_LEN: usize = 1 << 20;
const CHUNK_LEN: usize = 16 << 10;
/// Gunicorn's socket read size, the piece size a worker hands the decoder.
const READ_LEN: usize = 8 << 10;

fn chunked_wire() -> (Vec<u8>, Vec<u8>) {
    let body: Vec<u8> = (0..BODY_LEN).map(|i| (i % 251) as u8).collect();
    let mut wire = Vec::with_capacity(BODY_LEN + BODY_LEN / CHUNK_LEN * 10 + 5);
    for chunk in body.chunks(CHUNK_LEN) {
        wire.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        wire.extend_from_slice(chunk);
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"0\r\n\r\n");
    (wire, body)
}

fn heads(c: &mut Criterion) {
    let cfg = ParserConfig::default();
    let (head, used) = parse_head(BROWSER_GET, &cfg, false)
        .expect("the browser GET parses")
        .expect("the browser GET is complete");
    assert_eq!((used, head.headers.len()), (BROWSER_GET.len(), 11));
    assert!(
        (560..=640).contains(&used),
        "the browser GET is {used} bytes"
    );
    let half = BROWSER_GET.len() / 2;
    let mut parser = HeadParser::new();
    assert_eq!(parser.parse(&BROWSER_GET[..half], &cfg, false), Ok(None));
    assert_eq!(
        parser.parse(BROWSER_GET, &cfg, false),
        Ok(Some((head, used)))
    );

    let mut group = c.benchmark_group("request_head");
    group.throughput(Throughput::Elements(1));
    group.bench_function("browser_get_whole", |b| {
        b.iter(|| parse_head(black_box(BROWSER_GET), &cfg, false))
    });
    group.bench_function("browser_get_two_pieces", |b| {
        b.iter(|| {
            let first = parser.parse(black_box(&BROWSER_GET[..half]), &cfg, false);
            (first, parser.parse(black_box(BROWSER_GET), &cfg, false))
        })
    });
    // A slow client: the incremental parser should cost about the same per byte as a whole parse.
    group.bench_function("browser_get_byte_by_byte", |b| {
        b.iter(|| {
            let mut last = Ok(None);
            for end in 1..=BROWSER_GET.len() {
                last = parser.parse(black_box(&BROWSER_GET[..end]), &cfg, false);
            }
            last
        })
    });
    group.finish();
}

fn chunked(c: &mut Criterion) {
    let cfg = ParserConfig::default();
    let (wire, body) = chunked_wire();
    let mut out = Vec::with_capacity(BODY_LEN);
    let mut decoder = ChunkedDecoder::new(&cfg);
    assert_eq!(decoder.decode(&wire, &mut out), Ok(wire.len()));
    assert!(decoder.is_done() && out == body);

    let mut group = c.benchmark_group("chunked");
    group.throughput(Throughput::Bytes(BODY_LEN as u64));
    group.bench_function("1MiB_16KiB_chunks_one_buffer", |b| {
        b.iter(|| {
            out.clear();
            let mut decoder = ChunkedDecoder::new(&cfg);
            decoder.decode(black_box(&wire), &mut out)
        })
    });
    group.bench_function("1MiB_16KiB_chunks_8KiB_reads", |b| {
        b.iter(|| {
            out.clear();
            let mut decoder = ChunkedDecoder::new(&cfg);
            let mut used = 0;
            for read in wire.chunks(READ_LEN) {
                used += decoder
                    .decode(black_box(read), &mut out)
                    .expect("a valid body");
            }
            used
        })
    });
    group.finish();
}

fn config() -> Criterion {
    // The machine is shared: shorter runs, still enough samples for a stable median.
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = heads, chunked
}
criterion_main!(benches);
