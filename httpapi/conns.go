package httpapi

import (
	"net"
	"sync"
)

// LimitConnsPerClient wraps ln so that one client address holds at most limit
// connections at once; a connection beyond that is closed as soon as it is
// accepted. With a read and an idle timeout on the http.Server, it bounds what
// one client can hold open by trickling bodies or idling keep-alives. limit <= 0
// returns ln unchanged.
func LimitConnsPerClient(ln net.Listener, limit int) net.Listener {
	if limit <= 0 {
		return ln
	}
	return &connLimiter{Listener: ln, max: limit, open: map[string]int{}}
}

type connLimiter struct {
	net.Listener
	max  int
	mu   sync.Mutex
	open map[string]int
}

func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		host := c.RemoteAddr().String()
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		l.mu.Lock()
		if l.open[host] >= l.max {
			l.mu.Unlock()
			c.Close()
			continue
		}
		l.open[host]++
		l.mu.Unlock()
		return &limitedConn{Conn: c, release: func() { l.release(host) }}, nil
	}
}

func (l *connLimiter) release(host string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[host]--; l.open[host] <= 0 {
		delete(l.open, host)
	}
}

type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
