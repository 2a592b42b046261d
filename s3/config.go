package s3

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/diffute/diffute/media"
)

// URLStyle says how requests address the bucket.
type URLStyle string

// URL styles. Auto lets minio-go choose: virtual-host style for AWS and other hosts
// known to support it, path style otherwise (IP addresses, localhost, most MinIO).
const (
	URLStyleAuto    URLStyle = ""
	URLStylePath    URLStyle = "path"    // https://endpoint/bucket/key
	URLStyleVirtual URLStyle = "virtual" // https://bucket.endpoint/key
)

// DefaultEndpoint is the endpoint used when the URL names none: AWS S3, whose regional
// endpoints minio-go finds from Region or from the bucket's location.
const DefaultEndpoint = "s3.amazonaws.com"

// Config says where the store keeps objects and how to reach it. ParseURL builds one
// from an s3:// URL; Open validates it.
type Config struct {
	Bucket string
	// Prefix is prepended with a "/" to every key; "" stores keys at the bucket's root.
	Prefix string
	// Endpoint is host or host:port, without a scheme.
	Endpoint string
	// Region signs requests; "" asks the server for the bucket's location once.
	Region string
	// Secure selects HTTPS; plain HTTP is for local servers only.
	Secure   bool
	URLStyle URLStyle
	// PublicBase, when set, is the URL under which the prefix is publicly readable
	// (a CDN or a public bucket): URL returns PublicBase + "/" + key instead of a
	// presigned URL, and the ttl is not enforced by anyone.
	PublicBase string
	// CreateBucket lets Open create a missing bucket. Off by default so that a typo in
	// the bucket name fails at start instead of scattering images into a new bucket.
	CreateBucket bool

	AccessKey    string
	SecretKey    string
	SessionToken string // optional, for temporary AWS credentials
}

// String describes c without its secret key or session token, so that logging a
// Config cannot leak them.
func (c Config) String() string {
	q := url.Values{}
	q.Set("endpoint", c.Endpoint)
	if c.Region != "" {
		q.Set("region", c.Region)
	}
	q.Set("secure", strconv.FormatBool(c.Secure))
	if c.URLStyle != URLStyleAuto {
		q.Set("url_style", string(c.URLStyle))
	}
	if c.PublicBase != "" {
		q.Set("public_base", c.PublicBase)
	}
	if c.CreateBucket {
		q.Set("create_bucket", "true")
	}
	u := url.URL{Scheme: "s3", Host: c.Bucket, Path: "/" + c.Prefix, RawQuery: q.Encode()}
	return u.String() + " (access key " + c.AccessKey + ")"
}

// Environment variables ParseURL reads credentials from. The DIFFUTE_S3_ pair wins
// when its access key is set, so that a host whose AWS_ variables serve another tool
// can still point Diffute at a different store.
const (
	EnvAccessKey       = "DIFFUTE_S3_ACCESS_KEY"
	EnvSecretKey       = "DIFFUTE_S3_SECRET_KEY"
	EnvAWSAccessKey    = "AWS_ACCESS_KEY_ID"
	EnvAWSSecretKey    = "AWS_SECRET_ACCESS_KEY"
	EnvAWSSessionToken = "AWS_SESSION_TOKEN"
)

