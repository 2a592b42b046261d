package s3_test

import (
	"strings"
	"testing"

	"github.com/diffute/diffute/s3"
)

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

var awsEnv = env("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY", "aws-secret")

func TestParseURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		url    string
		getenv func(string) string
		want   s3.Config // compared when wantErr is ""
		// wantErr is a part of the error message: the part of the URL at fault.
		wantErr string
	}{
		{
			name: "defaults", url: "s3://images", getenv: awsEnv,
			want: s3.Config{Bucket: "images", Endpoint: "s3.amazonaws.com", Secure: true,
				AccessKey: "AKIAEXAMPLE", SecretKey: "aws-secret"},
		},
		{
			name: "everything",
			url: "s3://media-bucket/diffute/prod/?endpoint=minio.internal:9000&region=eu-west-3&secure=false" +
				"&public_base=https://cdn.example.com/media/&url_style=path&create_bucket=true",
			getenv: awsEnv,
			want: s3.Config{Bucket: "media-bucket", Prefix: "diffute/prod", Endpoint: "minio.internal:9000",
				Region: "eu-west-3", Secure: false, URLStyle: s3.URLStylePath,
				PublicBase: "https://cdn.example.com/media", CreateBucket: true,
				AccessKey: "AKIAEXAMPLE", SecretKey: "aws-secret"},
		},
		{
			name: "session token", url: "s3://images?url_style=virtual",
			getenv: env("AWS_ACCESS_KEY_ID", "ASIA1", "AWS_SECRET_ACCESS_KEY", "s", "AWS_SESSION_TOKEN", "tok"),
			want: s3.Config{Bucket: "images", Endpoint: "s3.amazonaws.com", Secure: true, URLStyle: s3.URLStyleVirtual,
				AccessKey: "ASIA1", SecretKey: "s", SessionToken: "tok"},
		},
		{
			name: "diffute credentials win", url: "s3://images?endpoint=[::1]:9000&url_style=auto",
			getenv: env("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY", "aws-secret",
				"AWS_SESSION_TOKEN", "aws-token", "DIFFUTE_S3_ACCESS_KEY", "dk", "DIFFUTE_S3_SECRET_KEY", "ds"),
			want: s3.Config{Bucket: "images", Endpoint: "[::1]:9000", Secure: true, AccessKey: "dk", SecretKey: "ds"},
		},
		{name: "missing bucket", url: "s3:///prefix", getenv: awsEnv, wantErr: "bucket: missing"},
		{name: "empty URL", url: "", getenv: awsEnv, wantErr: "scheme must be s3://"},
		{name: "wrong scheme", url: "https://images/prefix", getenv: awsEnv, wantErr: "scheme must be s3://"},
		{name: "opaque", url: "s3:images", getenv: awsEnv, wantErr: "want s3://bucket/prefix"},
		{name: "bucket with capitals", url: "s3://Images", getenv: awsEnv, wantErr: `bucket "Images"`},
		{name: "bucket too short", url: "s3://ab", getenv: awsEnv, wantErr: "3-63 characters"},
		{name: "bucket is an IP", url: "s3://10.0.0.1", getenv: awsEnv, wantErr: "IP address"},
		{name: "prefix with dot-dot", url: "s3://images/a/../b", getenv: awsEnv, wantErr: "prefix"},
		{name: "prefix with space", url: "s3://images/a%20b", getenv: awsEnv, wantErr: "prefix"},
		{name: "endpoint with scheme", url: "s3://images?endpoint=http://minio:9000", getenv: awsEnv,
			wantErr: "endpoint"},
		{name: "endpoint bad port", url: "s3://images?endpoint=minio:http", getenv: awsEnv,
			wantErr: `endpoint "minio:http": port`},
		{name: "endpoint port out of range", url: "s3://images?endpoint=minio:70000", getenv: awsEnv,
			wantErr: "endpoint"},
		{name: "endpoint with path", url: "s3://images?endpoint=minio:9000/x", getenv: awsEnv, wantErr: "endpoint"},
		{name: "endpoint empty", url: "s3://images?endpoint=", getenv: awsEnv, wantErr: "endpoint"},
		{name: "endpoint no host", url: "s3://images?endpoint=:9000", getenv: awsEnv, wantErr: "host missing"},
		{name: "unknown parameter", url: "s3://images?endpont=minio:9000", getenv: awsEnv,
			wantErr: `unknown query parameter "endpont"`},
		{name: "repeated parameter", url: "s3://images?region=a&region=b", getenv: awsEnv, wantErr: `"region" given 2 times`},
		{name: "bad secure", url: "s3://images?secure=maybe", getenv: awsEnv, wantErr: "secure="},
		{name: "bad create_bucket", url: "s3://images?create_bucket=please", getenv: awsEnv, wantErr: "create_bucket="},
		{name: "bad url_style", url: "s3://images?url_style=dns", getenv: awsEnv, wantErr: "url_style"},
		{name: "relative public_base", url: "s3://images?public_base=/media", getenv: awsEnv, wantErr: "public_base"},
		{name: "public_base with query", url: "s3://images?public_base=" + "https://cdn.example.com/m%3Fa%3Db",
			getenv: awsEnv, wantErr: "public_base"},
		{name: "fragment", url: "s3://images#x", getenv: awsEnv, wantErr: "fragment"},
		{name: "credentials in URL", url: "s3://AKIA:topsecret@images", getenv: awsEnv, wantErr: "credentials do not belong"},
		{name: "no credentials", url: "s3://images", getenv: env(), wantErr: "credentials: none found"},
		{name: "no secret", url: "s3://images", getenv: env("AWS_ACCESS_KEY_ID", "AKIA"), wantErr: "secret key missing"},
		{name: "diffute pair without secret", url: "s3://images",
			getenv: env("DIFFUTE_S3_ACCESS_KEY", "dk", "AWS_SECRET_ACCESS_KEY", "aws-secret"), wantErr: "secret key missing"},
		{name: "no access key", url: "s3://images", getenv: env("AWS_SECRET_ACCESS_KEY", "s"), wantErr: "access key missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := s3.ParseURL(tc.url, tc.getenv)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseURL(%q) = %+v, want an error containing %q", tc.url, got, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseURL(%q) error %q does not contain %q", tc.url, err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "topsecret") {
					t.Fatalf("error %q repeats a secret from the URL", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseURL(%q): %v", tc.url, err)
			}
			if got != tc.want {
				t.Errorf("ParseURL(%q)\n got  %+v\n want %+v", tc.url, got, tc.want)
			}
		})
	}
}

