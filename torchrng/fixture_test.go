package torchrng

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"github.com/diffute/diffute/internal/fixtures"
	"math"
	"os"
	"strconv"
	"testing"
)

// torch-randn.json is made by torch 1.13 itself (see the fixtures' README).
type randnFixture struct {
	Cases     []randnCase `json:"cases"`
	Sequences struct {
		Cases []struct {
			Seed  uint64      `json:"seed"`
			Draws []randnCase `json:"draws"`
		} `json:"cases"`
	} `json:"sequences"`
	Default struct {
		Cases []randnCase `json:"cases"`
	} `json:"cases_cpu_capability_default"`
}

type randnCase struct {
	Shape  []int     `json:"shape"`
	Seed   uint64    `json:"seed"`
	Values []float64 `json:"values"`
	B64    string    `json:"values_f32le_base64"`
	SHA256 string    `json:"sha256_f32le"`
}

func loadFixture(t *testing.T) randnFixture {
	t.Helper()
	path := fixtures.Path(t, "torch-randn.json")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f randnFixture
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	if len(f.Cases) == 0 || len(f.Sequences.Cases) == 0 || len(f.Default.Cases) == 0 {
		t.Fatalf("%s: missing cases", path)
	}
	return f
}

// want returns the case's values as float32, checking the recorded hash of the
// base64 form.
func (c randnCase) want(t *testing.T) []float32 {
	t.Helper()
	if c.B64 == "" {
		out := make([]float32, len(c.Values))
		for i, v := range c.Values {
			out[i] = float32(v)
		}
		return out
	}
	raw, err := base64.StdEncoding.DecodeString(c.B64)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	if hex.EncodeToString(sum[:]) != c.SHA256 {
		t.Fatalf("shape %v seed %d: sha256 of the fixture's bytes does not match", c.Shape, c.Seed)
	}
	out := make([]float32, len(raw)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return out
}

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

func assertBits(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d values, want %d", what, len(got), len(want))
	}
	bad := 0
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			if bad < 5 {
				t.Errorf("%s: [%d] = %.9g (%08x), want %.9g (%08x)", what, i, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d values differ", what, bad, len(want))
	}
}

func TestFixtureCases(t *testing.T) {
	t.Parallel()
	f := loadFixture(t)
	for _, c := range f.Cases {
		want := c.want(t)
		if len(want) != numel(c.Shape) {
			t.Fatalf("shape %v: fixture has %d values", c.Shape, len(want))
		}
		got := make([]float32, len(want))
		NewCPU(c.Seed).Randn(got)
		assertBits(t, describe(c), got, want)
	}
}

func TestFixtureSequences(t *testing.T) {
	t.Parallel()
	f := loadFixture(t)
	for _, s := range f.Sequences.Cases {
		g := NewCPU(s.Seed)
		for i, d := range s.Draws {
			got := make([]float32, numel(d.Shape))
			g.Randn(got)
			d.Seed = s.Seed
			assertBits(t, describe(d)+" draw "+itoa(i), got, d.want(t))
		}
	}
}

func TestFixtureScalarKernel(t *testing.T) {
	t.Parallel()
	f := loadFixture(t)
	for _, c := range f.Default.Cases {
		got := make([]float32, numel(c.Shape))
		NewCPUKernel(c.Seed, KernelScalar).Randn(got)
		assertBits(t, "scalar "+describe(c), got, c.want(t))
	}
}

func describe(c randnCase) string {
	s := "randn["
	for i, d := range c.Shape {
		if i > 0 {
			s += ","
		}
		s += itoa(d)
	}
	return s + "] seed " + itoa(int(c.Seed))
}

func itoa(i int) string {
	return fmtInt(int64(i))
}

func fmtInt(i int64) string        { return strconvFormat(i) }
func strconvFormat(i int64) string { return strconv.FormatInt(i, 10) }

// The initial noise diffusers drew in each fixture pipeline run
// (reference/*/run_*_initial_noise.bin: torch.randn((1,4,8,8),
// generator=manual_seed(seed)), raw little-endian float32) is this package's
// draw for that seed.
func TestFixturePipelineInitialNoise(t *testing.T) {
	t.Parallel()
	loadFixture(t) // skips (or fails under CI) without the fixtures
	n := 0
	for _, model := range []string{"sd15", "sd21v", "sdxl"} {
		for _, run := range []struct {
			id   string
			seed uint64
		}{{"euler_seed0", 0}, {"euler_seed42", 42}, {"dpmsolver_seed0", 0}, {"dpmsolver_seed42", 42}} {
			path := fixtures.Path(t, "reference", model, "run_"+run.id+"_initial_noise.bin")
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			want := make([]float32, len(raw)/4)
			for i := range want {
				want[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
			}
			if len(want) != 256 {
				t.Fatalf("%s: %d values, want 1×4×8×8", path, len(want))
			}
			got := make([]float32, len(want))
			NewCPU(run.seed).Randn(got)
			assertBits(t, model+" "+run.id, got, want)
			n++
		}
	}
	if n != 12 {
		t.Fatalf("checked %d runs", n)
	}
}
