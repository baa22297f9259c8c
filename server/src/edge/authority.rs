//! Lets every gRPC client in over the Unix socket. Python's grpcio (1.57 and later, what LFV's sample edge clients
//! use), grpc-java and others send the socket's path, %-encoded, as the HTTP/2 `:authority`; the HTTP/2 server
//! under tonic refuses such a request as malformed (`RST_STREAM` with `PROTOCOL_ERROR`) before the agent sees
//! it. So each connection passes through this shim: frames from the client are forwarded unchanged except
//! header blocks, which are decoded (HPACK), given `:authority: localhost` when theirs is not a valid authority,
//! and encoded again; frames to the client are copied as they are. The shim keeps its own HPACK decoder (the
//! client's encoder state) and encoder (the server's decoder state), so it re-encodes every header block,
//! changed or not. A connection that does not start with the HTTP/2 preface is passed through untouched.

use loona_hpack::{Decoder, Encoder};
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// The largest frame the server accepts unless it says otherwise (HTTP/2's default SETTINGS_MAX_FRAME_SIZE).
const MAX_FRAME: usize = 16_384;
/// A header block larger than this is refused (the connection is closed): a few KB is usual.
const MAX_BLOCK: usize = 1 << 20;
/// The authority given to requests whose own is not valid.
const LOCALHOST: &[u8] = b"localhost";

/// Relays one connection between a client and the server end, fixing the client's header blocks.
pub async fn relay<C, S>(client: C, server: S) -> io::Result<()>
where
    C: AsyncRead + AsyncWrite + Unpin,
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut cr, mut cw) = tokio::io::split(client);
    let (mut sr, mut sw) = tokio::io::split(server);
    let up = async {
        let r = upstream(&mut cr, &mut sw).await;
        let _ = sw.shutdown().await;
        r
    };
    let down = async {
        let r = tokio::io::copy(&mut sr, &mut cw).await.map(|_| ());
        let _ = cw.shutdown().await;
        r
    };
    let (a, b) = tokio::join!(up, down);
    a.and(b)
}

async fn upstream<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(r: &mut R, w: &mut W) -> io::Result<()> {
    let mut preface = [0u8; 24];
    let mut got = 0;
    while got < preface.len() {
        let n = r.read(&mut preface[got..]).await?;
        if n == 0 {
            return w.write_all(&preface[..got]).await;
        }
        if preface[got..got + n] != PREFACE[got..got + n] {
            // Not HTTP/2 with prior knowledge: let the server answer it as it will.
            w.write_all(&preface[..got + n]).await?;
            tokio::io::copy(r, w).await?;
            return Ok(());
        }
        got += n;
    }
    w.write_all(&preface).await?;
    let mut decoder = Decoder::new();
    let mut encoder = Encoder::new();
    // A header block being gathered: stream id, END_STREAM, priority fields, fragments so far.
    let mut open: Option<(u32, bool, Option<[u8; 5]>, Vec<u8>)> = None;
    loop {
        let mut head = [0u8; 9];
        match r.read_exact(&mut head).await {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let (kind, flags) = (head[3], head[4]);
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0u8; len];
        r.read_exact(&mut payload).await?;
        match kind {
            HEADERS => {
                if open.is_some() {
                    return Err(invalid("a HEADERS frame inside another header block"));
                }
                let mut body = &payload[..];
                let mut pad = 0usize;
                if flags & PADDED != 0 {
                    pad = *body.first().ok_or_else(|| invalid("a padded HEADERS frame without its pad length"))? as usize;
                    body = &body[1..];
                }
                let mut priority = None;
                if flags & PRIORITY != 0 {
                    if body.len() < 5 {
                        return Err(invalid("a HEADERS frame too short for its priority"));
                    }
                    priority = Some([body[0], body[1], body[2], body[3], body[4]]);
                    body = &body[5..];
                }
                if pad > body.len() {
                    return Err(invalid("a HEADERS frame's padding is longer than the frame"));
                }
                let fragment = body[..body.len() - pad].to_vec();
                open = Some((stream, flags & END_STREAM != 0, priority, fragment));
                if flags & END_HEADERS != 0 {
                    let block = open.take().expect("just set");
                    send_block(w, &mut decoder, &mut encoder, block).await?;
                }
            }
            CONTINUATION => {
                let Some(block) = open.as_mut() else { return Err(invalid("a CONTINUATION frame outside a header block")) };
                if block.0 != stream {
                    return Err(invalid("a CONTINUATION frame of another stream"));
                }
                block.3.extend_from_slice(&payload);
                if block.3.len() > MAX_BLOCK {
                    return Err(invalid("a header block larger than 1 MiB"));
                }
                if flags & END_HEADERS != 0 {
                    let block = open.take().expect("checked");
                    send_block(w, &mut decoder, &mut encoder, block).await?;
                }
            }
            _ => {
                if open.is_some() {
                    return Err(invalid("a frame inside a header block"));
                }
                w.write_all(&head).await?;
                w.write_all(&payload).await?;
            }
        }
    }
}

