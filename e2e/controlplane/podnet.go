package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
)

// podNetwork is how the API server reaches pods: its "cluster" egress (pods/proxy,
// services/proxy) goes through this HTTP CONNECT proxy, as real clusters send it through
// konnectivity. Simulated pods have no process behind them; a test names a host process that
// stands in for a pod's container port in DIR/pod-ports, one line each:
//
//	<namespace> <label selector> <container port> <host port>
//
// A CONNECT to a pod IP and port is carried to 127.0.0.1:<host port> when the pod with that
// IP is in the namespace, matches the selector and the port is the one named (the last such
// line wins); anything else is refused, as an unreachable pod would be.
type podNetwork struct {
	dir    string
	client atomic.Pointer[kubernetes.Clientset]
}

// listen opens the proxy's Unix socket: the API server's CONNECT over TCP needs TLS, over a
// socket it does not. A socket path has a short limit, so a long state directory's goes to /tmp.
func listen(dir string) (net.Listener, error) {
	path := filepath.Join(dir, "podnet.sock")
	if len(path) > 100 {
		path = filepath.Join(os.TempDir(), fmt.Sprintf("podnet-%d.sock", os.Getpid()))
	}
	_ = os.Remove(path)
	return net.Listen("unix", path)
}

// egressConfig writes the API server's egress selector configuration pointing at the proxy
// listening on ln, and returns its path.
func egressConfig(dir string, ln net.Listener) (string, error) {
	path := filepath.Join(dir, "egress-selector.yaml")
	text := fmt.Sprintf(`apiVersion: apiserver.k8s.io/v1beta1
kind: EgressSelectorConfiguration
egressSelections:
- name: cluster
  connection:
    proxyProtocol: HTTPConnect
    transport:
      uds:
        udsName: %s
`, ln.Addr().String())
	return path, os.WriteFile(path, []byte(text), 0o600)
}

// serve accepts CONNECTs until ctx ends.
func (p *podNetwork) serve(ctx context.Context, ln net.Listener) {
	go func() {
		<-ctx.Done()
		_ = ln.Close()
	}()
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		go p.tunnel(ctx, conn)
	}
}

func (p *podNetwork) tunnel(ctx context.Context, conn net.Conn) {
	defer conn.Close()
	req, err := http.ReadRequest(bufio.NewReader(conn))
	if err != nil || req.Method != http.MethodConnect {
		fmt.Fprint(conn, "HTTP/1.1 405 Method Not Allowed\r\n\r\n")
		return
	}
	target, err := p.route(ctx, req.Host)
	if err != nil {
		fmt.Fprintf(conn, "HTTP/1.1 502 Bad Gateway\r\nX-Reason: %s\r\n\r\n", strings.ReplaceAll(err.Error(), "\n", " "))
		return
	}
	up, err := net.DialTimeout("tcp", target, 5*time.Second)
	if err != nil {
		fmt.Fprint(conn, "HTTP/1.1 502 Bad Gateway\r\n\r\n")
		return
	}
	defer up.Close()
	fmt.Fprint(conn, "HTTP/1.1 200 Connection established\r\n\r\n")
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, conn); done <- struct{}{} }()
	go func() { _, _ = io.Copy(conn, up); done <- struct{}{} }()
	<-done
}

// route finds the host address standing in for pod address addr (ip:port).
func (p *podNetwork) route(ctx context.Context, addr string) (string, error) {
	ip, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	client := p.client.Load()
	if client == nil {
		return "", fmt.Errorf("not ready")
	}
	pods, err := client.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "status.podIP=" + ip})
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(filepath.Join(p.dir, "pod-ports"))
	if err != nil {
		return "", fmt.Errorf("no pod-ports")
	}
	// The last line naming a pod wins: a restarted process appends its new port.
	lines := strings.Split(string(b), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		f := strings.Fields(lines[i])
		if len(f) != 4 || f[2] != port {
			continue
		}
		sel, err := labels.Parse(f[1])
		if err != nil {
			continue
		}
		for _, pod := range pods.Items {
			if pod.Namespace == f[0] && pod.DeletionTimestamp == nil && sel.Matches(labels.Set(pod.Labels)) {
				if _, err := strconv.Atoi(f[3]); err == nil {
					return net.JoinHostPort("127.0.0.1", f[3]), nil
				}
			}
		}
	}
	return "", fmt.Errorf("no process stands in for %s", addr)
}
