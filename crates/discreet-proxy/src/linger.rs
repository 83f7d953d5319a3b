//! A lingering close for caller connections, as nginx's `lingering_close`.
//!
//! When the gateway ends a connection while the caller is still sending (a header list
//! far over the limit: GOAWAY, then close), closing the socket with unread bytes in it
//! makes the kernel answer with a TCP reset instead of a FIN, and a reset can arrive
//! before the caller has read the GOAWAY, which is then lost: the caller sees "connection
//! reset" with no reason. So the socket outlives hyper's use of it: when hyper drops it,
//! a task sends FIN and reads and discards what the caller still sends, for a short while.
//!
//! The same holds at shutdown: a drained connection's last frames (a stream's final
//! messages and trailers, the GOAWAY) may still sit in the caller's receive buffer when
//! hyper lets go of the socket, while the caller keeps sending WINDOW_UPDATEs. Ending the
//! serving thread's runtime then would cancel the lingering close, reset the connection
//! and discard those frames at the caller. So each thread's drain also waits for its
//! lingering closes ([`Lingering::finished`]).
use std::{
    convert::Infallible,
    io,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf},
    net::TcpStream,
    sync::mpsc,
};

/// Longest a closed connection is drained.
const LINGER_FOR: Duration = Duration::from_secs(2);
/// Most bytes read and discarded while lingering.
const LINGER_BYTES: usize = 1024 * 1024;

/// The lingering closes of one serving thread, so that its drain can wait for them.
///
/// Each [`LingeringStream`] holds a sender until its lingering close ends; no message is
/// ever sent (`Infallible`): the receiver learns that all have ended when the channel
/// closes.
#[derive(Debug)]
pub(crate) struct Lingering {
    held: mpsc::Sender<Infallible>,
    ended: mpsc::Receiver<Infallible>,
}

impl Default for Lingering {
    fn default() -> Self {
        let (held, ended) = mpsc::channel(1);
        Lingering { held, ended }
    }
}

impl Lingering {
    /// Wraps a caller's connection so that its close lingers and is counted here.
    pub(crate) fn stream(&self, stream: TcpStream) -> LingeringStream {
        LingeringStream(Some((stream, self.held.clone())))
    }

    /// Resolves once every stream made by [`Lingering::stream`] has been dropped and has
    /// finished lingering (each lingers at most [`LINGER_FOR`]).
    pub(crate) async fn finished(self) {
        let Lingering { held, mut ended } = self;
        drop(held);
        // `None` once the last sender is gone; no value is ever sent.
        while ended.recv().await.is_some() {}
    }
}

/// A caller's TCP connection that lingers when dropped (see the module).
#[derive(Debug)]
pub(crate) struct LingeringStream(Option<(TcpStream, mpsc::Sender<Infallible>)>);

impl LingeringStream {
    fn inner(&mut self) -> io::Result<Pin<&mut TcpStream>> {
        self.0
            .as_mut()
            .map(|(stream, _)| Pin::new(stream))
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
    }
}

impl Drop for LingeringStream {
    fn drop(&mut self) {
        let Some((stream, held)) = self.0.take() else {
            return;
        };
        // Outside a runtime (it is shutting down) there is nothing to linger on.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                linger(stream).await;
                drop(held);
            });
        }
    }
}

async fn linger(mut stream: TcpStream) {
    // Our side is done: FIN (a no-op if HTTP/2 already shut the write side down).
    let _ = stream.shutdown().await;
    let mut buf = [0u8; 8192];
    let mut read = 0;
    let _ = tokio::time::timeout(LINGER_FOR, async {
        while read < LINGER_BYTES {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => read += n,
            }
        }
    })
    .await;
}

impl AsyncRead for LingeringStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut().inner() {
            Ok(s) => s.poll_read(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncWrite for LingeringStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().inner() {
            Ok(s) => s.poll_write(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().inner() {
            Ok(s) => s.poll_write_vectored(cx, bufs),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.0
            .as_ref()
            .is_some_and(|(stream, _)| stream.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().inner() {
            Ok(s) => s.poll_flush(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().inner() {
            Ok(s) => s.poll_shutdown(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// The server answers and closes while the caller's bytes are still unread, as after
    /// a GOAWAY for an oversized header list: the caller must still read the answer.
    async fn answer_after_close(linger: bool) -> io::Result<Vec<u8>> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        client.write_all(&[7u8; 64 * 1024]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        if linger {
            let mut server = Lingering::default().stream(server);
            server.write_all(b"GOAWAY").await.unwrap();
            drop(server);
        } else {
            let mut server = server;
            server.write_all(b"GOAWAY").await.unwrap();
            drop(server);
        }
        // The caller reads only after the close.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.map(|_| answer)
    }

    #[tokio::test]
    async fn a_closed_connection_still_delivers_its_last_words() {
        assert_eq!(answer_after_close(true).await.unwrap(), b"GOAWAY");
        // The reason for all this: a plain close with unread bytes resets the connection,
        // and the answer is lost.
        assert!(answer_after_close(false).await.is_err());
    }

    #[tokio::test]
    async fn a_drain_waits_for_the_lingering_closes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let lingering = Lingering::default();
        drop(lingering.stream(server));
        let mut finished = Box::pin(lingering.finished());
        // The caller still has the connection open: the close is lingering.
        assert!(
            tokio::time::timeout(Duration::from_millis(300), &mut finished)
                .await
                .is_err(),
            "the drain ended before the lingering close"
        );
        // The caller reads the FIN and closes: the lingering close, and the wait, end.
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.unwrap();
        drop(client);
        tokio::time::timeout(Duration::from_secs(5), finished)
            .await
            .expect("the drain ends once the lingering close has");
    }
}