/// Decodes a header block, fixes its authority, and writes it again as HEADERS (+ CONTINUATION) frames.
async fn send_block<W: AsyncWrite + Unpin>(
    w: &mut W,
    decoder: &mut Decoder<'_>,
    encoder: &mut Encoder<'_>,
    (stream, end_stream, priority, fragment): (u32, bool, Option<[u8; 5]>, Vec<u8>),
) -> io::Result<()> {
    let mut headers = decoder.decode(&fragment).map_err(|e| invalid(&format!("an undecodable header block: {e:?}")))?;
    for (name, value) in headers.iter_mut() {
        if name.as_slice() == b":authority" && http::uri::Authority::try_from(value.as_slice()).is_err() {
            *value = LOCALHOST.to_vec();
        }
    }
    let block = encoder.encode(headers.iter().map(|(n, v)| (n.as_slice(), v.as_slice())));
    let mut first = Vec::with_capacity(5 + block.len().min(MAX_FRAME));
    if let Some(p) = priority {
        first.extend_from_slice(&p);
    }
    let room = MAX_FRAME - first.len();
    let (head, mut rest) = block.split_at(block.len().min(room));
    first.extend_from_slice(head);
    let mut flags = if end_stream { END_STREAM } else { 0 } | if priority.is_some() { PRIORITY } else { 0 };
    if rest.is_empty() {
        flags |= END_HEADERS;
    }
    write_frame(w, HEADERS, flags, stream, &first).await?;
    while !rest.is_empty() {
        let (chunk, after) = rest.split_at(rest.len().min(MAX_FRAME));
        rest = after;
        write_frame(w, CONTINUATION, if rest.is_empty() { END_HEADERS } else { 0 }, stream, chunk).await?;
    }
    Ok(())
}

async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, kind: u8, flags: u8, stream: u32, payload: &[u8]) -> io::Result<()> {
    let len = (payload.len() as u32).to_be_bytes();
    let s = stream.to_be_bytes();
    w.write_all(&[len[1], len[2], len[3], kind, flags, s[0], s[1], s[2], s[3]]).await?;
    w.write_all(payload).await
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("HTTP/2 from the client: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client's request whose authority is a %-encoded socket path reaches the server as `localhost`, with
    /// its other headers, flags and following frames intact; a valid authority is kept.
    #[tokio::test]
    async fn a_socket_path_authority_becomes_localhost() {
        let mut client_enc = Encoder::new();
        let mut out = PREFACE.to_vec();
        let mut frame = |kind: u8, flags: u8, stream: u32, payload: &[u8], out: &mut Vec<u8>| {
            let len = (payload.len() as u32).to_be_bytes();
            out.extend_from_slice(&[len[1], len[2], len[3], kind, flags]);
            out.extend_from_slice(&stream.to_be_bytes());
            out.extend_from_slice(payload);
        };
        frame(0x4, 0, 0, &[], &mut out); // SETTINGS
        let bad: Vec<(&[u8], &[u8])> = vec![(b":method", b"POST"), (b":authority", b"%2Ftmp%2Fa.sock"), (b":path", b"/x")];
        let block = client_enc.encode(bad.iter().copied());
        // Split over HEADERS (padded) + CONTINUATION.
        let mut first = vec![2u8];
        first.extend_from_slice(&block[..3]);
        first.extend_from_slice(&[0, 0]);
        frame(HEADERS, PADDED, 1, &first, &mut out);
        frame(CONTINUATION, END_HEADERS, 1, &block[3..], &mut out);
        frame(0x0, END_STREAM, 1, b"body", &mut out); // DATA
        let good: Vec<(&[u8], &[u8])> = vec![(b":method", b"POST"), (b":authority", b"localhost:50051"), (b":path", b"/y")];
        let block = client_enc.encode(good.iter().copied());
        frame(HEADERS, END_HEADERS | END_STREAM, 3, &block, &mut out);

        let (client, mut client_far) = tokio::io::duplex(1 << 16);
        let (server, mut server_far) = tokio::io::duplex(1 << 16);
        let task = tokio::spawn(relay(client, server));
        client_far.write_all(&out).await.unwrap();
        client_far.shutdown().await.unwrap();
        let mut got = Vec::new();
        server_far.read_to_end(&mut got).await.unwrap();
        drop(server_far);
        drop(client_far);
        let _ = task.await;

        assert_eq!(&got[..24], PREFACE);
        let mut frames = Vec::new();
        let mut rest = &got[24..];
        while !rest.is_empty() {
            let len = u32::from_be_bytes([0, rest[0], rest[1], rest[2]]) as usize;
            frames.push((rest[3], rest[4], rest[9..9 + len].to_vec()));
            rest = &rest[9 + len..];
        }
        let kinds: Vec<(u8, u8)> = frames.iter().map(|f| (f.0, f.1)).collect();
        assert_eq!(kinds, vec![(0x4, 0), (HEADERS, END_HEADERS), (0x0, END_STREAM), (HEADERS, END_HEADERS | END_STREAM)]);
        let mut server_dec = Decoder::new();
        let h1 = server_dec.decode(&frames[1].2).unwrap();
        assert_eq!(h1[1], (b":authority".to_vec(), b"localhost".to_vec()));
        assert_eq!(h1[2], (b":path".to_vec(), b"/x".to_vec()));
        assert_eq!(frames[2].2, b"body");
        let h2 = server_dec.decode(&frames[3].2).unwrap();
        assert_eq!(h2[1], (b":authority".to_vec(), b"localhost:50051".to_vec()));
    }
}
