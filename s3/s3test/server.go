package s3test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/diffute/diffute/s3"

	"github.com/diffute/diffute/internal/syncbuf"
)

// EnvBinary names the environment variable that, when set, is the versitygw binary
// to run.
const EnvBinary = "DIFFUTE_VERSITYGW"

// Region is the region the server signs for (versitygw's default).
const Region = "us-east-1"

// startTimeout bounds how long a server may take to answer; versitygw needs well
// under a second, but a loaded CI machine running tests in parallel can be slow.
const startTimeout = 30 * time.Second

// Server is a running versitygw. Its root credentials are random for each server.
type Server struct {
	Endpoint  string // host:port on 127.0.0.1
	AccessKey string
	SecretKey string
	Dir       string // the posix backend's root: one directory per bucket
}

// Start runs a versitygw for the test and stops it at cleanup. When the binary is
// missing it skips the test with the command that installs it, or fails it when
// CI=true, so that CI cannot pass by testing nothing.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := findBinary()
	if err != nil {
		msg := fmt.Sprintf("s3test: %v; run scripts/s3-test-server.sh install", err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	s := &Server{
		AccessKey: "diffute-" + randomHex(t, 6),
		SecretKey: randomHex(t, 20),
		Dir:       t.TempDir(),
	}
	// The port is found by listening on :0 and closing, so another process can take it
	// before versitygw binds it; such a start fails fast and is retried on a new port.
	const attempts = 3
	home := t.TempDir() // kept apart from Dir, where every directory is a bucket
	for i := range attempts {
		err = s.start(t, bin, home)
		if err == nil {
			return s
		}
		if !errors.Is(err, errPortTaken) {
			break
		}
		t.Logf("s3test: attempt %d: %v", i+1, err)
	}
	t.Fatalf("s3test: start %s: %v", bin, err)
	return nil
}

// Config returns a store configuration for bucket and prefix on this server, with
// CreateBucket set so that each test can use a bucket of its own.
func (s *Server) Config(bucket, prefix string) s3.Config {
	return s3.Config{
		Bucket:       bucket,
		Prefix:       prefix,
		Endpoint:     s.Endpoint,
		Region:       Region,
		Secure:       false,
		URLStyle:     s3.URLStylePath,
		CreateBucket: true,
		AccessKey:    s.AccessKey,
		SecretKey:    s.SecretKey,
	}
}

// URL returns the store URL for bucket and prefix on this server, for tests that go
// through configuration parsing (s3.ParseURL with Getenv), as the diffute binary does.
func (s *Server) URL(bucket, prefix string) string {
	return "s3://" + bucket + "/" + prefix + "?endpoint=" + s.Endpoint + "&region=" + Region +
		"&secure=false&url_style=path&create_bucket=true"
}

// Getenv answers the credential variables s3.ParseURL reads with this server's root
// keys, and "" for every other name.
func (s *Server) Getenv(name string) string {
	switch name {
	case s3.EnvAccessKey:
		return s.AccessKey
	case s3.EnvSecretKey:
		return s.SecretKey
	}
	return ""
}

// Env returns the credential variables for a child process (a diffute binary under
// test) that reads its store URL with s3.ParseURL and os.Getenv.
func (s *Server) Env() []string {
	return []string{s3.EnvAccessKey + "=" + s.AccessKey, s3.EnvSecretKey + "=" + s.SecretKey}
}

var errPortTaken = errors.New("listen address already in use")

func (s *Server) start(t testing.TB, bin, home string) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	s.Endpoint = net.JoinHostPort("127.0.0.1", port)
	out := &syncBuffer{}
	cmd := exec.Command(bin, "--port", s.Endpoint, "--quiet", "posix", s.Dir)
	// A minimal environment: versitygw reads many VGW_* and AWS-style variables, and
	// the developer's own must not change what the tests run against.
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"ROOT_ACCESS_KEY=" + s.AccessKey,
		"ROOT_SECRET_KEY=" + s.SecretKey,
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	if err := waitReady(s.Endpoint, exited); err != nil {
		stop(cmd, exited)
		if strings.Contains(out.String(), "address already in use") {
			return fmt.Errorf("%w: %s", errPortTaken, s.Endpoint)
		}
		return fmt.Errorf("%w; server output:\n%s", err, out.String())
	}
	t.Cleanup(func() {
		stop(cmd, exited)
		if t.Failed() {
			t.Logf("s3test: versitygw output:\n%s", out.String())
		}
	})
	return nil
}

// waitReady polls the server until it answers HTTP (any status: an unsigned request is
// refused, and that is an answer) or exits.
func waitReady(endpoint string, exited <-chan error) error {
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: time.Second}
	defer client.CloseIdleConnections()
	deadline := time.NewTimer(startTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := client.Get("http://" + endpoint + "/")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("versitygw exited before answering: %w", err)
		case <-deadline.C:
			return fmt.Errorf("versitygw did not answer on %s within %s", endpoint, startTimeout)
		case <-tick.C:
		}
	}
}

// stop asks the server to shut down and kills it if it has not within a few seconds.
// exited must receive cmd.Wait's result.
func stop(cmd *exec.Cmd, exited <-chan error) {
	_ = cmd.Process.Signal(os.Interrupt)
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case <-exited:
	case <-t.C:
		_ = cmd.Process.Kill()
		<-exited
	}
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	_, port, err := net.SplitHostPort(l.Addr().String())
	return port, err
}

var (
	binaryOnce sync.Once
	binaryPath string
	errBinary  error
)

// findBinary looks for versitygw in $DIFFUTE_VERSITYGW, then where `go install` puts
// it ($(go env GOBIN), or the first $(go env GOPATH)/bin), then on PATH.
func findBinary() (string, error) {
	binaryOnce.Do(func() { binaryPath, errBinary = lookBinary() })
	return binaryPath, errBinary
}

func lookBinary() (string, error) {
	if p := os.Getenv(EnvBinary); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", EnvBinary, p, err)
		}
		return p, nil
	}
	var looked []string
	if dir := goBinDir(); dir != "" {
		p := filepath.Join(dir, "versitygw")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
		looked = append(looked, p)
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	looked = append(looked, "PATH")
	return "", fmt.Errorf("versitygw not found (looked at $%s, %s)", EnvBinary, strings.Join(looked, ", "))
}

// goBinDir is where `go install` puts binaries, or "" when go is not at hand.
func goBinDir() string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "env", "GOBIN", "GOPATH").Output()
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) != 2 {
		return ""
	}
	if lines[0] != "" {
		return lines[0]
	}
	if gopath, _, _ := strings.Cut(lines[1], string(os.PathListSeparator)); gopath != "" {
		return filepath.Join(gopath, "bin")
	}
	return ""
}

func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// syncBuffer collects the server's output, written by exec's copying goroutines and
// read by the test.
type syncBuffer = syncbuf.Buffer
