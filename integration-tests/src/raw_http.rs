//! One HTTP/1.1 connection over a plain TCP socket, for tests that must control exactly
//! which connections are open (reqwest pools them) or send heads a client library refuses.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A keep-alive connection to a node.
pub struct RawConnection {
    reader: BufReader<TcpStream>,
}

/// An answer read off a [`RawConnection`].
#[derive(Debug)]
pub struct RawResponse {
    /// HTTP status.
    pub status: u16,
    /// Header names (lowercase) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body as text.
    pub body: String,
}

impl RawResponse {
    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The body parsed as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

impl RawConnection {
    /// Connects to `base` (`http://IP:PORT`).
    pub fn open(base: &str) -> io::Result<RawConnection> {
        let address = base.trim_start_matches("http://");
        let stream = TcpStream::connect(address)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(RawConnection {
            reader: BufReader::new(stream),
        })
    }

    /// Sends `GET path` with `headers` and reads the answer.
    pub fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> io::Result<RawResponse> {
        let mut head = format!("GET {path} HTTP/1.1\r\nhost: test\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        self.reader.get_mut().write_all(head.as_bytes())?;
        self.read_response()
    }

    /// Sends raw bytes (a head, or part of a body) and reads nothing.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.reader.get_mut().write_all(bytes)
    }

    /// A second handle on the socket, to keep writing from another thread while this one
    /// waits for the answer.
    pub fn writer(&self) -> io::Result<TcpStream> {
        self.reader.get_ref().try_clone()
    }

    /// Reads one answer to what was sent with [`RawConnection::send`].
    pub fn read_answer(&mut self) -> io::Result<RawResponse> {
        self.read_response()
    }

    /// Reads the status line and headers of a streamed answer (an SSE tail), leaving its
    /// body unread.
    pub fn read_head(&mut self) -> io::Result<(u16, Vec<String>)> {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "closed mid-head",
                ));
            }
            let line = line.trim_end().to_owned();
            if line.is_empty() {
                break;
            }
            lines.push(line);
        }
        let status = lines
            .first()
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|code| code.parse().ok())
            .unwrap_or(0);
        Ok((status, lines))
    }

    fn read_response(&mut self) -> io::Result<RawResponse> {
        let mut status_line = String::new();
        if self.reader.read_line(&mut status_line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection before answering",
            ));
        }
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("not an HTTP status line: {status_line:?}"),
                )
            })?;
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line)?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
            }
        }
        let length = headers
            .iter()
            .find(|(name, _)| name == "content-length")
            .and_then(|(_, value)| value.parse::<usize>().ok());
        let mut body = Vec::new();
        match length {
            Some(length) => {
                body.resize(length, 0);
                self.reader.read_exact(&mut body)?;
            }
            None => {
                self.reader.read_to_end(&mut body)?;
            }
        }
        Ok(RawResponse {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }

    /// Whether the server has closed the connection (a read sees end of file), waiting at
    /// most `timeout` for it.
    pub fn closed_by_server(&mut self, timeout: Duration) -> bool {
        let _ = self.reader.get_ref().set_read_timeout(Some(timeout));
        let mut byte = [0u8; 1];
        matches!(self.reader.read(&mut byte), Ok(0))
    }
}
