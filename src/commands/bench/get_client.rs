//! A small HTTP/1.1 GET client for `bench query`: one keep-alive connection per task on a
//! single-threaded runtime, so that the load generator costs the server's machine as
//! little as it can (a blocking client with a thread per connection spent more CPU than
//! the server it measured). It reads responses framed by `Content-Length`, which is how
//! the server answers; anything else is an error rather than a guess. Each request carries
//! the `Authorization` header it was connected with, if any.

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response head (status line and headers) accepted.
const HEAD_BYTES_MAX: usize = 16 << 10;

/// Largest response body accepted.
const BODY_BYTES_MAX: usize = 64 << 20;

/// One keep-alive connection.
pub struct GetClient {
    stream: TcpStream,
    host: String,
    /// `Authorization` value sent with every request.
    authorization: Option<String>,
    /// Bytes read and not consumed yet.
    buf: Vec<u8>,
    request: Vec<u8>,
}

/// The `host:port` of an `http://` base URL.
pub fn authority(base: &str) -> anyhow::Result<String> {
    let Some(rest) = base.strip_prefix("http://") else {
        bail!("--url must start with http:// (got '{base}')");
    };
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        bail!("--url has no host: '{base}'");
    }
    Ok(if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    })
}

impl GetClient {
    pub async fn connect(
        authority: &str,
        authorization: Option<&str>,
    ) -> anyhow::Result<GetClient> {
        let stream = TcpStream::connect(authority)
            .await
            .with_context(|| format!("cannot connect to {authority}"))?;
        stream.set_nodelay(true)?;
        Ok(GetClient {
            stream,
            host: authority.to_string(),
            authorization: authorization.map(str::to_string),
            buf: Vec::with_capacity(8192),
            request: Vec::with_capacity(256),
        })
    }

    /// GETs `path` (with its query string); returns the status code, having read the body.
    pub async fn get(&mut self, path: &str) -> anyhow::Result<u16> {
        self.request.clear();
        self.request.extend_from_slice(b"GET ");
        self.request.extend_from_slice(path.as_bytes());
        self.request.extend_from_slice(b" HTTP/1.1\r\nhost: ");
        self.request.extend_from_slice(self.host.as_bytes());
        if let Some(value) = &self.authorization {
            self.request.extend_from_slice(b"\r\nauthorization: ");
            self.request.extend_from_slice(value.as_bytes());
        }
        self.request.extend_from_slice(b"\r\n\r\n");
        self.stream.write_all(&self.request).await?;
        let head_end = loop {
            if let Some(i) = memchr::memmem::find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            if self.buf.len() > HEAD_BYTES_MAX {
                bail!("the response head is longer than {HEAD_BYTES_MAX} bytes");
            }
            self.fill().await?;
        };
        let (status, length) = parse_head(&self.buf[..head_end])?;
        if length > BODY_BYTES_MAX {
            bail!("the response body is {length} bytes, more than {BODY_BYTES_MAX}");
        }
        while self.buf.len() < head_end + length {
            self.fill().await?;
        }
        self.buf.drain(..head_end + length);
        Ok(status)
    }

    async fn fill(&mut self) -> anyhow::Result<()> {
        let mut chunk = [0u8; 8192];
        let n = self.stream.read(&mut chunk).await?;
        if n == 0 {
            bail!("the server closed the connection mid-response");
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

/// The status code and `Content-Length` of a response head.
fn parse_head(head: &[u8]) -> anyhow::Result<(u16, usize)> {
    let text = std::str::from_utf8(head).context("the response head is not UTF-8")?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .with_context(|| format!("bad status line '{status_line}'"))?;
    let mut length = None;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(
                    value
                        .trim()
                        .parse::<usize>()
                        .context("bad content-length")?,
                );
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                bail!(
                    "the response uses transfer-encoding '{}', not content-length",
                    value.trim()
                );
            }
        }
    }
    let length = length.context("the response has no content-length")?;
    Ok((status, length))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_give_status_and_length() {
        let head = b"HTTP/1.1 404 Not Found\r\nContent-Length: 12\r\nx: y\r\n\r\n";
        assert_eq!(parse_head(head).expect("parses"), (404, 12));
        let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
        assert!(parse_head(chunked).is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\n\r\n").is_err(), "no length");
        assert_eq!(
            authority("http://127.0.0.1:7478/x").expect("ok"),
            "127.0.0.1:7478"
        );
        assert_eq!(authority("http://localhost").expect("ok"), "localhost:80");
        assert!(authority("https://x").is_err());
    }
}