func TestConfigStringHidesSecrets(t *testing.T) {
	t.Parallel()
	cfg, err := s3.ParseURL("s3://images/p?endpoint=minio:9000",
		env("AWS_ACCESS_KEY_ID", "AKIAVISIBLE", "AWS_SECRET_ACCESS_KEY", "very-secret", "AWS_SESSION_TOKEN", "tok-secret"))
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.String()
	for _, secret := range []string{"very-secret", "tok-secret"} {
		if strings.Contains(s, secret) {
			t.Errorf("Config.String() = %q reveals %q", s, secret)
		}
	}
	for _, want := range []string{"s3://images/p", "endpoint=minio%3A9000", "AKIAVISIBLE"} {
		if !strings.Contains(s, want) {
			t.Errorf("Config.String() = %q, want it to contain %q", s, want)
		}
	}
}

func TestValidateByHand(t *testing.T) {
	t.Parallel()
	// A Config built in code (not parsed) gets the same checks at Open.
	cfg := s3.Config{Bucket: "images", Endpoint: "minio:9000", AccessKey: "a", SecretKey: "s", Prefix: "/abs"}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "prefix") {
		t.Errorf("Validate with prefix %q = %v, want a prefix error", cfg.Prefix, err)
	}
	if _, err := s3.Open(t.Context(), cfg); err == nil {
		t.Errorf("Open accepted an invalid Config")
	}
}
