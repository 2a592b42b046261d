package main

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// closedWithin reports whether the server closes c within d (a read returns
// EOF or a reset rather than timing out).
func closedWithin(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		return false
	}
	return true
}

// TestSlowAndIdleConnectionsAreCut is the regression test of request bodies
// trickling a byte every few seconds, and idle keep-alives, being held open
// indefinitely, and of connections per client being unbounded.
func TestSlowAndIdleConnectionsAreCut(t *testing.T) {
	t.Parallel()
	srv := startServe(t, "--workers", "0", "--http-read-timeout", "1s", "--http-idle-timeout", "1s", "--max-conns-per-client", "3")
	addr := strings.TrimPrefix(srv.url, "http://")
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}

	// Connections per client: the fourth is closed at once.
	held := []net.Conn{dial(), dial(), dial()}
	time.Sleep(100 * time.Millisecond) // let the server accept the three before the fourth arrives
	if !closedWithin(dial(), 2*time.Second) {
		t.Error("a fourth connection from one client was kept open with --max-conns-per-client 3")
	}
	for _, c := range held {
		c.Close()
	}

	// A body trickling one byte at a time is cut at the read timeout.
	slow := dial()
	if _, err := io.WriteString(slow, "PUT /acme/default/media/inference HTTP/1.1\r\nHost: x\r\nx-api-key: k\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	done := make(chan bool, 1)
	go func() { done <- closedWithin(slow, 6*time.Second) }()
	for range 25 {
		if _, err := slow.Write([]byte(" ")); err != nil {
			break // closed by the server, as it should be
		}
		time.Sleep(200 * time.Millisecond) // the trickle itself
	}
	if !<-done {
		t.Error("a request body trickling a byte per 200 ms was still being read after 6 s with --http-read-timeout 1s")
	}

	// An idle keep-alive is closed at the idle timeout.
	idle := dial()
	if _, err := io.WriteString(idle, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(idle)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if !closedWithin(idle, 5*time.Second) {
		t.Error("an idle keep-alive connection was still open after 5 s with --http-idle-timeout 1s")
	}
}