// ParseURL parses a store URL of the form
//
//	s3://bucket/prefix?endpoint=host:port&region=us-east-1&secure=false&url_style=path
//	    &public_base=https://cdn.example.com/media&create_bucket=true
//
// Every query parameter is optional: endpoint defaults to DefaultEndpoint, secure to
// true, url_style to auto (or "path", "virtual"). Credentials never go in the URL
// (it ends up in logs and process listings); they come from getenv: DIFFUTE_S3_ACCESS_KEY
// and DIFFUTE_S3_SECRET_KEY, or else AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and the
// optional AWS_SESSION_TOKEN. Errors name the part of the URL at fault and never
// repeat the URL itself.
func ParseURL(raw string, getenv func(string) string) (Config, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the URL; keep only the reason.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return Config{}, fmt.Errorf("s3: store URL: %w", err)
	}
	if u.Scheme != "s3" {
		return Config{}, fmt.Errorf("s3: store URL: scheme must be s3://, got %q", u.Scheme+":")
	}
	if u.User != nil {
		return Config{}, errors.New("s3: store URL: credentials do not belong in the URL; set " +
			EnvAccessKey + " and " + EnvSecretKey + " (or " + EnvAWSAccessKey + " and " + EnvAWSSecretKey + ")")
	}
	if u.Opaque != "" {
		return Config{}, errors.New("s3: store URL: want s3://bucket/prefix")
	}
	if u.Fragment != "" {
		return Config{}, errors.New("s3: store URL: a fragment (#…) has no meaning here")
	}
	cfg := Config{
		Bucket:   u.Host,
		Prefix:   strings.Trim(u.Path, "/"),
		Endpoint: DefaultEndpoint,
		Secure:   true,
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return Config{}, fmt.Errorf("s3: store URL: query: %w", err)
	}
	for name, vals := range q {
		if len(vals) != 1 {
			return Config{}, fmt.Errorf("s3: store URL: query parameter %q given %d times", name, len(vals))
		}
		v := vals[0]
		switch name {
		case "endpoint":
			cfg.Endpoint = v
		case "region":
			cfg.Region = v
		case "secure":
			cfg.Secure, err = strconv.ParseBool(v)
			if err != nil {
				return Config{}, fmt.Errorf("s3: store URL: secure=%q: want true or false", v)
			}
		case "url_style":
			cfg.URLStyle = URLStyle(v)
			if v == "auto" {
				cfg.URLStyle = URLStyleAuto
			}
		case "public_base":
			cfg.PublicBase = strings.TrimRight(v, "/")
		case "create_bucket":
			cfg.CreateBucket, err = strconv.ParseBool(v)
			if err != nil {
				return Config{}, fmt.Errorf("s3: store URL: create_bucket=%q: want true or false", v)
			}
		default:
			return Config{}, fmt.Errorf("s3: store URL: unknown query parameter %q "+
				"(known: endpoint, region, secure, url_style, public_base, create_bucket)", name)
		}
	}
	if getenv != nil {
		if ak := getenv(EnvAccessKey); ak != "" {
			cfg.AccessKey, cfg.SecretKey = ak, getenv(EnvSecretKey)
		} else {
			cfg.AccessKey, cfg.SecretKey = getenv(EnvAWSAccessKey), getenv(EnvAWSSecretKey)
			cfg.SessionToken = getenv(EnvAWSSessionToken)
		}
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// Validate reports the first problem with c, naming the setting at fault.
func (c Config) Validate() error {
	if c.Bucket == "" {
		return errors.New("s3: bucket: missing (want s3://bucket/prefix)")
	}
	if err := checkBucket(c.Bucket); err != nil {
		return fmt.Errorf("s3: bucket %q: %w", c.Bucket, err)
	}
	if c.Prefix != "" {
		if err := media.CheckKey(c.Prefix); err != nil {
			return fmt.Errorf("s3: prefix %q: %w", c.Prefix, err)
		}
	}
	if err := checkEndpoint(c.Endpoint); err != nil {
		return fmt.Errorf("s3: endpoint %q: %w", c.Endpoint, err)
	}
	switch c.URLStyle {
	case URLStyleAuto, URLStylePath, URLStyleVirtual:
	default:
		return fmt.Errorf("s3: url_style %q: want path, virtual or auto", c.URLStyle)
	}
	if c.PublicBase != "" {
		if err := checkPublicBase(c.PublicBase); err != nil {
			return fmt.Errorf("s3: public_base %q: %w", c.PublicBase, err)
		}
	}
	switch {
	case c.AccessKey == "" && c.SecretKey == "":
		return errors.New("s3: credentials: none found; set " + EnvAccessKey + " and " + EnvSecretKey +
			" (or " + EnvAWSAccessKey + " and " + EnvAWSSecretKey + ")")
	case c.AccessKey == "":
		return errors.New("s3: credentials: secret key set but access key missing")
	case c.SecretKey == "":
		return errors.New("s3: credentials: access key set but secret key missing")
	}
	return nil
}

// checkBucket applies S3's naming rules for new buckets: 3-63 characters of a-z, 0-9,
// '.' and '-', starting and ending with a letter or digit, not an IP address. Older
// buckets may break them, but they cannot be reached in virtual-host style anyway.
func checkBucket(b string) error {
	if len(b) < 3 || len(b) > 63 {
		return errors.New("must be 3-63 characters")
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return errors.New("only a-z, 0-9, '.' and '-' are allowed")
		}
	}
	if !isAlnum(b[0]) || !isAlnum(b[len(b)-1]) {
		return errors.New("must start and end with a letter or digit")
	}
	if strings.Contains(b, "..") {
		return errors.New("must not contain \"..\"")
	}
	if net.ParseIP(b) != nil {
		return errors.New("must not be an IP address")
	}
	return nil
}

func isAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

func checkEndpoint(ep string) error {
	if ep == "" {
		return errors.New("missing")
	}
	if strings.Contains(ep, "://") {
		return errors.New("want host[:port] without a scheme (secure=false selects plain HTTP)")
	}
	if strings.ContainsAny(ep, "/?#@ ") {
		return errors.New("want host[:port], without a path, query or user")
	}
	host := ep
	if h, port, err := net.SplitHostPort(ep); err == nil {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("port %q is not a number in 1-65535", port)
		}
		host = h
	} else if strings.Contains(ep, ":") && !strings.HasPrefix(ep, "[") {
		return fmt.Errorf("want host[:port]: %w", err)
	}
	if host == "" {
		return errors.New("host missing")
	}
	return nil
}

func checkPublicBase(b string) error {
	u, err := url.Parse(b)
	if err != nil {
		return errors.New("not a URL")
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return errors.New("want an absolute http(s) URL")
	}
	if u.Host == "" {
		return errors.New("host missing")
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return errors.New("must not carry a query, fragment or user")
	}
	return nil
}
