//! A TCP proxy in front of an attached cluster's API server, so that its port can be closed.

use kommander_e2e::free_port;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::{AbortHandle, JoinHandle};

/// A TCP proxy in front of an attached cluster's API server: the operator reaches the cluster
/// through it, so that its port can be closed (connections refused, those open cut) and
/// opened again.
pub struct Proxy {
    pub port: u16,
    pub target: u16,
    accept: Option<JoinHandle<()>>,
    conns: Arc<Mutex<Vec<AbortHandle>>>,
}

impl Proxy {
    pub async fn start(target: u16) -> Proxy {
        let mut p = Proxy {
            port: free_port(),
            target,
            accept: None,
            conns: Arc::default(),
        };
        p.open().await;
        p
    }

    pub async fn open(&mut self) {
        let listener = {
            let start = Instant::now();
            loop {
                let socket = TcpSocket::new_v4().unwrap();
                socket.set_reuseaddr(true).unwrap();
                let bound = socket
                    .bind(([127, 0, 0, 1], self.port).into())
                    .and_then(|()| socket.listen(64));
                match bound {
                    Ok(l) => break l,
                    // The closed listener may take a moment to let the port go.
                    Err(_) if start.elapsed() < Duration::from_secs(5) => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Err(e) => panic!("proxy port {} cannot be opened again: {e}", self.port),
                }
            }
        };
        let (target, conns) = (self.target, self.conns.clone());
        self.accept = Some(tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let pipe = tokio::spawn(async move {
                    if let Ok(mut out) = TcpStream::connect(("127.0.0.1", target)).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
                conns.lock().unwrap().push(pipe.abort_handle());
            }
        }));
    }

    pub fn close(&mut self) {
        if let Some(a) = self.accept.take() {
            a.abort();
        }
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }
}
